package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/broker/txn"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/record"
)

// txnBatch is a transactional data batch of n records.
func markerTxnBatch(t *testing.T, pid int64, epoch int16, seq int32, n int) []byte {
	t.Helper()
	b := record.NewBuilder(time.Now().UnixMilli(), 0)
	b.SetProducer(pid, epoch, seq)
	b.SetTransactional(true)
	for i := range n {
		b.Append(&record.Record{Value: fmt.Appendf(nil, "txn-%d-%d", pid, i)})
	}
	data, err := b.Build(record.None)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// state is a partition's state in the metastore.
func (c *coreCluster) state(t *testing.T, topic string, partition int32) metastore.PartitionState {
	t.Helper()
	states, err := c.store.PartitionStates(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return states[partition]
}

// appendTxn produces a transactional batch of producer pid, as its
// transactional id "tx-<pid>" with the partition added to an open
// transaction in the metastore (as a coordinator stores it), and waits
// until it is committed; it returns the batch's base offset.
func (c *coreCluster) appendTxn(t *testing.T, topic string, partition int32, pid int64, epoch int16, seq int32) int64 {
	t.Helper()
	ctx := context.Background()
	id := fmt.Sprintf("tx-%d", pid)
	tp := metastore.TopicPartition{Topic: topic, Partition: partition}
	m, err := c.store.GetTransaction(ctx, id)
	if errors.Is(err, metastore.ErrTransactionNotFound) {
		m, err = metastore.TransactionMeta{TransactionalID: id, LastProducerID: -1, LastProducerEpoch: -1, TimeoutMs: 60000}, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if m.ProducerID != pid || m.ProducerEpoch != epoch || m.State != txn.StateOngoing {
		// A new transaction, started now: the brokers' own coordinators
		// own these ids and abort one open past its timeout when they
		// load them (at start and whenever the live brokers change).
		m.Partitions, m.StartTime = nil, time.Now()
	}
	m.ProducerID, m.ProducerEpoch, m.State = pid, epoch, txn.StateOngoing
	if !slices.Contains(m.Partitions, tp) {
		m.Partitions = append(m.Partitions, tp)
	}
	if _, err := c.store.PutTransaction(ctx, m, m.Revision); err != nil {
		t.Fatal(err)
	}
	leader := c.core(c.state(t, topic, partition).Leader)
	var res []ProduceResult
	await.True(t, 30*time.Second, "the leader to take the batch", func() bool {
		res, err = leader.ProduceTransactional(ctx, id, topic, AcksAll, 20*time.Second,
			[]PartitionBatches{{Partition: partition, Batches: markerTxnBatch(t, pid, epoch, seq, 2)}})
		if errors.Is(err, ErrUnknownTopicOrPartition) {
			return false // not known to the leader yet
		}
		if err != nil {
			t.Fatal(err)
		}
		return !errors.Is(res[0].Err, ErrNotLeader) && !errors.Is(res[0].Err, ErrLeaderNotAvailable)
	})
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	return res[0].BaseOffset
}

// A transactional batch is appended only in a transaction its
// coordinator's stored state has the partition in (KIP-890's
// verification); once the transaction is open in the log, the next
// batches need no verification; after its marker, the next transaction is
// verified again.
func TestTransactionalProduceIsVerified(t *testing.T) {
	c := startCoreCluster(t, 1, nil)
	ctx := context.Background()
	core := c.core(1)
	if _, err := core.CreateTopic(ctx, TopicSpec{Name: "v", Partitions: 2, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	produce := func(id string, partition int32, pid int64, epoch int16, seq int32) error {
		var res []ProduceResult
		await.True(t, 30*time.Second, "the leader to take the batch", func() bool {
			var err error
			res, err = core.ProduceTransactional(ctx, id, "v", AcksAll, 20*time.Second,
				[]PartitionBatches{{Partition: partition, Batches: markerTxnBatch(t, pid, epoch, seq, 1)}})
			if errors.Is(err, ErrUnknownTopicOrPartition) {
				return false // not known to the leader yet
			}
			if err != nil {
				t.Fatal(err)
			}
			return !errors.Is(res[0].Err, ErrNotLeader) && !errors.Is(res[0].Err, ErrLeaderNotAvailable)
		})
		return res[0].Err
	}
	// No state at all, and a request without a transactional id.
	if err := produce("tx-5", 0, 5, 0, 0); !errors.Is(err, txn.ErrInvalidTxnState) {
		t.Fatalf("transactional batch of an id without state: %v, want INVALID_TXN_STATE", err)
	}
	res, err := core.ProduceWithTimeout(ctx, "v", AcksAll, time.Second, []PartitionBatches{{Partition: 0, Batches: markerTxnBatch(t, 5, 0, 0, 1)}})
	if err != nil || !errors.Is(res[0].Err, ErrInvalidRequest) {
		t.Fatalf("transactional batch without a transactional id: %v %v, want INVALID_REQUEST", err, res)
	}
	// Partition 0 in the transaction, partition 1 not.
	c.appendTxn(t, "v", 0, 5, 0, 0)
	if err := produce("tx-5", 1, 5, 0, 1); !errors.Is(err, txn.ErrInvalidTxnState) {
		t.Fatalf("batch for a partition outside the transaction: %v, want INVALID_TXN_STATE", err)
	}
	// Open in the log: the state is not read again, so a stored state that
	// no longer has the partition does not matter.
	m, err := c.store.GetTransaction(ctx, "tx-5")
	if err != nil {
		t.Fatal(err)
	}
	m.Partitions = nil
	if _, err := c.store.PutTransaction(ctx, m, m.Revision); err != nil {
		t.Fatal(err)
	}
	if err := produce("tx-5", 0, 5, 0, 2); err != nil {
		t.Fatalf("second batch of the open transaction: %v", err)
	}
	// A marker ends it; a batch after it (a late retry, a zombie) is
	// verified again and refused, and nothing opens in the log.
	if _, err := core.WriteTxnMarkers(ctx, WriteTxnMarkersRequest{BrokerID: 1, Secret: c.regs[1].ReplicaSecret(),
		Markers: []TxnMarker{{ProducerID: 5, ProducerEpoch: 0, Commit: true, Partitions: partitionsOf("v", 0)}}}); err != nil {
		t.Fatal(err)
	}
	if err := produce("tx-5", 0, 5, 0, 3); !errors.Is(err, txn.ErrInvalidTxnState) {
		t.Fatalf("batch after the transaction's marker: %v, want INVALID_TXN_STATE", err)
	}
	p, err := core.hosted.partition("v", 0)
	if err != nil {
		t.Fatal(err)
	}
	if open := p.log.OpenTransactions(); len(open) != 0 {
		t.Fatalf("open transactions after the refused batch: %v", open)
	}
	// A newer epoch in the stored state fences the old one.
	if m, err = c.store.GetTransaction(ctx, "tx-5"); err != nil {
		t.Fatal(err)
	}
	m.ProducerEpoch, m.Partitions = 1, partitionsOf("v", 0)
	if _, err := c.store.PutTransaction(ctx, m, m.Revision); err != nil {
		t.Fatal(err)
	}
	if err := produce("tx-5", 0, 5, 0, 3); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("batch of epoch 0 after the id moved to epoch 1: %v, want INVALID_PRODUCER_EPOCH", err)
	}
	if err := produce("tx-5", 0, 5, 1, 0); err != nil {
		t.Fatalf("batch of the new epoch: %v", err)
	}
}

// awaitReplicated waits until every replica of the partition has the
// leader's log end offset.
func (c *coreCluster) awaitReplicated(t *testing.T, topic string, partition int32) metastore.PartitionState {
	t.Helper()
	st := c.state(t, topic, partition)
	end := c.hosted(st.Leader, topic, partition).LogEndOffset()
	await.True(t, 30*time.Second, fmt.Sprintf("every replica of %s-%d to reach offset %d", topic, partition, end), func() bool {
		for _, id := range st.Replicas {
			if p := c.hosted(id, topic, partition); p == nil || p.LogEndOffset() != end {
				return false
			}
		}
		return true
	})
	return st
}

// markerIn returns the end-transaction marker at offset in p's log, failing
// the test if there is none there.
func markerIn(t *testing.T, p *Partition, offset int64) (record.EndTxnMarker, record.Header) {
	t.Helper()
	rr, err := p.log.Read(offset, 1<<20, p.log.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	it := record.NewBatches(rr.Data)
	for it.Next() {
		h := it.Header()
		if h.BaseOffset != offset {
			continue
		}
		if !h.Control() {
			t.Fatalf("%s-%d offset %d is a data batch, want a marker", p.Topic, p.Index, offset)
		}
		_, m, ok, err := record.ParseControlBatch(it.Bytes())
		if err != nil || !ok {
			t.Fatalf("%s-%d offset %d: control batch is no marker (%v)", p.Topic, p.Index, offset, err)
		}
		return m, h
	}
	t.Fatalf("%s-%d has no batch at offset %d", p.Topic, p.Index, offset)
	return record.EndTxnMarker{}, record.Header{}
}

func openProducers(p *Partition) []int64 {
	var out []int64
	for _, o := range p.log.OpenTransactions() {
		out = append(out, o.ProducerID)
	}
	return out
}

func partitionsOf(topic string, ps ...int32) []metastore.TopicPartition {
	out := make([]metastore.TopicPartition, len(ps))
	for i, p := range ps {
		out[i] = metastore.TopicPartition{Topic: topic, Partition: p}
	}
	return out
}

// Two producers' transactions span partitions led by different brokers;
// the marker writer of a broker that leads only some of them commits one
// and aborts the other. Every replica of every partition ends with the
// markers, no transaction open, the abort in the aborted-transaction index,
// and the coordinator epoch in its producer state.
func TestTxnMarkersCommitAndAbortAcrossLeaders(t *testing.T) {
	c := startCoreCluster(t, 3, nil)
	ctx := context.Background()
	if _, err := c.core(1).CreateTopic(ctx, TopicSpec{Name: "tx", Partitions: 3, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	leaders := map[int32]bool{}
	for i := range int32(3) {
		await.True(t, 30*time.Second, "a leader and a full ISR", func() bool {
			st := c.state(t, "tx", i)
			return st.Leader > 0 && len(st.ISR) == 3
		})
		leaders[c.state(t, "tx", i).Leader] = true
	}
	if len(leaders) < 2 {
		t.Fatalf("the partitions' leaders are %v: the test needs at least two", leaders)
	}
	a, _, err := c.core(1).InitProducerID(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	bID := a + 1
	firstA := map[int32]int64{}
	firstB := map[int32]int64{}
	for i := range int32(3) {
		firstA[i] = c.appendTxn(t, "tx", i, a, 0, 0)
	}
	for i := range int32(2) {
		firstB[i] = c.appendTxn(t, "tx", i, bID, 0, 0)
	}
	for i := range int32(3) {
		p := c.hosted(c.state(t, "tx", i).Leader, "tx", i)
		if got := p.log.FirstUnstableOffset(); got != firstA[i] {
			t.Fatalf("tx-%d: first unstable offset %d before the markers, want %d", i, got, firstA[i])
		}
		if p.LastStableOffset() >= p.HighWatermark() {
			t.Fatalf("tx-%d: last stable offset %d not below the high watermark %d", i, p.LastStableOffset(), p.HighWatermark())
		}
	}

	// A partition of a topic deleted since (here: never created) is
	// skipped: nobody can read it.
	w := c.core(1).TxnMarkerWriter()
	if err := w.WriteMarkers(ctx, append(partitionsOf("tx", 0, 1, 2), partitionsOf("gone", 0)...), a, 0, 3, true); err != nil {
		t.Fatal(err)
	}
	commitAt := map[int32]int64{}
	for i := range int32(3) {
		st := c.awaitReplicated(t, "tx", i)
		commitAt[i] = c.hosted(st.Leader, "tx", i).LogEndOffset() - 1
		for _, id := range st.Replicas {
			p := c.hosted(id, "tx", i)
			m, h := markerIn(t, p, commitAt[i])
			if m != (record.EndTxnMarker{ProducerID: a, Commit: true, CoordinatorEpoch: 3}) {
				t.Fatalf("broker %d tx-%d: marker %+v", id, i, m)
			}
			if h.PartitionLeaderEpoch != st.LeaderEpoch {
				t.Fatalf("broker %d tx-%d: marker in leader epoch %d, want %d", id, i, h.PartitionLeaderEpoch, st.LeaderEpoch)
			}
			wantOpen, wantFirst := []int64(nil), int64(-1)
			if i < 2 {
				wantOpen, wantFirst = []int64{bID}, firstB[i]
			}
			if got := openProducers(p); !slices.Equal(got, wantOpen) || p.log.FirstUnstableOffset() != wantFirst {
				t.Fatalf("broker %d tx-%d: open %v from %d after the commit, want %v from %d", id, i, got, p.log.FirstUnstableOffset(), wantOpen, wantFirst)
			}
			if e := p.producers.table.Get(a, time.Now()); e == nil || e.CoordinatorEpoch != 3 {
				t.Fatalf("broker %d tx-%d: producer state %+v, want coordinator epoch 3", id, i, e)
			}
		}
	}

	if err := w.WriteMarkers(ctx, partitionsOf("tx", 0, 1), bID, 0, 3, false); err != nil {
		t.Fatal(err)
	}
	for i := range int32(2) {
		st := c.awaitReplicated(t, "tx", i)
		for _, id := range st.Replicas {
			p := c.hosted(id, "tx", i)
			end := p.LogEndOffset()
			if m, _ := markerIn(t, p, end-1); m.Commit || m.ProducerID != bID {
				t.Fatalf("broker %d tx-%d: marker %+v, want producer %d's abort", id, i, m, bID)
			}
			if open := openProducers(p); len(open) != 0 || p.log.FirstUnstableOffset() != -1 {
				t.Fatalf("broker %d tx-%d: open %v after the abort", id, i, open)
			}
			aborted := p.log.AbortedTransactions(0, end)
			if len(aborted) != 1 || aborted[0].ProducerID != bID || aborted[0].FirstOffset != firstB[i] || aborted[0].LastOffset != end-1 {
				t.Fatalf("broker %d tx-%d: aborted %+v, want producer %d from %d to %d", id, i, aborted, bID, firstB[i], end-1)
			}
		}
		if p := c.hosted(st.Leader, "tx", i); p.LastStableOffset() != p.HighWatermark() {
			t.Fatalf("tx-%d: last stable offset %d, high watermark %d", i, p.LastStableOffset(), p.HighWatermark())
		}
	}
}

// A leader refuses a marker from an older coordinator epoch than the last
// it took for the producer, and one with an older producer epoch, writing
// nothing; a marker repeated by the same coordinator is answered without
// a second batch, while a newer coordinator's repeat is written once (its
// followers learn the epoch). Only a broker may call, and only a leader
// writes.
func TestTxnMarkersFencingAndRepeats(t *testing.T) {
	c := startCoreCluster(t, 2, nil)
	ctx := context.Background()
	if _, err := c.core(1).CreateTopic(ctx, TopicSpec{Name: "f", Partitions: 1, ReplicationFactor: 2}); err != nil {
		t.Fatal(err)
	}
	await.True(t, 30*time.Second, "a leader and a full ISR", func() bool {
		st := c.state(t, "f", 0)
		return st.Leader > 0 && len(st.ISR) == 2
	})
	st := c.state(t, "f", 0)
	leaderID := st.Leader
	followerID := 3 - leaderID
	leader := c.core(leaderID)
	p := c.hosted(leaderID, "f", 0)
	const pid = 42
	call := func(m TxnMarker) error {
		t.Helper()
		m.ProducerID, m.Partitions = pid, partitionsOf("f", 0)
		res, err := leader.WriteTxnMarkers(ctx, WriteTxnMarkersRequest{BrokerID: followerID, Secret: c.regs[followerID].ReplicaSecret(), Markers: []TxnMarker{m}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 || res[0].ProducerID != pid || len(res[0].Partitions) != 1 || res[0].Partitions[0].Topic != "f" {
			t.Fatalf("results %+v", res)
		}
		return res[0].Partitions[0].Err
	}

	c.appendTxn(t, "f", 0, pid, 1, 0)
	if err := call(TxnMarker{ProducerEpoch: 1, Commit: true, CoordinatorEpoch: 5}); err != nil {
		t.Fatal(err)
	}
	end := p.LogEndOffset()
	if len(openProducers(p)) != 0 {
		t.Fatalf("open %v after the commit", openProducers(p))
	}

	// The same marker again: nothing written.
	if err := call(TxnMarker{ProducerEpoch: 1, Commit: true, CoordinatorEpoch: 5}); err != nil {
		t.Fatalf("repeat: %v", err)
	}
	if p.LogEndOffset() != end {
		t.Fatalf("a repeated marker moved the log end from %d to %d", end, p.LogEndOffset())
	}

	// A new transaction, and a replaced coordinator's marker for it.
	c.appendTxn(t, "f", 0, pid, 1, 2)
	end = p.LogEndOffset()
	err := call(TxnMarker{ProducerEpoch: 1, Commit: false, CoordinatorEpoch: 4})
	if !errors.Is(err, ErrTransactionCoordinatorFenced) || Classify(err) != KindTransactionCoordinatorFenced {
		t.Fatalf("marker of coordinator epoch 4 after 5: %v, want TRANSACTION_COORDINATOR_FENCED", err)
	}
	err = call(TxnMarker{ProducerEpoch: 0, Commit: false, CoordinatorEpoch: 5})
	if !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("marker of producer epoch 0 after 1: %v, want INVALID_PRODUCER_EPOCH", err)
	}
	if p.LogEndOffset() != end || !slices.Equal(openProducers(p), []int64{pid}) {
		t.Fatalf("refused markers changed the log: end %d (want %d), open %v", p.LogEndOffset(), end, openProducers(p))
	}

	// Its successor aborts it, and then repeats the abort from a newer
	// epoch still (a third coordinator): written once more, harmlessly.
	if err := call(TxnMarker{ProducerEpoch: 1, Commit: false, CoordinatorEpoch: 6}); err != nil {
		t.Fatal(err)
	}
	if err := call(TxnMarker{ProducerEpoch: 1, Commit: false, CoordinatorEpoch: 7}); err != nil {
		t.Fatal(err)
	}
	if err := call(TxnMarker{ProducerEpoch: 1, Commit: false, CoordinatorEpoch: 7}); err != nil {
		t.Fatal(err)
	}
	if p.LogEndOffset() != end+2 || len(openProducers(p)) != 0 || p.log.FirstUnstableOffset() != -1 {
		t.Fatalf("after the abort and its repeats: log end %d (want %d), open %v", p.LogEndOffset(), end+2, openProducers(p))
	}
	c.awaitReplicated(t, "f", 0)
	if e := c.hosted(followerID, "f", 0).producers.table.Get(pid, time.Now()); e == nil || e.CoordinatorEpoch != 7 || e.Epoch != 1 {
		t.Fatalf("follower's producer state %+v, want epoch 1, coordinator epoch 7", e)
	}

	// A marker bumping the producer epoch (a coordinator fencing the
	// producer) refuses the old epoch's batches afterwards.
	if err := call(TxnMarker{ProducerEpoch: 2, Commit: false, CoordinatorEpoch: 7}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.leaderAppend(markerTxnBatch(t, pid, 1, 4, 1), AcksLeader, 1, leader.leaseOK, leader.registered()); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("batch of epoch 1 after a marker of epoch 2: %v, want INVALID_PRODUCER_EPOCH", err)
	}

	// Only the leader writes, and only for a broker.
	res, err := c.core(followerID).WriteTxnMarkers(ctx, WriteTxnMarkersRequest{BrokerID: leaderID, Secret: c.regs[leaderID].ReplicaSecret(),
		Markers: []TxnMarker{{ProducerID: pid, ProducerEpoch: 2, CoordinatorEpoch: 7, Partitions: partitionsOf("f", 0)}}})
	if err != nil || !errors.Is(res[0].Partitions[0].Err, ErrNotLeader) {
		t.Fatalf("marker sent to the follower: %v, %+v; want NOT_LEADER_OR_FOLLOWER", err, res)
	}
	end = p.LogEndOffset()
	if _, err := leader.WriteTxnMarkers(ctx, WriteTxnMarkersRequest{BrokerID: followerID, Secret: "not-the-secret",
		Markers: []TxnMarker{{ProducerID: pid, ProducerEpoch: 3, CoordinatorEpoch: 8, Partitions: partitionsOf("f", 0)}}}); !errors.Is(err, ErrClusterAuthorizationFailed) {
		t.Fatalf("markers with a wrong secret: %v, want CLUSTER_AUTHORIZATION_FAILED", err)
	}
	if p.LogEndOffset() != end {
		t.Fatal("a caller without the secret wrote a marker")
	}

	// The writer names what it could not write, and why.
	err = c.core(followerID).TxnMarkerWriter().WriteMarkers(ctx, partitionsOf("f", 0), pid, 2, 6, true)
	if !errors.Is(err, ErrTransactionCoordinatorFenced) || !strings.Contains(err.Error(), "f-0") {
		t.Fatalf("writer with a fenced coordinator epoch: %v", err)
	}
}

// The leader of a transaction's partition dies while its marker is being
// written: the writer retries until the controller has elected another
// in-sync replica, which writes the marker in its own leader epoch.
func TestTxnMarkersRetriedAcrossLeaderChange(t *testing.T) {
	c := startCoreCluster(t, 3, nil)
	ctx := context.Background()
	if _, err := c.core(1).CreateTopic(ctx, TopicSpec{Name: "lc", Partitions: 1, ReplicationFactor: 3,
		Configs: map[string]string{"min.insync.replicas": "2"}}); err != nil {
		t.Fatal(err)
	}
	runController(t, c)
	await.True(t, 30*time.Second, "a leader and a full ISR", func() bool {
		st := c.state(t, "lc", 0)
		return st.Leader > 0 && len(st.ISR) == 3
	})
	before := c.state(t, "lc", 0)
	old := before.Leader
	writer := old%3 + 1
	const pid = 7
	first := c.appendTxn(t, "lc", 0, pid, 0, 0)

	c.stop(old)
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- c.core(writer).TxnMarkerWriter().WriteMarkers(wctx, partitionsOf("lc", 0), pid, 0, 1, true)
	}()
	// The writer tries the old leader first, then its lease ends and the
	// controller elects another.
	await.True(t, 30*time.Second, "the writer to try the stopped leader", func() bool { return c.markersLost.Load() > 0 })
	if err := c.regs[old].Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	after := c.state(t, "lc", 0)
	if after.Leader == old || after.Leader <= 0 || after.LeaderEpoch <= before.LeaderEpoch {
		t.Fatalf("state %+v after the write, want a new leader after %+v", after, before)
	}
	p := c.hosted(after.Leader, "lc", 0)
	m, h := markerIn(t, p, p.LogEndOffset()-1)
	if !m.Commit || m.ProducerID != pid || h.PartitionLeaderEpoch != after.LeaderEpoch {
		t.Fatalf("marker %+v in leader epoch %d, want producer %d's commit in %d", m, h.PartitionLeaderEpoch, pid, after.LeaderEpoch)
	}
	if open := openProducers(p); len(open) != 0 || p.HighWatermark() != p.LogEndOffset() {
		t.Fatalf("open %v, high watermark %d, log end %d: want the transaction from %d closed and committed",
			open, p.HighWatermark(), p.LogEndOffset(), first)
	}
}

// A verification is used up by the request it was made for: a batch that
// was verified but not appended (out of order here) leaves nothing behind
// that a later batch could ride on, and a marker that repeats the
// producer's last one (not written again) still ends what was verified.
// Otherwise a later batch of the producer, for a partition its current
// transaction does not have, would open a transaction no marker closes.
func TestTransactionalVerificationIsUsedUp(t *testing.T) {
	for _, failFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("verified-then-refused=%v", failFirst), func(t *testing.T) {
			c := startCoreCluster(t, 1, nil)
			ctx := context.Background()
			core := c.core(1)
			if _, err := core.CreateTopic(ctx, TopicSpec{Name: "v", Partitions: 2, ReplicationFactor: 1}); err != nil {
				t.Fatal(err)
			}
			produce := func(partition, seq int32) error {
				var res []ProduceResult
				await.True(t, 30*time.Second, "the leader to take the batch", func() bool {
					var err error
					res, err = core.ProduceTransactional(ctx, "tx-5", "v", AcksAll, 20*time.Second,
						[]PartitionBatches{{Partition: partition, Batches: markerTxnBatch(t, 5, 0, seq, 1)}})
					if errors.Is(err, ErrUnknownTopicOrPartition) {
						return false
					}
					if err != nil {
						t.Fatal(err)
					}
					return !errors.Is(res[0].Err, ErrNotLeader) && !errors.Is(res[0].Err, ErrLeaderNotAvailable)
				})
				return res[0].Err
			}
			abort := func() {
				t.Helper()
				res, err := core.WriteTxnMarkers(ctx, WriteTxnMarkersRequest{BrokerID: 1, Secret: c.regs[1].ReplicaSecret(),
					Markers: []TxnMarker{{ProducerID: 5, ProducerEpoch: 0, Commit: false, Partitions: partitionsOf("v", 0)}}})
				if err != nil || res[0].Partitions[0].Err != nil {
					t.Fatalf("abort marker: %v %+v", err, res)
				}
			}
			setState := func(state string, parts ...int32) {
				t.Helper()
				m, err := c.store.GetTransaction(ctx, "tx-5")
				if err != nil {
					t.Fatal(err)
				}
				m.State, m.Partitions, m.StartTime = state, partitionsOf("v", parts...), time.Now()
				if _, err := c.store.PutTransaction(ctx, m, m.Revision); err != nil {
					t.Fatal(err)
				}
			}
			c.appendTxn(t, "v", 0, 5, 0, 0) // T1 in v-0,
			abort()                         // aborted
			setState(txn.StateOngoing, 0)   // T2 has v-0
			if failFirst {
				if err := produce(0, 7); !errors.Is(err, ErrOutOfOrderSequence) {
					t.Fatalf("out-of-order batch: %v", err)
				}
			}
			abort()                       // T2 aborted: the same marker again, not written
			setState(txn.StateOngoing, 1) // T3 has v-1 only
			err := produce(0, 2)
			p, perr := core.hosted.partition("v", 0)
			if perr != nil {
				t.Fatal(perr)
			}
			if open := p.log.OpenTransactions(); err == nil || len(open) > 0 {
				t.Fatalf("a batch for a partition outside the transaction: %v; open in v-0: %v", err, open)
			}
			if !errors.Is(err, txn.ErrInvalidTxnState) {
				t.Fatalf("a batch for a partition outside the transaction: %v, want INVALID_TXN_STATE", err)
			}
		})
	}
}
