package sharepartition

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/sharegroup"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/internal/fakeclock"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/topicconfig"
)

// fakeLog is the broker core as the manager sees it: one partition "t-0"
// whose log is batches of one record each, led under epoch.
type fakeLog struct {
	mu      sync.Mutex
	batches [][]byte
	epoch   int32
	leader  bool
	reads   int // Fetch calls
}

func (f *fakeLog) append(t *testing.T, n int) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		b := record.NewBuilder(0, 64)
		b.Append(&record.Record{Value: fmt.Appendf(nil, "v%d", len(f.batches))})
		raw, err := b.Build(record.None)
		if err != nil {
			t.Fatal(err)
		}
		record.SetBaseOffset(raw, int64(len(f.batches)))
		f.batches = append(f.batches, raw)
	}
}

func (f *fakeLog) ShareLeader(topic string, partition int32) (int32, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.leader {
		return 0, "", broker.ErrNotLeader
	}
	return f.epoch, "id-t", nil
}

func (f *fakeLog) Fetch(ctx context.Context, parts []broker.FetchPartition, opts broker.FetchOptions) ([]broker.FetchResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	out := make([]broker.FetchResult, len(parts))
	for i, p := range parts {
		out[i] = broker.FetchResult{Topic: p.Topic, Partition: p.Partition, HighWatermark: int64(len(f.batches))}
		for off := p.Offset; off < int64(len(f.batches)); off++ {
			out[i].Data = append(out[i].Data, f.batches[off]...)
		}
	}
	return out, nil
}

func (f *fakeLog) ListOffset(topic string, partition int32, ts int64, iso broker.IsolationLevel) (int64, int64, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ts == broker.EarliestTimestamp {
		return 0, -1, true, nil
	}
	return int64(len(f.batches)), -1, true, nil
}

func (f *fakeLog) HostedTopicName(id string) (string, bool) { return "t", id == "id-t" }

func (f *fakeLog) ListTopics(ctx context.Context) ([]metastore.Topic, error) {
	return []metastore.Topic{{Name: "t", ID: "id-t", Partitions: 1}}, nil
}

// earliest is a group config source starting every group at the log start.
type earliest struct{}

func (earliest) GroupConfigs(context.Context, string) (sharegroup.Configs, error) {
	return sharegroup.Configs{AutoOffsetReset: "earliest"}, nil
}

var tp0 = metastore.TopicPartition{Topic: "t", Partition: 0}

func newTestManager(core Core, store Store, clock *fakeclock.Clock) *Manager {
	s := topicconfig.DefaultShareSettings
	s.MaxShareSessions = 2
	s.DeliveryCountLimit = 2
	return NewManager(ManagerConfig{Core: core, Store: store, Groups: earliest{}, Settings: s, Now: clock.Now})
}

func fetch(t *testing.T, m *Manager, member string, epoch int32, maxRecords int, acks []AckBatch) PartitionResult {
	t.Helper()
	req := FetchRequest{Group: "g", Member: member, Epoch: epoch, MaxRecords: maxRecords, Partitions: []metastore.TopicPartition{tp0}}
	if acks != nil {
		req.Acks = map[metastore.TopicPartition][]AckBatch{tp0: acks}
	}
	res, err := m.Fetch(t.Context(), req)
	if err != nil {
		t.Fatalf("%s fetch at epoch %d: %v", member, epoch, err)
	}
	if len(res) != 1 {
		t.Fatalf("%s fetch at epoch %d: %d partitions answered", member, epoch, len(res))
	}
	if res[0].Err != nil || res[0].AckErr != nil {
		t.Fatalf("%s fetch at epoch %d: %v, acks %v", member, epoch, res[0].Err, res[0].AckErr)
	}
	return res[0]
}

func TestManagerSharesRecordsAndPersists(t *testing.T) {
	core := &fakeLog{epoch: 1, leader: true}
	core.append(t, 10)
	store := metastoretest.New()
	clock := fakeclock.New(t0)
	m := newTestManager(core, store, clock)

	a := fetch(t, m, "a", 0, 4, nil)
	b := fetch(t, m, "b", 0, 4, nil)
	if !slices.Equal(a.Acquired, []AcquiredRange{{0, 3, 1}}) || !slices.Equal(b.Acquired, []AcquiredRange{{4, 7, 1}}) {
		t.Fatalf("a got %v, b got %v; want 0-3 and 4-7", a.Acquired, b.Acquired)
	}
	if got, _ := parseBatches(a.Records); len(got) != 4 {
		t.Fatalf("a was sent %d batches, want the 4 it holds", len(got))
	}
	// a accepts two and releases two; b rejects its four and fetches.
	if _, err := m.Acknowledge(t.Context(), "g", "a", 1, map[metastore.TopicPartition][]AckBatch{tp0: {{0, 1, []int8{AckAccept}}, {2, 3, []int8{AckRelease}}}}); err != nil {
		t.Fatal(err)
	}
	b = fetch(t, m, "b", 1, 10, []AckBatch{{4, 7, []int8{AckReject}}})
	if want := []AcquiredRange{{2, 3, 2}, {8, 9, 1}}; !slices.Equal(b.Acquired, want) {
		t.Fatalf("b got %v, want %v", b.Acquired, want)
	}
	st, err := store.GetShareState(t.Context(), "g", "t", 0)
	if err != nil || st.StartOffset != 2 || st.LeaderEpoch != 1 {
		t.Fatalf("persisted %+v, %v; want SPSO 2 under leader epoch 1", st, err)
	}

	// The lock of b's records expires: 2-3 reach the delivery limit (2)
	// and are archived, 8-9 are offered again.
	clock.Advance(31 * time.Second)
	a = fetch(t, m, "a", 2, 10, nil)
	if want := []AcquiredRange{{8, 9, 2}}; !slices.Equal(a.Acquired, want) {
		t.Fatalf("after b's locks expired a got %v, want %v", a.Acquired, want)
	}
	if st, _ := store.GetShareState(t.Context(), "g", "t", 0); st.StartOffset != 8 {
		t.Fatalf("persisted SPSO %d, want 8 (2-3 archived, 4-7 rejected)", st.StartOffset)
	}
}

func TestManagerSessions(t *testing.T) {
	core := &fakeLog{epoch: 1, leader: true}
	core.append(t, 3)
	clock := fakeclock.New(t0)
	m := newTestManager(core, metastoretest.New(), clock)
	ctx := t.Context()
	fetch(t, m, "a", 0, 1, nil)
	for _, c := range []struct {
		member string
		epoch  int32
		want   error
	}{
		{"a", 5, ErrInvalidShareSessionEpoch},
		{"nobody", 1, ErrShareSessionNotFound},
	} {
		if _, err := m.Fetch(ctx, FetchRequest{Group: "g", Member: c.member, Epoch: c.epoch}); !errors.Is(err, c.want) {
			t.Errorf("%s at epoch %d: %v, want %v", c.member, c.epoch, err, c.want)
		}
	}
	if _, err := m.Acknowledge(ctx, "g", "a", 0, nil); !errors.Is(err, ErrInvalidShareSessionEpoch) {
		t.Errorf("acknowledge at epoch 0: %v", err)
	}
	if _, err := m.Fetch(ctx, FetchRequest{Group: "g", Member: "a", Epoch: 0, Acks: map[metastore.TopicPartition][]AckBatch{tp0: {{0, 0, []int8{1}}}}}); !errors.Is(err, ErrInvalidShareSessionEpoch) {
		t.Errorf("acknowledgements opening a session: %v", err)
	}
	// A failed request does not move the epoch: 1 is still expected.
	fetch(t, m, "a", 1, 1, nil)
	fetch(t, m, "b", 0, 1, nil)
	if _, err := m.Fetch(ctx, FetchRequest{Group: "g", Member: "c", Epoch: 0}); !errors.Is(err, ErrShareSessionLimitReached) {
		t.Errorf("third session with a limit of 2: %v", err)
	}
	// Closing releases what the member holds: b's record is offered again.
	if _, err := m.Acknowledge(ctx, "g", "b", FinalEpoch, nil); err != nil {
		t.Fatal(err)
	}
	c := fetch(t, m, "c", 0, 5, nil)
	if want := []AcquiredRange{{2, 2, 2}}; !slices.Equal(c.Acquired, want) {
		t.Fatalf("after b closed, c got %v, want %v", c.Acquired, want)
	}
	// a opens a new session: what it held under the old one is released
	// (its client dropped it) and delivered again.
	a := fetch(t, m, "a", 0, 5, nil)
	if want := []AcquiredRange{{0, 1, 2}}; !slices.Equal(a.Acquired, want) {
		t.Fatalf("after a reopened its session it got %v, want %v", a.Acquired, want)
	}
	// The cache is full (a, c); sessions unused for long are evicted to
	// make room.
	if _, err := m.Fetch(ctx, FetchRequest{Group: "g", Member: "d", Epoch: 0}); !errors.Is(err, ErrShareSessionLimitReached) {
		t.Fatalf("third session: %v", err)
	}
	clock.Advance(sessionIdleEviction + time.Second)
	fetch(t, m, "d", 0, 1, nil)
}

func TestFailoverLoadsStateAndFencesTheOldLeader(t *testing.T) {
	store := metastoretest.New()
	clock := fakeclock.New(t0)
	oldCore := &fakeLog{epoch: 1, leader: true}
	oldCore.append(t, 6)
	old := newTestManager(oldCore, store, clock)
	fetch(t, old, "a", 0, 6, nil)
	if _, err := old.Acknowledge(t.Context(), "g", "a", 1, map[metastore.TopicPartition][]AckBatch{tp0: {{0, 1, []int8{AckAccept}}, {2, 2, []int8{AckRelease}}}}); err != nil {
		t.Fatal(err)
	}

	// Another broker becomes leader under epoch 2 with the same log.
	newCore := &fakeLog{epoch: 2, leader: true, batches: oldCore.batches}
	fresh := newTestManager(newCore, store, clock)
	b := fetch(t, fresh, "b", 0, 10, nil)
	// 0-1 are done; 2 was released after one delivery; 3-5 were held by
	// a when the old leader stopped: persisted as available with their
	// delivery count, never as acquired.
	if want := []AcquiredRange{{2, 5, 2}}; !slices.Equal(b.Acquired, want) {
		t.Fatalf("new leader handed out %v, want %v", b.Acquired, want)
	}
	// The old leader still thinks it leads: its write is refused.
	res, err := old.Acknowledge(t.Context(), "g", "a", 2, map[metastore.TopicPartition][]AckBatch{tp0: {{3, 5, []int8{AckAccept}}}})
	if err != nil || !errors.Is(res[tp0], broker.ErrNotLeader) {
		t.Fatalf("old leader's acknowledgement: %v, %v; want ErrNotLeader", res, err)
	}
	st, _ := store.GetShareState(t.Context(), "g", "t", 0)
	if st.LeaderEpoch != 2 || st.StartOffset != 2 {
		t.Fatalf("stored %+v: the old leader's acknowledgement landed", st)
	}
}

func TestIdlePartitionsAreEvicted(t *testing.T) {
	core := &fakeLog{epoch: 1, leader: true}
	core.append(t, 2)
	store := metastoretest.New()
	m := newTestManager(core, store, fakeclock.New(t0))
	m.maxIdleParts = 3
	// Each group's share partition is loaded and, once its records are
	// acknowledged, idle: the map stays bounded and the state persisted.
	for i := range 10 {
		group := fmt.Sprintf("g%d", i)
		res, err := m.Fetch(t.Context(), FetchRequest{Group: group, Member: "a", Epoch: 0, MaxRecords: 10, Partitions: []metastore.TopicPartition{tp0}})
		if err != nil || len(res) != 1 || len(res[0].Acquired) != 1 {
			t.Fatalf("%s: %+v, %v", group, res, err)
		}
		if _, err := m.Acknowledge(t.Context(), group, "a", FinalEpoch, map[metastore.TopicPartition][]AckBatch{tp0: {{0, 1, []int8{AckAccept}}}}); err != nil {
			t.Fatal(err)
		}
	}
	m.mu.Lock()
	n := len(m.parts)
	m.mu.Unlock()
	if n > 3 {
		t.Fatalf("%d share partitions kept, want at most 3", n)
	}
	if st, err := store.GetShareState(t.Context(), "g0", "t", 0); err != nil || st.StartOffset != 2 {
		t.Fatalf("evicted g0's state: %+v, %v", st, err)
	}
	// A partition someone holds records of is kept.
	fetch(t, m, "holder", 0, 1, nil)
	for i := range 5 {
		if _, err := m.partition(t.Context(), fmt.Sprintf("x%d", i), tp0, false); err != nil {
			t.Fatal(err)
		}
	}
	m.mu.Lock()
	_, kept := m.parts[partKey{"g", "t", 0}]
	m.mu.Unlock()
	if !kept {
		t.Fatal("a share partition with acquired records was evicted")
	}
}

type members bool

func (m members) ShareGroupEmpty(context.Context, string) (bool, error) { return !bool(m), nil }
func (members) ShareGroupExists(context.Context, string) (bool, error)  { return true, nil }

func TestAdminOffsets(t *testing.T) {
	core := &fakeLog{epoch: 1, leader: true}
	core.append(t, 10)
	store := metastoretest.New()
	m := newTestManager(core, store, fakeclock.New(t0))
	ctx := t.Context()
	// The group reads and acknowledges 0-2; the leader keeps it loaded.
	fetch(t, m, "a", 0, 3, nil)
	if _, err := m.Acknowledge(ctx, "g", "a", FinalEpoch, map[metastore.TopicPartition][]AckBatch{tp0: {{0, 2, []int8{AckAccept}}}}); err != nil {
		t.Fatal(err)
	}
	got, err := m.DescribeOffsets(ctx, "g", nil)
	if err != nil || len(got) != 1 || got[0].StartOffset != 3 || got[0].LeaderEpoch != 1 || got[0].Lag != 7 || got[0].TopicID != "id-t" {
		t.Fatalf("describe: %+v, %v; want SPSO 3, leader epoch 1, lag 7", got, err)
	}
	if got, _ := m.DescribeOffsets(ctx, "g", []metastore.TopicPartition{{Topic: "t", Partition: 5}, {Topic: "nope", Partition: 0}}); !errors.Is(got[0].Err, broker.ErrUnknownTopicOrPartition) || !errors.Is(got[1].Err, broker.ErrUnknownTopicOrPartition) {
		t.Fatalf("describe of unknown partitions: %+v", got)
	}

	m.SetMembers(members(true))
	if _, err := m.AlterOffsets(ctx, "g", map[metastore.TopicPartition]int64{tp0: 7}); !errors.Is(err, ErrGroupNotEmpty) {
		t.Fatalf("alter with members: %v, want ErrGroupNotEmpty", err)
	}
	if _, err := m.DeleteOffsets(ctx, "g", []string{"t"}); !errors.Is(err, ErrGroupNotEmpty) {
		t.Fatalf("delete with members: %v, want ErrGroupNotEmpty", err)
	}
	m.SetMembers(members(false))
	res, err := m.AlterOffsets(ctx, "g", map[metastore.TopicPartition]int64{tp0: 7, {Topic: "t", Partition: 3}: 1})
	if err != nil || res[tp0] != nil || !errors.Is(res[metastore.TopicPartition{Topic: "t", Partition: 3}], broker.ErrUnknownTopicOrPartition) {
		t.Fatalf("alter: %v, %v", res, err)
	}
	// The leader still has the old state loaded: a session adding the
	// partition finds it changed and starts from the altered offset.
	b := fetch(t, m, "b", 0, 10, nil)
	if want := []AcquiredRange{{7, 9, 1}}; !slices.Equal(b.Acquired, want) {
		t.Fatalf("after alter b got %v, want %v", b.Acquired, want)
	}
	if _, err := m.Acknowledge(ctx, "g", "b", FinalEpoch, nil); err != nil {
		t.Fatal(err)
	}
	if res, err := m.DeleteOffsets(ctx, "g", []string{"t", "nope"}); err != nil || res["t"] != nil || res["nope"] == nil {
		t.Fatalf("delete: %v, %v", res, err)
	}
	if got, _ := m.DescribeOffsets(ctx, "g", []metastore.TopicPartition{tp0}); got[0].StartOffset != -1 {
		t.Fatalf("after delete SPSO %d, want -1", got[0].StartOffset)
	}
}

// TestConnectionCloseEndsItsSessions guards the release of a member's
// records when the connection its share session was opened on closes: the
// records go to other members at once, not at their lock expiry, and a
// session another connection opened since is left alone.
func TestConnectionCloseEndsItsSessions(t *testing.T) {
	core := &fakeLog{epoch: 1, leader: true}
	core.append(t, 4)
	m := newTestManager(core, metastoretest.New(), fakeclock.New(t0))
	ctx := t.Context()
	open := func(member string, conn uint64, maxRecords int) PartitionResult {
		t.Helper()
		res, err := m.Fetch(ctx, FetchRequest{Group: "g", Member: member, Conn: conn, MaxRecords: maxRecords, Partitions: []metastore.TopicPartition{tp0}})
		if err != nil || len(res) != 1 || res[0].Err != nil {
			t.Fatalf("%s opening a session on connection %d: %+v, %v", member, conn, res, err)
		}
		return res[0]
	}
	if a := open("a", 1, 2); !slices.Equal(a.Acquired, []AcquiredRange{{0, 1, 1}}) {
		t.Fatalf("a got %v", a.Acquired)
	}
	if b := open("b", 2, 2); !slices.Equal(b.Acquired, []AcquiredRange{{2, 3, 1}}) {
		t.Fatalf("b got %v", b.Acquired)
	}

	m.ConnectionClosed(ctx, 1)
	if _, err := m.Fetch(ctx, FetchRequest{Group: "g", Member: "a", Epoch: 1}); !errors.Is(err, ErrShareSessionNotFound) {
		t.Fatalf("a's session after its connection closed: %v, want ErrShareSessionNotFound", err)
	}
	// a's records are offered again now (no clock advance), b's are not.
	if b := fetch(t, m, "b", 1, 10, nil); !slices.Equal(b.Acquired, []AcquiredRange{{0, 1, 2}}) {
		t.Fatalf("after a's connection closed b got %v, want 0-1 (second delivery)", b.Acquired)
	}

	// b's client reconnects and opens its session again on connection 3:
	// the close of connection 2, seen late, does not end it.
	open("b", 3, 1)
	m.ConnectionClosed(ctx, 2)
	fetch(t, m, "b", 1, 1, nil)
	m.mu.Lock()
	conns := len(m.byConn)
	m.mu.Unlock()
	if conns != 1 {
		t.Fatalf("%d connections known with sessions, want 1", conns)
	}
}

// heldWrites is a share-state store whose writes wait, once armed, until
// let go: a leader's write in flight.
type heldWrites struct {
	Store
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
}

func (h *heldWrites) arm() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.armed, h.entered, h.release = true, make(chan struct{}), make(chan struct{})
}

func (h *heldWrites) PutShareState(ctx context.Context, st metastore.ShareState, prev int64) (metastore.ShareState, error) {
	h.mu.Lock()
	armed, entered, release := h.armed, h.entered, h.release
	h.armed = false
	h.mu.Unlock()
	if armed {
		close(entered)
		<-release
	}
	return h.Store.PutShareState(ctx, st, prev)
}

// TestAcknowledgementNotPersistedIsNotReportedDone guards against an
// acceptance reported as done that no state holds: an acknowledgement
// applied while another write of the partition was in flight, which the
// new leader fenced, must fail (the new leader delivers the records
// again), not succeed because the partition was dropped meanwhile.
func TestAcknowledgementNotPersistedIsNotReportedDone(t *testing.T) {
	shared := metastoretest.New()
	clock := fakeclock.New(t0)
	oldCore := &fakeLog{epoch: 1, leader: true}
	oldCore.append(t, 4)
	store := &heldWrites{Store: shared}
	old := newTestManager(oldCore, store, clock)
	fetch(t, old, "a", 0, 4, nil)

	// a accepts 0-1; the old leader's write of it is held.
	store.arm()
	first := make(chan error, 1)
	go func() {
		res, err := old.Acknowledge(context.Background(), "g", "a", 1, map[metastore.TopicPartition][]AckBatch{tp0: {{0, 1, []int8{AckAccept}}}})
		first <- cmp.Or(err, res[tp0])
	}()
	<-store.entered
	// a accepts 2-3 meanwhile: applied in memory, its write waits for
	// the one in flight.
	second := make(chan error, 1)
	go func() {
		res, err := old.Acknowledge(context.Background(), "g", "a", 2, map[metastore.TopicPartition][]AckBatch{tp0: {{2, 3, []int8{AckAccept}}}})
		second <- cmp.Or(err, res[tp0])
	}()
	old.mu.Lock()
	sp := old.parts[partKey{"g", "t", 0}]
	old.mu.Unlock()
	await.True(t, 10*time.Second, "the second acknowledgement applied in memory", func() bool {
		sp.mu.Lock()
		defer sp.mu.Unlock()
		return sp.p.Counts()[Acknowledged] == 4 || sp.p.StartOffset() == 4
	})

	// Another broker takes the partition under epoch 2 and claims it.
	newCore := &fakeLog{epoch: 2, leader: true, batches: oldCore.batches}
	fresh := newTestManager(newCore, shared, clock)
	b := fetch(t, fresh, "b", 0, 10, nil)
	close(store.release)

	if err := <-first; !errors.Is(err, broker.ErrNotLeader) {
		t.Fatalf("fenced first acknowledgement: %v, want ErrNotLeader", err)
	}
	if err := <-second; err == nil {
		st, _ := shared.GetShareState(t.Context(), "g", "t", 0)
		t.Fatalf("second acknowledgement reported done; stored SPSO %d, and the new leader handed out %v", st.StartOffset, b.Acquired)
	}
}

// TestDeletedGroupStartsAfresh: a share group deleted (on whichever
// broker) and created again starts from share.auto.offset.reset on the
// leader that still has the old group's partition loaded.
func TestDeletedGroupStartsAfresh(t *testing.T) {
	core := &fakeLog{epoch: 1, leader: true}
	core.append(t, 4)
	store := metastoretest.New()
	clock := fakeclock.New(t0)
	leader := newTestManager(core, store, clock)
	fetch(t, leader, "a", 0, 4, nil)
	if _, err := leader.Acknowledge(t.Context(), "g", "a", FinalEpoch, map[metastore.TopicPartition][]AckBatch{tp0: {{0, 3, []int8{AckAccept}}}}); err != nil {
		t.Fatal(err)
	}
	other := newTestManager(core, store, clock)
	if err := other.DeleteGroup(t.Context(), "g"); err != nil {
		t.Fatal(err)
	}
	if n := fetch(t, leader, "n", 0, 10, nil); !slices.Equal(n.Acquired, []AcquiredRange{{0, 3, 1}}) {
		t.Fatalf("the new group's first member got %v, want 0-3 delivered for the first time", n.Acquired)
	}
}

// TestPersistedStateStaysWithinBounds: the most fragmented window
// (records alternately accepted and rejected behind one still held)
// persists within the metastore's bound on state batches.
func TestPersistedStateStaysWithinBounds(t *testing.T) {
	cfg := Config{LockDuration: time.Minute, DeliveryLimit: 5, MaxRecordLocks: 10000}
	p := NewPartition(cfg, 0)
	var batches []Batch
	for off := range int64(20000) {
		batches = append(batches, Batch{BaseOffset: off, LastOffset: off})
	}
	if got := p.Acquire("a", batches, 1<<30, t0); len(got) != 1 || got[0].LastOffset != int64(cfg.MaxRecordLocks-1) {
		t.Fatalf("acquired %v, want 0-%d (the window)", got, cfg.MaxRecordLocks-1)
	}
	var acks []AckBatch
	for off := int64(1); off < int64(cfg.MaxRecordLocks); off++ {
		acks = append(acks, AckBatch{FirstOffset: off, LastOffset: off, Types: []int8{AckAccept + int8(off%2)*2}})
	}
	if err := p.Acknowledge("a", acks, t0); err != nil {
		t.Fatal(err)
	}
	start, stored := p.Snapshot()
	st := metastore.ShareState{Group: "g", Topic: "t", StartOffset: start, Batches: stored}
	if err := st.Check(); err != nil {
		t.Fatalf("%d batches: %v", len(stored), err)
	}
	if _, err := metastoretest.New().PutShareState(t.Context(), st, 0); err != nil {
		t.Fatal(err)
	}
}

// stuckWrites is a store whose writes, once armed, hang until their
// context ends: a metastore that stopped answering.
type stuckWrites struct {
	Store
	mu    sync.Mutex
	stuck bool
}

func (s *stuckWrites) set(stuck bool) {
	s.mu.Lock()
	s.stuck = stuck
	s.mu.Unlock()
}

func (s *stuckWrites) PutShareState(ctx context.Context, st metastore.ShareState, prev int64) (metastore.ShareState, error) {
	s.mu.Lock()
	stuck := s.stuck
	s.mu.Unlock()
	if stuck {
		<-ctx.Done()
		return metastore.ShareState{}, ctx.Err()
	}
	return s.Store.PutShareState(ctx, st, prev)
}

// TestStoreCallsHaveDeadlines guards against a request of a client with no
// deadline of its own (ShareAcknowledge) waiting forever on a metastore
// that does not answer, holding the partition's write lock.
func TestStoreCallsHaveDeadlines(t *testing.T) {
	core := &fakeLog{epoch: 1, leader: true}
	core.append(t, 4)
	store := &stuckWrites{Store: metastoretest.New()}
	s := topicconfig.DefaultShareSettings
	m := NewManager(ManagerConfig{Core: core, Store: store, Groups: earliest{}, Settings: s, Now: fakeclock.New(t0).Now, StoreTimeout: 50 * time.Millisecond})
	fetch(t, m, "a", 0, 4, nil)

	store.set(true)
	done := make(chan error, 1)
	go func() {
		res, err := m.Acknowledge(context.Background(), "g", "a", 1, map[metastore.TopicPartition][]AckBatch{tp0: {{0, 1, []int8{AckAccept}}}})
		done <- cmp.Or(err, res[tp0])
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("acknowledgement against a stuck metastore: %v, want a deadline error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("acknowledgement against a stuck metastore still waiting after 30s")
	}
	// The metastore answers again: the next acknowledgement writes both.
	store.set(false)
	res, err := m.Acknowledge(t.Context(), "g", "a", 2, map[metastore.TopicPartition][]AckBatch{tp0: {{2, 3, []int8{AckAccept}}}})
	if err != nil || res[tp0] != nil {
		t.Fatalf("acknowledgement after the metastore recovered: %v, %v", res, err)
	}
	if st, err := store.GetShareState(t.Context(), "g", "t", 0); err != nil || st.StartOffset != 4 {
		t.Fatalf("stored %+v, %v; want SPSO 4", st, err)
	}
}

// TestAcknowledgingAnUnfetchedPartitionWritesNothing: acknowledgements of
// a partition the leader has not loaded are refused without creating its
// share state, so a client cannot make the broker write state for any
// group and partition it names.
func TestAcknowledgingAnUnfetchedPartitionWritesNothing(t *testing.T) {
	core := &fakeLog{epoch: 1, leader: true}
	core.append(t, 2)
	store := metastoretest.New()
	m := newTestManager(core, store, fakeclock.New(t0))
	if _, err := m.Fetch(t.Context(), FetchRequest{Group: "g", Member: "a"}); err != nil {
		t.Fatal(err)
	}
	res, err := m.Acknowledge(t.Context(), "g", "a", 1, map[metastore.TopicPartition][]AckBatch{tp0: {{0, 1, []int8{AckAccept}}}})
	if err != nil || !errors.Is(res[tp0], ErrInvalidRecordState) {
		t.Fatalf("acknowledging records never fetched: %v, %v; want ErrInvalidRecordState", res, err)
	}
	if _, err := store.GetShareState(t.Context(), "g", "t", 0); !errors.Is(err, metastore.ErrShareStateNotFound) {
		t.Fatalf("share state after an acknowledgement of an unfetched partition: %v, want none", err)
	}
	// Once fetched, acknowledgements work; a leader that lost the
	// partition says so.
	fetch(t, m, "a", 2, 2, nil)
	if res, _ := m.Acknowledge(t.Context(), "g", "a", 3, map[metastore.TopicPartition][]AckBatch{tp0: {{0, 1, []int8{AckAccept}}}}); res[tp0] != nil {
		t.Fatalf("acknowledging fetched records: %v", res[tp0])
	}
	core.mu.Lock()
	core.leader = false
	core.mu.Unlock()
	if res, _ := m.Acknowledge(t.Context(), "g", "a", 4, map[metastore.TopicPartition][]AckBatch{tp0: {{0, 1, []int8{AckAccept}}}}); !errors.Is(res[tp0], broker.ErrNotLeader) {
		t.Fatalf("acknowledging on a broker that lost the partition: %v, want ErrNotLeader", res[tp0])
	}
}

// TestLockHeldForItsWholeDuration: a record is offered again exactly when
// its acquisition lock ends, not a moment before, and its holder can
// acknowledge it until then.
func TestLockHeldForItsWholeDuration(t *testing.T) {
	core := &fakeLog{epoch: 1, leader: true}
	core.append(t, 2)
	clock := fakeclock.New(t0)
	m := newTestManager(core, metastoretest.New(), clock)
	fetch(t, m, "a", 0, 2, nil)
	fetch(t, m, "b", 0, 2, nil)
	lock := topicconfig.DefaultShareSettings.RecordLockDuration
	clock.Advance(lock - time.Nanosecond)
	if b := fetch(t, m, "b", 1, 2, nil); len(b.Acquired) != 0 {
		t.Fatalf("b got %v a nanosecond before a's lock ends", b.Acquired)
	}
	if res, _ := m.Acknowledge(t.Context(), "g", "a", 1, map[metastore.TopicPartition][]AckBatch{tp0: {{0, 0, []int8{AckAccept}}}}); res[tp0] != nil {
		t.Fatalf("a's acknowledgement just before its lock ends: %v", res[tp0])
	}
	clock.Advance(time.Nanosecond)
	if res, _ := m.Acknowledge(t.Context(), "g", "a", 2, map[metastore.TopicPartition][]AckBatch{tp0: {{1, 1, []int8{AckAccept}}}}); !errors.Is(res[tp0], ErrInvalidRecordState) {
		t.Fatalf("a's acknowledgement when its lock ended: %v, want ErrInvalidRecordState", res[tp0])
	}
	if b := fetch(t, m, "b", 2, 2, nil); !slices.Equal(b.Acquired, []AcquiredRange{{1, 1, 2}}) {
		t.Fatalf("b got %v when a's lock ended, want 1", b.Acquired)
	}
}

// TestFetchBlockedByTheWindowWaits guards against a waiting ShareFetch
// reading the log over and over: records beyond a gap wider than the
// window (offsets removed by compaction, or an aborted transaction under
// read_committed) cannot be taken while a record before the gap is held,
// and the fetch waits for a change instead of spinning.
func TestFetchBlockedByTheWindowWaits(t *testing.T) {
	core := &fakeLog{epoch: 1, leader: true}
	core.append(t, 1)
	// Offsets 1-199 are gone; 200 is a record.
	core.batches = append(core.batches, make([][]byte, 199)...)
	core.append(t, 1)
	clock := fakeclock.New(t0)
	s := topicconfig.DefaultShareSettings
	s.PartitionMaxRecordLocks = 100
	m := NewManager(ManagerConfig{Core: core, Store: metastoretest.New(), Groups: earliest{}, Settings: s, Now: clock.Now})
	if a := fetch(t, m, "a", 0, 1, nil); !slices.Equal(a.Acquired, []AcquiredRange{{0, 0, 1}}) {
		t.Fatalf("a got %v, want 0", a.Acquired)
	}
	core.mu.Lock()
	core.reads = 0
	core.mu.Unlock()

	done := make(chan PartitionResult, 1)
	go func() {
		res, _ := m.Fetch(context.Background(), FetchRequest{Group: "g", Member: "b", MaxWait: 20 * time.Millisecond, MaxRecords: 10, Partitions: []metastore.TopicPartition{tp0}})
		done <- res[0]
	}()
	reads := func() int {
		core.mu.Lock()
		defer core.mu.Unlock()
		return core.reads
	}
	await.True(t, 10*time.Second, "b's fetch to read the log", func() bool { return reads() > 0 })
	clock.Advance(time.Second) // past b's MaxWait
	b := <-done
	if len(b.Acquired) != 0 {
		t.Fatalf("b got %v beyond the window", b.Acquired)
	}
	if n := reads(); n > 3 {
		t.Fatalf("b's fetch read the log %d times while nothing could change", n)
	}

	// b waits again; a accepting record 0 makes room, which wakes b.
	go func() {
		res, _ := m.Fetch(context.Background(), FetchRequest{Group: "g", Member: "b", Epoch: 1, MaxWait: time.Hour, MaxRecords: 10})
		done <- res[0]
	}()
	before := reads()
	await.True(t, 10*time.Second, "b's second fetch to read the log", func() bool { return reads() > before })
	if res, _ := m.Acknowledge(t.Context(), "g", "a", 1, map[metastore.TopicPartition][]AckBatch{tp0: {{0, 0, []int8{AckAccept}}}}); res[tp0] != nil {
		t.Fatal(res[tp0])
	}
	select {
	case b := <-done:
		if !slices.Equal(b.Acquired, []AcquiredRange{{200, 200, 1}}) {
			t.Fatalf("b got %v once a accepted, want 200", b.Acquired)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("b's fetch not woken by the acknowledgement that made room")
	}
}

// slowLeader is a core whose ShareLeader of topic "slow" waits until let
// go, then says this broker does not lead it.
type slowLeader struct {
	*fakeLog
	entered, release chan struct{}
}

func (c *slowLeader) ShareLeader(topic string, partition int32) (int32, string, error) {
	if topic == "slow" {
		close(c.entered)
		<-c.release
		return 0, "", broker.ErrNotLeader
	}
	return c.fakeLog.ShareLeader(topic, partition)
}

// TestClosingASessionLeavesItsSuccessor: a session closed (epoch -1) while
// its member opened a new one, during the close's acknowledgements, ends
// only itself: the new session, and what the member acquired under it,
// stay.
func TestClosingASessionLeavesItsSuccessor(t *testing.T) {
	log := &fakeLog{epoch: 1, leader: true}
	log.append(t, 4)
	core := &slowLeader{fakeLog: log, entered: make(chan struct{}), release: make(chan struct{})}
	m := newTestManager(core, metastoretest.New(), fakeclock.New(t0))
	fetch(t, m, "a", 0, 2, nil)

	closed := make(chan error, 1)
	go func() {
		_, err := m.Acknowledge(context.Background(), "g", "a", FinalEpoch, map[metastore.TopicPartition][]AckBatch{{Topic: "slow"}: {{0, 0, []int8{AckAccept}}}})
		closed <- err
	}()
	<-core.entered
	// a's client opens a new session meanwhile: 0-1 are released with
	// the old one, and a takes them and 2-3 again.
	if a := fetch(t, m, "a", 0, 4, nil); !slices.Equal(a.Acquired, []AcquiredRange{{0, 1, 2}, {2, 3, 1}}) {
		t.Fatalf("a's new session got %v, want 0-1 (second delivery) and 2-3", a.Acquired)
	}
	close(core.release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if b := fetch(t, m, "b", 0, 10, nil); len(b.Acquired) != 0 {
		t.Fatalf("b got %v: the old session's close released what a holds under its new one", b.Acquired)
	}
	fetch(t, m, "a", 1, 2, nil)
}

// gatedFetch is a core whose next Fetch, once armed, waits until let go
// before reading the log: a read in flight.
type gatedFetch struct {
	*fakeLog
	mu               sync.Mutex
	armed            bool
	entered, release chan struct{}
}

func (g *gatedFetch) Fetch(ctx context.Context, parts []broker.FetchPartition, opts broker.FetchOptions) ([]broker.FetchResult, error) {
	g.mu.Lock()
	armed := g.armed
	g.armed = false
	g.mu.Unlock()
	if armed {
		close(g.entered)
		<-g.release
	}
	return g.fakeLog.Fetch(ctx, parts, opts)
}

// TestReadUnderAnOldLeaderEpochAcquiresNothing: a read in flight when the
// partition's leader epoch changed acquires nothing from the share
// partition of the old epoch, whose records the new one hands out.
func TestReadUnderAnOldLeaderEpochAcquiresNothing(t *testing.T) {
	log := &fakeLog{epoch: 1, leader: true}
	core := &gatedFetch{fakeLog: log, armed: true, entered: make(chan struct{}), release: make(chan struct{})}
	m := newTestManager(core, metastoretest.New(), fakeclock.New(t0))
	got := make(chan PartitionResult, 1)
	go func() {
		res, _ := m.Fetch(context.Background(), FetchRequest{Group: "g", Member: "a", MaxRecords: 10, Partitions: []metastore.TopicPartition{tp0}})
		got <- res[0]
	}()
	<-core.entered
	log.append(t, 4)
	log.mu.Lock()
	log.epoch = 2
	log.mu.Unlock()
	if b := fetch(t, m, "b", 0, 10, nil); !slices.Equal(b.Acquired, []AcquiredRange{{0, 3, 1}}) {
		t.Fatalf("b got %v under the new epoch, want 0-3", b.Acquired)
	}
	close(core.release)
	if a := <-got; len(a.Acquired) != 0 {
		t.Fatalf("a's read under the old epoch acquired %v, which b holds", a.Acquired)
	}
}

// knownGroups says only the listed share groups exist.
type knownGroups []string

func (knownGroups) ShareGroupEmpty(context.Context, string) (bool, error) { return true, nil }
func (k knownGroups) ShareGroupExists(_ context.Context, g string) (bool, error) {
	return slices.Contains(k, g), nil
}

// TestFetchForAGroupNobodyJoinedWritesNothing: a ShareFetch naming a group
// that is not a share group is refused per partition and leaves no state
// in the metastore, so a client cannot make the broker write keys for any
// group id it invents; the same fetch works once the group exists.
func TestFetchForAGroupNobodyJoinedWritesNothing(t *testing.T) {
	core := &fakeLog{epoch: 1, leader: true}
	core.append(t, 2)
	store := metastoretest.New()
	m := newTestManager(core, store, fakeclock.New(t0))
	m.SetMembers(knownGroups{"other"})
	res, err := m.Fetch(t.Context(), FetchRequest{Group: "g", Member: "a", MaxRecords: 2, Partitions: []metastore.TopicPartition{tp0}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || !errors.Is(res[0].Err, ErrGroupNotFound) {
		t.Fatalf("fetch for a group nobody joined: %+v, want ErrGroupNotFound", res)
	}
	if _, err := store.GetShareState(t.Context(), "g", "t", 0); !errors.Is(err, metastore.ErrShareStateNotFound) {
		t.Fatalf("share state of a group nobody joined: %v, want none", err)
	}
	m.SetMembers(knownGroups{"g"})
	if got := fetch(t, m, "a", 1, 2, nil); len(got.Acquired) == 0 {
		t.Fatalf("fetch once the group exists acquired nothing: %+v", got)
	}
}
