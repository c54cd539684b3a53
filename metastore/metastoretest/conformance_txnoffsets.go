package metastoretest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/metastore"
)

// testTxnOffsets checks transactional offset commits: fenced by the
// transactional id's state and the group's generation, pending until
// completed, completed idempotently with Kafka's order against plain
// commits, and deleted with the group or its offsets.
func testTxnOffsets(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	putTxn := func(id string, pid int64, epoch int16, state string, groups ...string) metastore.TransactionMeta {
		t.Helper()
		prev := int64(0)
		if cur, err := s.GetTransaction(ctx, id); err == nil {
			prev = cur.Revision
		}
		m, err := s.PutTransaction(ctx, metastore.TransactionMeta{
			TransactionalID: id, ProducerID: pid, ProducerEpoch: epoch, LastProducerID: -1, LastProducerEpoch: -1,
			TimeoutMs: 60000, State: state, Groups: groups, StartTime: time.Now(), UpdatedAt: time.Now(),
		}, prev)
		if err != nil {
			t.Fatalf("put transaction %q: %v", id, err)
		}
		return m
	}
	oc := func(topic string, p int32, off int64) metastore.OffsetCommit {
		return metastore.OffsetCommit{Topic: topic, Partition: p, Offset: off, LeaderEpoch: 4, Metadata: fmt.Sprintf("m%d", off)}
	}
	fetch := func(group string) (map[metastore.TopicPartition]int64, []metastore.TopicPartition) {
		t.Helper()
		offs, pending, err := s.FetchOffsetsAndPending(ctx, group)
		if err != nil {
			t.Fatalf("fetch offsets and pending of %q: %v", group, err)
		}
		got := map[metastore.TopicPartition]int64{}
		for _, o := range offs {
			if o.Metadata != fmt.Sprintf("m%d", o.Offset) || o.LeaderEpoch != 4 {
				t.Errorf("offset %+v lost its metadata or leader epoch", o)
			}
			got[metastore.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o.Offset
		}
		return got, pending
	}
	tp := func(topic string, p int32) metastore.TopicPartition {
		return metastore.TopicPartition{Topic: topic, Partition: p}
	}

	putTxn("tx", 7, 3, metastore.TxnStateOngoing, "g")
	producer := metastore.TxnProducer{TransactionalID: "tx", ProducerID: 7, ProducerEpoch: 3}
	for _, c := range []struct {
		name     string
		producer metastore.TxnProducer
		group    string
		want     error
	}{
		{"unknown transactional id", metastore.TxnProducer{TransactionalID: "nope", ProducerID: 7, ProducerEpoch: 3}, "g", metastore.ErrTxnProducerIDMismatch},
		{"other producer id", metastore.TxnProducer{TransactionalID: "tx", ProducerID: 8, ProducerEpoch: 3}, "g", metastore.ErrTxnProducerIDMismatch},
		{"older epoch", metastore.TxnProducer{TransactionalID: "tx", ProducerID: 7, ProducerEpoch: 2}, "g", metastore.ErrTxnProducerFenced},
		{"group not added", producer, "h", metastore.ErrTxnNotOngoing},
	} {
		if err := s.CommitTxnOffsets(ctx, c.group, c.producer, "", -1, []metastore.OffsetCommit{oc("t", 0, 1)}); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	if err := s.CommitTxnOffsets(ctx, "g", producer, "m", 1, []metastore.OffsetCommit{oc("t", 0, 1)}); !errors.Is(err, metastore.ErrGenerationMismatch) {
		t.Errorf("commit of generation 1 to a group without state: got %v, want ErrGenerationMismatch", err)
	}
	if _, pending := fetch("g"); len(pending) != 0 {
		t.Fatalf("refused commits left pending offsets %v", pending)
	}

	// A plain commit before the transactional one loses to it; one after
	// it wins, as in Kafka.
	if err := s.CommitOffsets(ctx, "g", "", -1, []metastore.OffsetCommit{oc("t", 0, 5)}); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitTxnOffsets(ctx, "g", producer, "", -1, []metastore.OffsetCommit{oc("t", 0, 9), oc("t", 1, 11), oc("t", 2, 12), oc("t", 0, 10)}); err != nil {
		t.Fatalf("commit transactional offsets: %v", err)
	}
	if err := s.CommitOffsets(ctx, "g", "", -1, []metastore.OffsetCommit{oc("t", 1, 100)}); err != nil {
		t.Fatal(err)
	}
	got, pending := fetch("g")
	if want := map[metastore.TopicPartition]int64{tp("t", 0): 5, tp("t", 1): 100}; !maps.Equal(got, want) {
		t.Errorf("committed offsets with a transaction pending: got %v, want %v", got, want)
	}
	if want := []metastore.TopicPartition{tp("t", 0), tp("t", 1), tp("t", 2)}; !slices.Equal(pending, want) {
		t.Errorf("pending partitions: got %v, want %v", pending, want)
	}
	if expired, err := s.ExpireGroupOffsets(ctx, time.Now().Add(365*24*time.Hour), time.Hour); err != nil || len(expired) != 0 {
		t.Errorf("a group with pending offsets expired: %v, %v", expired, err)
	}

	// Once the coordinator prepares the commit, the transaction takes no
	// more offsets.
	putTxn("tx", 7, 3, "PrepareCommit", "g")
	if err := s.CommitTxnOffsets(ctx, "g", producer, "", -1, []metastore.OffsetCommit{oc("t", 3, 13)}); !errors.Is(err, metastore.ErrTxnNotOngoing) {
		t.Errorf("commit after PrepareCommit: got %v, want ErrTxnNotOngoing", err)
	}
	written, err := s.CompleteTxnOffsets(ctx, "g", 7, true)
	if err != nil {
		t.Fatalf("complete: %v", err)
	}
	if want := []metastore.TopicPartition{tp("t", 0), tp("t", 2)}; !slices.Equal(written, want) {
		t.Errorf("completion wrote %v, want %v", written, want)
	}
	got, pending = fetch("g")
	if want := map[metastore.TopicPartition]int64{tp("t", 0): 10, tp("t", 1): 100, tp("t", 2): 12}; !maps.Equal(got, want) || len(pending) != 0 {
		t.Errorf("after the commit: offsets %v pending %v, want %v and none", got, pending, want)
	}
	if written, err := s.CompleteTxnOffsets(ctx, "g", 7, true); err != nil || len(written) != 0 {
		t.Errorf("completing again: wrote %v, %v; want nothing", written, err)
	}

	// An aborted transaction's offsets are dropped.
	putTxn("tx2", 8, 0, metastore.TxnStateOngoing, "g", "only-pending")
	p2 := metastore.TxnProducer{TransactionalID: "tx2", ProducerID: 8, ProducerEpoch: 0}
	if err := s.CommitTxnOffsets(ctx, "g", p2, "", -1, []metastore.OffsetCommit{oc("t", 0, 50), oc("t", 3, 53)}); err != nil {
		t.Fatal(err)
	}
	if written, err := s.CompleteTxnOffsets(ctx, "g", 8, false); err != nil || len(written) != 0 {
		t.Errorf("abort: wrote %v, %v", written, err)
	}
	if got, pending := fetch("g"); got[tp("t", 0)] != 10 || len(got) != 3 || len(pending) != 0 {
		t.Errorf("after the abort: offsets %v pending %v", got, pending)
	}

	// Deleting offsets deletes their pending offsets; a group with only
	// pending offsets exists until deleted.
	if err := s.CommitTxnOffsets(ctx, "g", p2, "", -1, []metastore.OffsetCommit{oc("t", 1, 60), oc("u", 0, 61)}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteOffsets(ctx, "g", "t", nil); err != nil {
		t.Fatal(err)
	}
	if got, pending := fetch("g"); len(got) != 0 || !slices.Equal(pending, []metastore.TopicPartition{tp("u", 0)}) {
		t.Errorf("after deleting topic t: offsets %v pending %v, want none and u-0", got, pending)
	}
	if err := s.CommitTxnOffsets(ctx, "only-pending", p2, "", -1, []metastore.OffsetCommit{oc("t", 0, 70)}); err != nil {
		t.Fatal(err)
	}
	groups, err := s.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(groups, func(g metastore.GroupMeta) bool { return g.Group == "only-pending" }) {
		t.Errorf("a group with only pending offsets is not listed: %v", groups)
	}
	for _, g := range []string{"g", "only-pending"} {
		if err := s.DeleteGroup(ctx, g); err != nil {
			t.Errorf("delete group %q: %v", g, err)
		}
		if got, pending := fetch(g); len(got) != 0 || len(pending) != 0 {
			t.Errorf("deleted group %q still has offsets %v pending %v", g, got, pending)
		}
	}
	if written, err := s.CompleteTxnOffsets(ctx, "g", 8, true); err != nil || len(written) != 0 {
		t.Errorf("completing a deleted group's transaction: wrote %v, %v", written, err)
	}

	// A member's transactional commit is fenced by its generation, and a
	// transaction over more partitions than one etcd transaction takes
	// completes whole.
	meta, err := s.PutGroup(ctx, metastore.GroupMeta{Group: "big", Generation: 2, State: "Stable",
		Members: []metastore.GroupMember{{MemberID: "m1"}}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	putTxn("tx3", 9, 1, metastore.TxnStateOngoing, "big")
	p3 := metastore.TxnProducer{TransactionalID: "tx3", ProducerID: 9, ProducerEpoch: 1}
	if err := s.CommitTxnOffsets(ctx, "big", p3, "m2", 2, []metastore.OffsetCommit{oc("t", 0, 1)}); !errors.Is(err, metastore.ErrUnknownMember) {
		t.Errorf("commit of a non-member: got %v, want ErrUnknownMember", err)
	}
	if err := s.CommitTxnOffsets(ctx, "big", p3, "m1", 1, []metastore.OffsetCommit{oc("t", 0, 1)}); !errors.Is(err, metastore.ErrGenerationMismatch) {
		t.Errorf("commit of an old generation: got %v, want ErrGenerationMismatch", err)
	}
	var many []metastore.OffsetCommit
	for p := range int32(300) {
		many = append(many, oc("t", p, int64(p)+1000))
	}
	if err := s.CommitTxnOffsets(ctx, "big", p3, "m1", meta.Generation, many); err != nil {
		t.Fatalf("commit 300 transactional offsets: %v", err)
	}
	written, err = s.CompleteTxnOffsets(ctx, "big", 9, true)
	if err != nil || len(written) != len(many) {
		t.Fatalf("complete 300: wrote %d, %v", len(written), err)
	}
	got, pending = fetch("big")
	if len(got) != len(many) || got[tp("t", 299)] != 1299 || len(pending) != 0 {
		t.Errorf("after completing 300: %d offsets, t-299 at %d, %d pending", len(got), got[tp("t", 299)], len(pending))
	}
}
