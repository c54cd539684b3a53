package kafkatests_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// The exactly-once copy: environment of the copy loop's process.
const (
	eosSeedsEnv = "STRATA_EOS_SEEDS"
	eosIn       = "eos-in"
	eosOut      = "eos-out"
	eosTxnID    = "eos-copy"
	eosGroup    = "eos-copy"
	eosParts    = 3
	// eosPerTxn records per transaction and eosWork of work in each make
	// the copy take about 20 seconds (500 transactions).
	eosPerTxn = 200
	eosWork   = 20 * time.Millisecond
)

// TestExactlyOnceCopyUnderKills copies 100,000 records from one topic to
// another with franz-go's GroupTransactSession (consume read_committed,
// produce, commit the consumed offsets in the same transaction) on a
// three-broker cluster, while the copy loop's process, the broker
// coordinating its transactional id and group, and an output partition's
// leader are each killed (SIGKILL) and restarted in turn. At the end the
// output, read read_committed, holds every input record exactly once, in
// input order per partition.
func TestExactlyOnceCopyUnderKills(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster and kills its members")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cl, adm, seeds := testenvtest.KafkaClient(t, c, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DefaultProduceTopic(eosIn),
		kgo.ProducerLinger(5*time.Millisecond))
	for _, topic := range []string{eosIn, eosOut} {
		minISR := "2"
		if resp, err := adm.CreateTopic(ctx, eosParts, 3, map[string]*string{"min.insync.replicas": &minISR}, topic); err != nil || resp.Err != nil {
			t.Fatalf("create topic %s: %v %v", topic, err, resp.Err)
		}
	}
	const total = 100_000
	want := make([][]string, eosParts)
	for i := range total {
		p := int32(i % eosParts)
		v := fmt.Sprintf("r-%d-%06d", p, len(want[p]))
		want[p] = append(want[p], v)
		cl.Produce(ctx, &kgo.Record{Partition: p, Value: []byte(v)}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce input: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	copier := startEOSCopier(t, seeds)
	// committed is how far the output's last stable offsets have come,
	// summed over partitions (markers count too: only progress matters).
	committed := func() int64 {
		offs, err := adm.ListCommittedOffsets(ctx, eosOut)
		if err != nil {
			return -1
		}
		var n int64
		offs.Each(func(o kadm.ListedOffset) {
			if o.Err == nil {
				n += o.Offset
			}
		})
		return n
	}
	progress := func(what string) {
		t.Helper()
		from := committed()
		await.True(t, 2*time.Minute, "the copy to go on after "+what, func() bool { return committed() >= from+5_000 })
	}
	kill := func(b *testenv.Broker, what string) {
		t.Helper()
		t.Logf("killing broker %d (%s)", b.ID(), what)
		b.Kill()
		progress("broker " + fmt.Sprint(b.ID()) + " was killed")
		if err := b.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}

	progress("the start")
	t.Log("killing the copy loop")
	copier.kill(t)
	copier = startEOSCopier(t, seeds)
	progress("the copy loop was killed")
	kill(txnCoordinator(ctx, t, c, cl), "the transaction and group coordinator")
	kill(testenvtest.PartitionLeader(t, c, adm, eosOut, 1), "the leader of "+eosOut+"-1")
	t.Log("killing the copy loop")
	copier.kill(t)
	copier = startEOSCopier(t, seeds)

	got := make([][]string, eosParts)
	reader, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(eosOut),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	n := 0
	for n < total {
		fetches := reader.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d output records: %v", n, total, ctx.Err())
		}
		fetches.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s-%d: %v", topic, p, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], string(r.Value))
			n++
		})
	}
	copier.kill(t)
	// Whatever the copy loop committed is in: the reader is at the LSO.
	extra, cancelExtra := context.WithTimeout(ctx, time.Second)
	defer cancelExtra()
	reader.PollFetches(extra).EachRecord(func(r *kgo.Record) {
		got[r.Partition] = append(got[r.Partition], string(r.Value))
	})
	// How much the kills cost: records written by transactions that were
	// aborted (the reader skipped them).
	written := 0
	for _, o := range mustListEnd(ctx, t, adm, eosOut) {
		written += int(o)
	}
	all := readAll(ctx, t, seeds, eosOut, kgo.ReadUncommitted(), total)
	t.Logf("%d records copied exactly once; %d written in all (%d by aborted transactions), %d offsets with the markers",
		total, len(all), len(all)-total, written)
	for p := range eosParts {
		if len(got[p]) != len(want[p]) {
			t.Errorf("output partition %d holds %d records, want %d", p, len(got[p]), len(want[p]))
		}
		for i := range min(len(got[p]), len(want[p])) {
			if got[p][i] != want[p][i] {
				t.Fatalf("output partition %d record %d is %q, want %q (a record lost or duplicated)", p, i, got[p][i], want[p][i])
			}
		}
	}
}

// eosCopier is the copy loop running as its own process (this test binary
// running TestEOSCopierProcess), so that it can be killed outright.
type eosCopier struct {
	cmd  *exec.Cmd
	done chan error
}

func startEOSCopier(t *testing.T, seeds []string) *eosCopier {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestEOSCopierProcess$", "-test.v")
	cmd.Env = append(os.Environ(), eosSeedsEnv+"="+strings.Join(seeds, ","))
	out, err := os.Create(fmt.Sprintf("%s/copier-%d.log", t.TempDir(), time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &eosCopier{cmd: cmd, done: make(chan error, 1)}
	go func() {
		c.done <- cmd.Wait()
		out.Close()
	}()
	t.Cleanup(func() { c.kill(t) })
	return c
}

// kill sends SIGKILL and waits for the process to be gone; a copy loop
// that exited by itself before is a failure, with its output.
func (c *eosCopier) kill(t *testing.T) {
	t.Helper()
	select {
	case err := <-c.done:
		c.done <- err
		if !strings.Contains(fmt.Sprint(err), "killed") {
			log, _ := os.ReadFile(c.cmd.Stdout.(*os.File).Name())
			t.Errorf("the copy loop exited by itself: %v\n%s", err, log)
		}
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	c.done <- <-c.done
}

// TestEOSCopierProcess is the copy loop of TestExactlyOnceCopyUnderKills,
// run as a process of its own; it does nothing in a normal test run. It
// copies each record of eos-in to the same partition of eos-out, in
// transactions of up to eosPerTxn records, until it is killed.
func TestEOSCopierProcess(t *testing.T) {
	seeds := os.Getenv(eosSeedsEnv)
	if seeds == "" {
		t.Skip("the copy loop of TestExactlyOnceCopyUnderKills, run as its own process")
	}
	ctx := context.Background()
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(strings.Split(seeds, ",")...),
		kgo.TransactionalID(eosTxnID),
		kgo.TransactionTimeout(10*time.Second),
		kgo.ConsumerGroup(eosGroup),
		kgo.ConsumeTopics(eosIn),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(6*time.Second),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	// Fence the killed predecessor at once (its open transaction, and the
	// offsets committed in it, are aborted) instead of waiting for its
	// transaction timeout before the group's offsets are stable.
	if _, _, err := sess.Client().ProducerID(ctx); err != nil {
		t.Fatalf("init producer id: %v", err)
	}
	for {
		fetches := sess.PollRecords(ctx, eosPerTxn)
		fetches.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s-%d: %v", topic, p, err) })
		if fetches.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			t.Fatalf("begin: %v", err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			sess.Produce(ctx, &kgo.Record{Topic: eosOut, Partition: r.Partition, Value: r.Value}, func(_ *kgo.Record, err error) {
				if err != nil {
					t.Logf("produce: %v", err)
				}
			})
		})
		// The transform's work: the transaction stays open a while, so
		// that the kills land inside transactions as well as between them.
		time.Sleep(eosWork)
		committed, err := sess.End(ctx, kgo.TryCommit)
		t.Logf("end: committed %v, %d records, err %v", committed, fetches.NumRecords(), err)
		if err != nil && errors.Is(err, context.Canceled) {
			return
		}
	}
}

// txnCoordinator is the broker coordinating the copy's transactional id.
func txnCoordinator(ctx context.Context, t *testing.T, c *testenv.Cluster, cl *kgo.Client) *testenv.Broker {
	t.Helper()
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorType, req.CoordinatorKey, req.CoordinatorKeys = 1, eosTxnID, []string{eosTxnID}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("find the transaction coordinator: %v", err)
	}
	code, node := resp.ErrorCode, resp.NodeID
	if len(resp.Coordinators) == 1 { // v4 answers per key
		code, node = resp.Coordinators[0].ErrorCode, resp.Coordinators[0].NodeID
	}
	if code != 0 {
		t.Fatalf("find the transaction coordinator: error %d", code)
	}
	return c.Broker(node)
}

// mustListEnd lists the end offsets (read_uncommitted) of topic's partitions.
func mustListEnd(ctx context.Context, t *testing.T, adm *kadm.Client, topic string) []int64 {
	t.Helper()
	offs, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	offs.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset of %s-%d: %v", o.Topic, o.Partition, o.Err)
		}
		out = append(out, o.Offset)
	})
	return out
}
