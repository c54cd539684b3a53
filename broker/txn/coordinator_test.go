package txn

import (
	"context"
	"errors"
	"math"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
)

// clock is a fake clock that moves only when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// storePIDs takes producer ids from the metastore's allocator, one at a
// time.
type storePIDs struct{ s *metastoretest.Store }

func (p storePIDs) NextProducerID(ctx context.Context) (int64, error) {
	return p.s.AllocateProducerIDs(ctx, 1)
}

// markerCall is one WriteMarkers or WriteGroupMarkers call.
type markerCall struct {
	Partitions       []metastore.TopicPartition
	Groups           []string
	ProducerID       int64
	ProducerEpoch    int16
	CoordinatorEpoch int32
	Commit           bool
}

// markers records the markers written and fails them while fail is set;
// while block is set, a call waits on it (after being recorded as entered).
type markers struct {
	mu      sync.Mutex
	calls   []markerCall
	fail    error
	block   chan struct{}
	entered int
}

func (m *markers) WriteMarkers(ctx context.Context, partitions []metastore.TopicPartition, pid int64, epoch int16, coordinatorEpoch int32, commit bool) error {
	m.mu.Lock()
	m.entered++
	block, fail := m.block, m.fail
	m.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail != nil {
		return fail
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, markerCall{Partitions: partitions, ProducerID: pid, ProducerEpoch: epoch, CoordinatorEpoch: coordinatorEpoch, Commit: commit})
	return nil
}

func (m *markers) WriteGroupMarkers(ctx context.Context, groups []string, pid int64, epoch int16, commit bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.calls = append(m.calls, markerCall{Groups: groups, ProducerID: pid, ProducerEpoch: epoch, Commit: commit})
	return nil
}

func (m *markers) setFail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = err
}

func (m *markers) taken() []markerCall {
	m.mu.Lock()
	defer m.mu.Unlock()
	calls := m.calls
	m.calls = nil
	return calls
}

type fixture struct {
	store   *metastoretest.Store
	clock   *clock
	markers *markers
	c       *Coordinator
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newFixture(t *testing.T) *fixture {
	f := &fixture{store: metastoretest.New(), clock: &clock{now: t0}}
	f.c, f.markers = f.coordinator(nil)
	return f
}

// coordinator is another coordinator instance over the fixture's store and
// clock, as a broker that takes over would run.
func (f *fixture) coordinator(owns func(string) bool) (*Coordinator, *markers) {
	m := &markers{}
	return New(f.store, storePIDs{f.store}, m, Config{
		MaxTimeout: time.Minute, IDExpiration: time.Hour, GroupMarkers: m, Owns: owns, Now: f.clock.Now,
	}), m
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func tp(topic string, p int32) metastore.TopicPartition {
	return metastore.TopicPartition{Topic: topic, Partition: p}
}

func (f *fixture) stored(t *testing.T, id string) metastore.TransactionMeta {
	t.Helper()
	m, err := f.store.GetTransaction(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustInit(t *testing.T, c *Coordinator, id string, expectedID int64, expectedEpoch int16) (int64, int16) {
	t.Helper()
	pid, epoch, err := c.InitProducerID(ctx(t), id, 10_000, expectedID, expectedEpoch)
	if err != nil {
		t.Fatalf("InitProducerID(%q, %d, %d): %v", id, expectedID, expectedEpoch, err)
	}
	return pid, epoch
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

func TestLifecycle(t *testing.T) {
	f := newFixture(t)
	pid, epoch := mustInit(t, f.c, "t", -1, -1)
	if epoch != 0 {
		t.Fatalf("a new transactional id got epoch %d, want 0", epoch)
	}
	if m := f.stored(t, "t"); m.State != StateEmpty || m.ProducerID != pid || m.TimeoutMs != 10_000 {
		t.Fatalf("after InitProducerId: %+v", m)
	}
	wantErr(t, "EndTxn without a transaction", f.c.EndTxn(ctx(t), "t", pid, epoch, true), ErrInvalidTxnState)
	if err := f.c.AddPartitions(ctx(t), "t", pid, epoch, nil); err != nil || f.stored(t, "t").State != StateEmpty {
		t.Fatalf("AddPartitions of no partitions: %v, state %s; want nil and no transaction", err, f.stored(t, "t").State)
	}

	before := f.stored(t, "t").Revision
	start := f.clock.Advance(time.Second)
	parts := []metastore.TopicPartition{tp("b", 1), tp("a", 0)}
	if err := f.c.AddPartitions(ctx(t), "t", pid, epoch, parts); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	if err := f.c.AddPartitions(ctx(t), "t", pid, epoch, parts[:1]); err != nil {
		t.Fatal(err)
	}
	m := f.stored(t, "t")
	if m.State != StateOngoing || !m.StartTime.Equal(start) || !reflect.DeepEqual(m.Partitions, []metastore.TopicPartition{tp("a", 0), tp("b", 1)}) {
		t.Fatalf("after AddPartitions: %+v", m)
	}
	if m.Revision != before+1 {
		t.Fatalf("adding partitions already in the transaction was written (revision %d, want %d)", m.Revision, before+1)
	}
	errs, err := f.c.Verify(ctx(t), "t", pid, epoch, []metastore.TopicPartition{tp("a", 0), tp("c", 0)})
	if err != nil || errs[0] != nil || !errors.Is(errs[1], ErrInvalidTxnState) {
		t.Fatalf("Verify a-0 (in) and c-0 (not): %v, %v", errs, err)
	}

	if err := f.c.EndTxn(ctx(t), "t", pid, epoch, true); err != nil {
		t.Fatal(err)
	}
	m = f.stored(t, "t")
	if m.State != StateCompleteCommit || m.Partitions != nil || m.ProducerEpoch != epoch {
		t.Fatalf("after EndTxn(commit): %+v", m)
	}
	// Ongoing on the first AddPartitions, PrepareCommit, CompleteCommit:
	// what ARCHITECTURE.md counts.
	if writes := m.Revision - before; writes != 3 {
		t.Fatalf("a transaction over two partitions took %d writes, want 3", writes)
	}
	want := []markerCall{{Partitions: []metastore.TopicPartition{tp("a", 0), tp("b", 1)}, ProducerID: pid, ProducerEpoch: epoch, Commit: true}}
	if got := f.markers.taken(); !reflect.DeepEqual(got, want) {
		t.Fatalf("markers %+v, want %+v", got, want)
	}
	if err := f.c.EndTxn(ctx(t), "t", pid, epoch, true); err != nil {
		t.Fatalf("a retried commit: %v", err)
	}
	wantErr(t, "abort after commit", f.c.EndTxn(ctx(t), "t", pid, epoch, false), ErrInvalidTxnState)
	errs, err = f.c.Verify(ctx(t), "t", pid, epoch, []metastore.TopicPartition{tp("a", 0)})
	if err != nil || !errors.Is(errs[0], ErrInvalidTxnState) {
		t.Fatalf("Verify after commit: %v, %v", errs, err)
	}

	// The next transaction: offsets only, aborted.
	start2 := f.clock.Advance(time.Second)
	if err := f.c.AddOffsets(ctx(t), "t", pid, epoch, "g"); err != nil {
		t.Fatal(err)
	}
	if m := f.stored(t, "t"); m.State != StateOngoing || !m.StartTime.Equal(start2) || m.Partitions != nil || !reflect.DeepEqual(m.Groups, []string{"g"}) {
		t.Fatalf("after AddOffsets: %+v", m)
	}
	if err := f.c.EndTxn(ctx(t), "t", pid, epoch, false); err != nil {
		t.Fatal(err)
	}
	if m := f.stored(t, "t"); m.State != StateCompleteAbort || m.Groups != nil {
		t.Fatalf("after EndTxn(abort): %+v", m)
	}
	want = []markerCall{{Groups: []string{"g"}, ProducerID: pid, ProducerEpoch: epoch}}
	if got := f.markers.taken(); !reflect.DeepEqual(got, want) {
		t.Fatalf("markers %+v, want %+v", got, want)
	}
	d, err := f.c.Describe(ctx(t), "t")
	if err != nil || d.State != StateCompleteAbort || d.ProducerID != pid {
		t.Fatalf("Describe: %+v, %v", d, err)
	}
	if _, err := f.c.Describe(ctx(t), "unknown"); !errors.Is(err, ErrTransactionalIDNotFound) {
		t.Fatalf("Describe of an unknown id: %v", err)
	}
}

func TestZombieFencing(t *testing.T) {
	f := newFixture(t)
	pid, old := mustInit(t, f.c, "t", -1, -1)
	if err := f.c.AddPartitions(ctx(t), "t", pid, old, []metastore.TopicPartition{tp("a", 0)}); err != nil {
		t.Fatal(err)
	}
	if err := f.c.EndTxn(ctx(t), "t", pid, old, true); err != nil {
		t.Fatal(err)
	}
	pid2, cur := mustInit(t, f.c, "t", -1, -1)
	if pid2 != pid || cur != old+1 {
		t.Fatalf("a new producer of the id got %d/%d, want %d/%d", pid2, cur, pid, old+1)
	}
	wantErr(t, "the zombie's AddPartitions", f.c.AddPartitions(ctx(t), "t", pid, old, []metastore.TopicPartition{tp("a", 1)}), ErrProducerFenced)
	wantErr(t, "the zombie's AddOffsets", f.c.AddOffsets(ctx(t), "t", pid, old, "g"), ErrProducerFenced)
	if err := f.c.AddPartitions(ctx(t), "t", pid, cur, []metastore.TopicPartition{tp("a", 0)}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "the zombie's EndTxn", f.c.EndTxn(ctx(t), "t", pid, old, false), ErrProducerFenced)
	if _, err := f.c.Verify(ctx(t), "t", pid, old, []metastore.TopicPartition{tp("a", 0)}); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("the zombie's verification: %v", err)
	}
	if m := f.stored(t, "t"); m.State != StateOngoing || m.ProducerEpoch != cur {
		t.Fatalf("the zombie changed the transaction: %+v", m)
	}
	wantErr(t, "another producer id", f.c.AddPartitions(ctx(t), "t", pid+1, cur, nil), ErrInvalidProducerIDMapping)
	wantErr(t, "an unknown id", f.c.EndTxn(ctx(t), "u", pid, cur, true), ErrInvalidProducerIDMapping)
	// KIP-360: a producer naming an id it never had is fenced.
	if _, _, err := f.c.InitProducerID(ctx(t), "t", 10_000, pid+7, 0); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("InitProducerId expecting another producer id: %v", err)
	}
}

func TestInitAbortsOpenTransaction(t *testing.T) {
	f := newFixture(t)
	pid, epoch := mustInit(t, f.c, "t", -1, -1)
	if err := f.c.AddPartitions(ctx(t), "t", pid, epoch, []metastore.TopicPartition{tp("a", 0)}); err != nil {
		t.Fatal(err)
	}
	_, _, err := f.c.InitProducerID(ctx(t), "t", 10_000, -1, -1)
	wantErr(t, "InitProducerId over an open transaction", err, ErrConcurrentTransactions)
	m := f.stored(t, "t")
	if m.State != StateCompleteAbort || m.ProducerEpoch != epoch+1 {
		t.Fatalf("the open transaction: %+v, want aborted with the epoch bumped", m)
	}
	want := []markerCall{{Partitions: []metastore.TopicPartition{tp("a", 0)}, ProducerID: pid, ProducerEpoch: epoch + 1}}
	if got := f.markers.taken(); !reflect.DeepEqual(got, want) {
		t.Fatalf("markers %+v, want %+v", got, want)
	}
	wantErr(t, "the fenced producer's EndTxn", f.c.EndTxn(ctx(t), "t", pid, epoch, true), ErrProducerFenced)
	if _, e := mustInit(t, f.c, "t", -1, -1); e != epoch+2 {
		t.Fatalf("the retried InitProducerId got epoch %d, want %d", e, epoch+2)
	}
}

func TestKIP360Retry(t *testing.T) {
	f := newFixture(t)
	pid, epoch := mustInit(t, f.c, "t", -1, -1)
	p2, e2 := mustInit(t, f.c, "t", pid, epoch)
	if p2 != pid || e2 != epoch+1 {
		t.Fatalf("bump of the expected epoch: %d/%d", p2, e2)
	}
	rev := f.stored(t, "t").Revision
	if p3, e3 := mustInit(t, f.c, "t", pid, epoch); p3 != p2 || e3 != e2 || f.stored(t, "t").Revision != rev {
		t.Fatalf("a retry of the bump got %d/%d (revision moved: %v), want %d/%d unwritten", p3, e3, f.stored(t, "t").Revision != rev, p2, e2)
	}
	mustInit(t, f.c, "t", -1, -1) // another producer resets the last epoch
	if _, _, err := f.c.InitProducerID(ctx(t), "t", 10_000, pid, e2); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("an old epoch after another producer's InitProducerId: %v", err)
	}
}

func TestInvalidTimeout(t *testing.T) {
	f := newFixture(t)
	for _, ms := range []int32{0, -1, 60_001} {
		_, _, err := f.c.InitProducerID(ctx(t), "t", ms, -1, -1)
		wantErr(t, "transaction.timeout.ms out of bounds", err, ErrInvalidTransactionTimeout)
	}
	if _, err := f.store.GetTransaction(ctx(t), "t"); !errors.Is(err, metastore.ErrTransactionNotFound) {
		t.Fatalf("a refused InitProducerId stored state: %v", err)
	}
	if _, _, err := f.c.InitProducerID(ctx(t), "t", 60_000, -1, -1); err != nil {
		t.Fatalf("transaction.timeout.ms = transaction.max.timeout.ms: %v", err)
	}
	if _, _, err := f.c.InitProducerID(ctx(t), "", 1000, -1, -1); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("an empty transactional id: %v", err)
	}
	for _, exp := range [][2]int64{{-1, 0}, {0, -1}} {
		if _, _, err := f.c.InitProducerID(ctx(t), "t", 1000, exp[0], int16(exp[1])); !errors.Is(err, ErrInvalidRequest) {
			t.Fatalf("expected producer id and epoch %v: %v, want ErrInvalidRequest", exp, err)
		}
	}
}

func TestTimeoutAbort(t *testing.T) {
	f := newFixture(t)
	pid, epoch := mustInit(t, f.c, "t", -1, -1) // timeout 10s
	if err := f.c.AddPartitions(ctx(t), "t", pid, epoch, []metastore.TopicPartition{tp("a", 0)}); err != nil {
		t.Fatal(err)
	}
	f.c.Tick(ctx(t), f.clock.Advance(10*time.Second))
	if m := f.stored(t, "t"); m.State != StateOngoing {
		t.Fatalf("a transaction exactly at its timeout: %+v, want still open", m)
	}
	f.c.Tick(ctx(t), f.clock.Advance(time.Millisecond))
	m := f.stored(t, "t")
	if m.State != StateCompleteAbort || m.ProducerEpoch != epoch+1 {
		t.Fatalf("a transaction past its timeout: %+v, want aborted with the epoch bumped", m)
	}
	want := []markerCall{{Partitions: []metastore.TopicPartition{tp("a", 0)}, ProducerID: pid, ProducerEpoch: epoch + 1}}
	if got := f.markers.taken(); !reflect.DeepEqual(got, want) {
		t.Fatalf("markers %+v, want %+v", got, want)
	}
	wantErr(t, "the timed-out producer's AddPartitions", f.c.AddPartitions(ctx(t), "t", pid, epoch, []metastore.TopicPartition{tp("a", 0)}), ErrProducerFenced)
	wantErr(t, "the timed-out producer's EndTxn", f.c.EndTxn(ctx(t), "t", pid, epoch, true), ErrProducerFenced)
	if _, _, err := f.c.InitProducerID(ctx(t), "t", 10_000, pid, epoch); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("the timed-out producer's KIP-360 InitProducerId: %v, want fenced as Kafka does", err)
	}
}

func TestConcurrentTransactions(t *testing.T) {
	f := newFixture(t)
	pid, epoch := mustInit(t, f.c, "t", -1, -1)
	if err := f.c.AddPartitions(ctx(t), "t", pid, epoch, []metastore.TopicPartition{tp("a", 0)}); err != nil {
		t.Fatal(err)
	}
	f.markers.setFail(errors.New("leader unavailable"))
	if err := f.c.EndTxn(ctx(t), "t", pid, epoch, true); err != nil {
		t.Fatalf("EndTxn whose markers fail, once PrepareCommit is stored: %v, want nil", err)
	}
	if m := f.stored(t, "t"); m.State != StatePrepareCommit {
		t.Fatalf("after failed markers: %+v, want PrepareCommit", m)
	}
	wantErr(t, "AddPartitions while completing", f.c.AddPartitions(ctx(t), "t", pid, epoch, []metastore.TopicPartition{tp("a", 1)}), ErrConcurrentTransactions)
	wantErr(t, "a retried commit while completing", f.c.EndTxn(ctx(t), "t", pid, epoch, true), ErrConcurrentTransactions)
	wantErr(t, "an abort while committing", f.c.EndTxn(ctx(t), "t", pid, epoch, false), ErrInvalidTxnState)
	if _, err := f.c.Verify(ctx(t), "t", pid, epoch, []metastore.TopicPartition{tp("a", 0)}); !errors.Is(err, ErrConcurrentTransactions) {
		t.Fatalf("Verify while completing: %v", err)
	}
	_, _, err := f.c.InitProducerID(ctx(t), "t", 10_000, -1, -1)
	wantErr(t, "InitProducerId while completing", err, ErrConcurrentTransactions)

	f.markers.setFail(nil)
	f.c.Tick(ctx(t), f.clock.Now())
	if m := f.stored(t, "t"); m.State != StateCompleteCommit || m.ProducerEpoch != epoch {
		t.Fatalf("after a tick with markers working: %+v, want CompleteCommit", m)
	}
	if got := f.markers.taken(); len(got) != 1 || !got[0].Commit {
		t.Fatalf("markers %+v, want one commit", got)
	}
}

// While markers are being written the id is not held: a request meanwhile
// is answered CONCURRENT_TRANSACTIONS at once rather than waiting.
func TestRequestsDuringMarkers(t *testing.T) {
	f := newFixture(t)
	pid, epoch := mustInit(t, f.c, "t", -1, -1)
	if err := f.c.AddPartitions(ctx(t), "t", pid, epoch, []metastore.TopicPartition{tp("a", 0)}); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	f.markers.mu.Lock()
	f.markers.block = release
	f.markers.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- f.c.EndTxn(ctx(t), "t", pid, epoch, true) }()
	await.True(t, 10*time.Second, "markers being written", func() bool {
		f.markers.mu.Lock()
		defer f.markers.mu.Unlock()
		return f.markers.entered == 1
	})
	wantErr(t, "AddPartitions during markers", f.c.AddPartitions(ctx(t), "t", pid, epoch, []metastore.TopicPartition{tp("a", 1)}), ErrConcurrentTransactions)
	f.c.Tick(ctx(t), f.clock.Now()) // must not write the markers a second time
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m := f.stored(t, "t"); m.State != StateCompleteCommit {
		t.Fatalf("after the markers: %+v", m)
	}
	if got := f.markers.taken(); len(got) != 1 {
		t.Fatalf("markers written %d times, want once", len(got))
	}
}

// A coordinator dies between PrepareCommit and CompleteCommit: the next
// one, on the same store, writes the markers again with a higher
// coordinator epoch and completes the commit; the old one cannot write
// over it.
func TestFailoverCompletesPreparedCommit(t *testing.T) {
	f := newFixture(t)
	pid, epoch := mustInit(t, f.c, "t", -1, -1)
	if err := f.c.AddPartitions(ctx(t), "t", pid, epoch, []metastore.TopicPartition{tp("a", 0), tp("b", 2)}); err != nil {
		t.Fatal(err)
	}
	f.markers.setFail(errors.New("coordinator lost its network"))
	if err := f.c.EndTxn(ctx(t), "t", pid, epoch, true); err != nil {
		t.Fatal(err)
	}
	prepared := f.stored(t, "t")
	if prepared.State != StatePrepareCommit {
		t.Fatalf("%+v, want PrepareCommit", prepared)
	}

	// A second transactional id that another broker coordinates must not
	// be touched by the new coordinator.
	if _, err := f.store.PutTransaction(ctx(t), metastore.TransactionMeta{
		TransactionalID: "other", ProducerID: 99, State: StatePrepareAbort, LastProducerID: -1, LastProducerEpoch: -1,
		Partitions: []metastore.TopicPartition{tp("x", 0)},
	}, 0); err != nil {
		t.Fatal(err)
	}
	next, nextMarkers := f.coordinator(func(id string) bool { return id == "t" })
	if err := next.Load(ctx(t)); err != nil {
		t.Fatal(err)
	}
	m := f.stored(t, "t")
	if m.State != StateCompleteCommit || m.ProducerID != pid || m.ProducerEpoch != epoch {
		t.Fatalf("after the new coordinator loaded: %+v, want CompleteCommit", m)
	}
	if m.CoordinatorEpoch != prepared.CoordinatorEpoch+1 {
		t.Fatalf("coordinator epoch %d, want %d", m.CoordinatorEpoch, prepared.CoordinatorEpoch+1)
	}
	want := []markerCall{{Partitions: []metastore.TopicPartition{tp("a", 0), tp("b", 2)}, ProducerID: pid, ProducerEpoch: epoch,
		CoordinatorEpoch: prepared.CoordinatorEpoch + 1, Commit: true}}
	if got := nextMarkers.taken(); !reflect.DeepEqual(got, want) {
		t.Fatalf("the new coordinator's markers %+v, want %+v", got, want)
	}
	if o := f.stored(t, "other"); o.State != StatePrepareAbort {
		t.Fatalf("a transaction this coordinator does not own was completed: %+v", o)
	}

	// The old coordinator comes back: its completion loses the
	// compare-and-swap and it steps down for the id.
	f.markers.setFail(nil)
	f.c.Tick(ctx(t), f.clock.Now())
	if got := f.stored(t, "t"); got.Revision != m.Revision {
		t.Fatalf("the replaced coordinator wrote over its successor: %+v", got)
	}
	if err := next.EndTxn(ctx(t), "t", pid, epoch, true); err != nil {
		t.Fatalf("a retried commit at the new coordinator: %v", err)
	}
	if err := next.AddPartitions(ctx(t), "t", pid, epoch, []metastore.TopicPartition{tp("a", 0)}); err != nil {
		t.Fatalf("the next transaction at the new coordinator: %v", err)
	}
	wantErr(t, "a request to a coordinator that does not own the id", next.AddPartitions(ctx(t), "other", 99, 0, nil), ErrNotCoordinator)
}

// Two coordinators believe they own an id: the one holding the older
// revision loses the compare-and-swap and answers NOT_COORDINATOR.
func TestStaleCoordinatorRefused(t *testing.T) {
	f := newFixture(t)
	pid, epoch := mustInit(t, f.c, "t", -1, -1)
	other, _ := f.coordinator(nil)
	if _, e := mustInit(t, other, "t", -1, -1); e != epoch+1 {
		t.Fatalf("epoch %d at the other coordinator", e)
	}
	wantErr(t, "a write from a stale coordinator", f.c.AddPartitions(ctx(t), "t", pid, epoch, []metastore.TopicPartition{tp("a", 0)}), ErrNotCoordinator)
	wantErr(t, "the same request once the id is read again", f.c.AddPartitions(ctx(t), "t", pid, epoch, []metastore.TopicPartition{tp("a", 0)}), ErrProducerFenced)
}

func TestEpochExhaustion(t *testing.T) {
	f := newFixture(t)
	pid, _ := mustInit(t, f.c, "t", -1, -1)
	// Reach the last epochs without 32,000 calls: state as a long-lived
	// producer leaves it, seen by a coordinator that takes the id over.
	m := f.stored(t, "t")
	m.ProducerEpoch, m.LastProducerEpoch, m.State = math.MaxInt16-2, math.MaxInt16-3, StateCompleteCommit
	if _, err := f.store.PutTransaction(ctx(t), m, m.Revision); err != nil {
		t.Fatal(err)
	}
	c, _ := f.coordinator(nil)
	if p, e := mustInit(t, c, "t", pid, math.MaxInt16-2); p != pid || e != math.MaxInt16-1 {
		t.Fatalf("the last epoch handed out: %d/%d, want %d/%d", p, e, pid, math.MaxInt16-1)
	}
	p2, e2 := mustInit(t, c, "t", pid, math.MaxInt16-1)
	if p2 == pid || e2 != 0 {
		t.Fatalf("after the epochs of %d ran out: %d/%d, want a new producer id at epoch 0", pid, p2, e2)
	}
	if got := f.stored(t, "t"); got.LastProducerID != pid || got.LastProducerEpoch != math.MaxInt16-1 {
		t.Fatalf("after rotation: %+v, want the previous producer id and epoch kept", got)
	}
	// A retry of the rotating call names the old id with its exhausted
	// epoch: it gets the same answer.
	if p, e := mustInit(t, c, "t", pid, math.MaxInt16-1); p != p2 || e != 0 {
		t.Fatalf("a retry of the rotation: %d/%d, want %d/0", p, e, p2)
	}

	// A timeout at the last epoch takes the reserved one, and the next
	// InitProducerId rotates.
	f2 := newFixture(t)
	q, _ := mustInit(t, f2.c, "u", -1, -1)
	m = f2.stored(t, "u")
	m.ProducerEpoch = math.MaxInt16 - 1
	if _, err := f2.store.PutTransaction(ctx(t), m, m.Revision); err != nil {
		t.Fatal(err)
	}
	c2, _ := f2.coordinator(nil)
	if err := c2.AddPartitions(ctx(t), "u", q, math.MaxInt16-1, []metastore.TopicPartition{tp("a", 0)}); err != nil {
		t.Fatal(err)
	}
	c2.Tick(ctx(t), f2.clock.Advance(time.Minute))
	if got := f2.stored(t, "u"); got.State != StateCompleteAbort || got.ProducerEpoch != math.MaxInt16 {
		t.Fatalf("timed out at the last epoch: %+v", got)
	}
	if q2, e := mustInit(t, c2, "u", -1, -1); q2 == q || e != 0 {
		t.Fatalf("InitProducerId after the reserved epoch: %d/%d, want a new producer id", q2, e)
	}
}

func TestExpiration(t *testing.T) {
	f := newFixture(t)
	pid, epoch := mustInit(t, f.c, "idle", -1, -1)
	mustInit(t, f.c, "busy", -1, -1)
	f.clock.Advance(30 * time.Minute)
	if err := f.c.AddOffsets(ctx(t), "busy", pid+1, 0, "g"); err != nil {
		t.Fatal(err)
	}
	// busy's timeout is 10s, but a failing marker keeps it in
	// PrepareAbort: an id with a transaction in flight never expires.
	f.markers.setFail(errors.New("down"))
	f.c.Tick(ctx(t), f.clock.Advance(31*time.Minute))
	if _, err := f.c.Describe(ctx(t), "idle"); !errors.Is(err, ErrTransactionalIDNotFound) {
		t.Fatalf("an id unused past transactional.id.expiration.ms: %v, want it deleted", err)
	}
	if m := f.stored(t, "busy"); m.State != StatePrepareAbort {
		t.Fatalf("busy: %+v", m)
	}
	f.c.Tick(ctx(t), f.clock.Advance(2*time.Hour))
	if _, err := f.store.GetTransaction(ctx(t), "busy"); err != nil {
		t.Fatalf("an id with a transaction in flight expired: %v", err)
	}
	wantErr(t, "EndTxn of the expired id", f.c.EndTxn(ctx(t), "idle", pid, epoch, true), ErrInvalidProducerIDMapping)
}

func TestListAndOwnership(t *testing.T) {
	f := newFixture(t)
	a, _ := mustInit(t, f.c, "a", -1, -1)
	mustInit(t, f.c, "b", -1, -1)
	if err := f.c.AddPartitions(ctx(t), "a", a, 0, []metastore.TopicPartition{tp("x", 0)}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(5 * time.Second)
	for _, c := range []struct {
		filter ListFilter
		want   []string
	}{
		{ListFilter{}, []string{"a", "b"}},
		{ListFilter{States: []string{StateOngoing}}, []string{"a"}},
		{ListFilter{ProducerIDs: []int64{a}}, []string{"a"}},
		{ListFilter{MinDuration: 5 * time.Second}, []string{"a"}},
		{ListFilter{MinDuration: 6 * time.Second}, nil},
	} {
		got, err := f.c.List(ctx(t), c.filter)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range got {
			ids = append(ids, m.TransactionalID)
		}
		if !reflect.DeepEqual(ids, c.want) {
			t.Errorf("List(%+v) = %v, want %v", c.filter, ids, c.want)
		}
	}
	onlyB, _ := f.coordinator(func(id string) bool { return id == "b" })
	if got, err := onlyB.List(ctx(t), ListFilter{}); err != nil || len(got) != 1 || got[0].TransactionalID != "b" {
		t.Fatalf("List at a coordinator of b only: %+v, %v", got, err)
	}
	if _, err := onlyB.Describe(ctx(t), "a"); !errors.Is(err, ErrNotCoordinator) {
		t.Fatalf("Describe of an id not owned: %v", err)
	}
}

// flakyStore stores a put and then reports it failed, as an etcd request
// that timed out after it was applied.
type flakyStore struct {
	*metastoretest.Store
	mu   sync.Mutex
	lose bool
}

func (s *flakyStore) PutTransaction(ctx context.Context, meta metastore.TransactionMeta, prev int64) (metastore.TransactionMeta, error) {
	stored, err := s.Store.PutTransaction(ctx, meta, prev)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && s.lose {
		return metastore.TransactionMeta{}, errors.New("etcd: request timed out")
	}
	return stored, err
}

// A PrepareCommit whose write landed but was reported failed is completed
// by the next tick, though no request for the id comes again.
func TestAmbiguousWriteCompletedByTick(t *testing.T) {
	f := newFixture(t)
	fs := &flakyStore{Store: f.store}
	m := &markers{}
	c := New(fs, storePIDs{f.store}, m, Config{MaxTimeout: time.Minute, Now: f.clock.Now})
	pid, epoch := mustInit(t, c, "t", -1, -1)
	if err := c.AddPartitions(ctx(t), "t", pid, epoch, []metastore.TopicPartition{tp("a", 0)}); err != nil {
		t.Fatal(err)
	}
	fs.mu.Lock()
	fs.lose = true
	fs.mu.Unlock()
	if err := c.EndTxn(ctx(t), "t", pid, epoch, true); err == nil {
		t.Fatal("EndTxn whose PrepareCommit write failed answered nil")
	}
	if got := f.stored(t, "t"); got.State != StatePrepareCommit {
		t.Fatalf("%+v, want PrepareCommit stored", got)
	}
	fs.mu.Lock()
	fs.lose = false
	fs.mu.Unlock()
	c.Tick(ctx(t), f.clock.Now())
	if got := f.stored(t, "t"); got.State != StateCompleteCommit {
		t.Fatalf("after a tick: %+v, want CompleteCommit", got)
	}
	if got := m.taken(); len(got) != 1 || !got[0].Commit {
		t.Fatalf("markers %+v, want one commit", got)
	}
}
