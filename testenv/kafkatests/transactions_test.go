package kafkatests_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// Transactions from franz-go's transactional producer on a three-broker
// cluster, where the coordinator and the partitions' leaders are different
// brokers: committed transactions are read by read_committed consumers,
// aborted ones are not (read_uncommitted consumers see both), and a second
// producer with the same transactional id fences the first, whose open
// transaction is aborted and whose later writes are refused.
func TestTransactionsCommitAbortAndFence(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic, parts = "txn", 3
	_, adm, seeds := testenvtest.KafkaClient(t, c)
	if resp, err := adm.CreateTopic(ctx, parts, 3, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v %v", err, resp.Err)
	}

	producer := func(id string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionTimeout(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	// txn writes n records per partition named prefix-p-i in one
	// transaction and commits or aborts it.
	txn := func(cl *kgo.Client, prefix string, n int, commit bool) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for p := range int32(parts) {
			for i := range n {
				r := &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "%s-%d-%d", prefix, p, i)}
				if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
					t.Fatalf("produce %s: %v", r.Value, err)
				}
			}
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end transaction %s (commit %v): %v", prefix, commit, err)
		}
	}
	p1 := producer("copy-1")
	txn(p1, "first", 10, true)
	txn(p1, "aborted", 10, false)
	txn(p1, "second", 10, true)

	// Zombie fencing: p1 opens a transaction, then p2 initializes the same
	// transactional id. p1's open transaction is aborted, and its next
	// write and its commit are refused.
	if err := p1.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p1.ProduceSync(ctx, &kgo.Record{Partition: 0, Value: []byte("zombie-0")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p2 := producer("copy-1")
	txn(p2, "successor", 1, true)
	err := p1.ProduceSync(ctx, &kgo.Record{Partition: 1, Value: []byte("zombie-1")}).FirstErr()
	if !errors.Is(err, kerr.InvalidProducerEpoch) && !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("the fenced producer's write: %v, want INVALID_PRODUCER_EPOCH or PRODUCER_FENCED", err)
	}
	if err := p1.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Fatal("the fenced producer committed")
	}

	var committed []string
	for _, prefix := range []string{"first", "second", "successor"} {
		n := 10
		if prefix == "successor" {
			n = 1
		}
		for p := range parts {
			for i := range n {
				committed = append(committed, fmt.Sprintf("%s-%d-%d", prefix, p, i))
			}
		}
	}
	got := readAll(ctx, t, seeds, topic, kgo.ReadCommitted(), len(committed))
	if !slices.Equal(got, sortedPerPartition(committed)) {
		t.Fatalf("read_committed read\n%v\nwant\n%v", got, sortedPerPartition(committed))
	}
	// read_uncommitted sees the aborted records and the zombie's first one
	// too (the markers are not records).
	all := readAll(ctx, t, seeds, topic, kgo.ReadUncommitted(), len(committed)+3*10+1)
	if n := countPrefix(all, "aborted-"); n != 30 {
		t.Fatalf("read_uncommitted read %d aborted records, want 30: %v", n, all)
	}
	if n := countPrefix(all, "zombie-"); n != 1 {
		t.Fatalf("read_uncommitted read %d zombie records, want 1 (zombie-0): %v", n, all)
	}
}

// readAll reads topic from the start with the isolation level until want
// records arrived, and a little longer to see that no more come; it
// returns their values grouped by partition, in offset order.
func readAll(ctx context.Context, t *testing.T, seeds []string, topic string, level kgo.IsolationLevel, want int) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(level))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	byPart := map[int32][]string{}
	n := 0
	for n < want {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records: %v", n, want, ctx.Err())
		}
		fetches.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s-%d: %v", topic, p, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			byPart[r.Partition] = append(byPart[r.Partition], string(r.Value))
			n++
		})
	}
	// Nothing more arrives.
	extra, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	cl.PollFetches(extra).EachRecord(func(r *kgo.Record) {
		t.Errorf("read a record past the %d expected: %s-%d %q", want, topic, r.Partition, r.Value)
	})
	var out []string
	for _, p := range slices.Sorted(maps.Keys(byPart)) {
		out = append(out, byPart[p]...)
	}
	return out
}

// sortedPerPartition orders values named prefix-partition-i as readAll
// returns them: by partition, then in the order given.
func sortedPerPartition(values []string) []string {
	out := slices.Clone(values)
	slices.SortStableFunc(out, func(a, b string) int { return strings.Compare(partOf(a), partOf(b)) })
	return out
}

func partOf(v string) string {
	parts := strings.Split(v, "-")
	return parts[len(parts)-2]
}

func countPrefix(values []string, prefix string) int {
	n := 0
	for _, v := range values {
		if strings.HasPrefix(v, prefix) {
			n++
		}
	}
	return n
}
