package kafkatests_test

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

const (
	// shareLock is the test's share.record.lock.duration.ms: how long a
	// record acquired by a consumer stays its own without acknowledgement.
	shareLock = 4 * time.Second
	// shareDeliveryLimit is share.delivery.count.limit: a record delivered
	// this many times and released again is archived.
	shareDeliveryLimit = 3
)

// shareDelivery is one line of shareconsume --print-offsets: a record
// delivered to a consumer, and when the test read the line.
type shareDelivery struct {
	offset   int64
	delivery int32
	key      string
	seen     time.Time
}

// shareConsumer is one shareconsume process and the deliveries it printed.
type shareConsumer struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	got  []shareDelivery
	done chan struct{}
	log  strings.Builder
}

func (s *shareConsumer) deliveries() []shareDelivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]shareDelivery(nil), s.got...)
}

// startShareConsumer starts bin in the background with args and reads its
// lines until it exits; the test's end kills it.
func startShareConsumer(ctx context.Context, t *testing.T, bin, name string, args ...string) *shareConsumer {
	t.Helper()
	s := &shareConsumer{name: name, cmd: exec.CommandContext(ctx, bin, args...), done: make(chan struct{})}
	s.cmd.Stderr = &s.log
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Split(sc.Text(), "\t")
			if len(f) != 5 {
				continue
			}
			off, _ := strconv.ParseInt(f[1], 10, 64)
			dc, _ := strconv.ParseInt(f[2], 10, 32)
			s.mu.Lock()
			s.got = append(s.got, shareDelivery{offset: off, delivery: int32(dc), key: f[3], seen: time.Now()})
			s.mu.Unlock()
		}
		_ = s.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
		_ = s.cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			t.Logf("%s's log:\n%s", name, tail(s.log.String(), 30))
		}
	})
	return s
}

// TestShareGroupQueue runs share groups (KIP-932) on a three-broker
// cluster with the shareconsume command: four consumers reading one
// partition get distinct records; records held by a frozen consumer (its
// connection open) come back only when their acquisition lock expires, and
// those of a consumer killed while holding them come back too; a record
// released every time is archived at share.delivery.count.limit; a
// rejected one is never delivered again; every other record is accepted
// exactly once, and the group's start offset reaches the log's end. Then
// the partition's leader is killed: the accepted records stay accepted
// under the new leader (the share-partition state is in etcd), and the rest
// are delivered.
func TestShareGroupQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-broker cluster")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3, BrokerSettings: map[string]string{
		"group.share.min.record.lock.duration.ms": "1000",
		"group.share.delivery.count.limit":        strconv.Itoa(shareDeliveryLimit),
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "shareconsume")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/strata-broker/strata/cmd/shareconsume").CombinedOutput(); err != nil {
		t.Fatalf("build shareconsume: %v\n%s", err, out)
	}
	cl, adm, seeds := testenvtest.KafkaClient(t, c, kgo.DefaultProduceTopic("jobs"))
	testenvtest.CreateKafkaTopic(ctx, t, adm, "jobs", 3, nil)
	const group = "workers"
	alterGroupConfigs(ctx, t, cl, group, map[string]string{
		"share.auto.offset.reset":       "earliest",
		"share.record.lock.duration.ms": strconv.Itoa(int(shareLock.Milliseconds())),
	})

	// 2,000 jobs; every 100th is poison (always released), every 100th
	// from 50 is bad (rejected).
	const total = 2000
	key := func(i int) string {
		switch {
		case i%100 == 0:
			return fmt.Sprintf("poison-%d", i)
		case i%100 == 50:
			return fmt.Sprintf("bad-%d", i)
		}
		return fmt.Sprintf("job-%d", i)
	}
	var recs []*kgo.Record
	for i := range total {
		recs = append(recs, &kgo.Record{Key: []byte(key(i)), Value: []byte(strconv.Itoa(i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	args := func(extra ...string) []string {
		return append([]string{"--bootstrap-server", strings.Join(seeds, ","), "--group", group, "--topic", "jobs",
			"--print-offsets", "--release-keys", "^poison-", "--reject-keys", "^bad-"}, extra...)
	}
	// A consumer that takes records and freezes with its connection open,
	// and one that takes records and is killed.
	frozen := startShareConsumer(ctx, t, bin, "frozen", args("--hold", "--max-messages", "30")...)
	await.True(t, time.Minute, "the frozen consumer's records", func() bool { return len(frozen.deliveries()) > 0 })
	if err := frozen.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	killed := startShareConsumer(ctx, t, bin, "killed", args("--hold", "--max-messages", "30")...)
	await.True(t, time.Minute, "the killed consumer's records", func() bool { return len(killed.deliveries()) > 0 })
	_ = killed.cmd.Process.Kill()
	<-killed.done

	var workers []*shareConsumer
	for i := range 4 {
		workers = append(workers, startShareConsumer(ctx, t, bin, fmt.Sprintf("worker-%d", i), args("--timeout", "12s")...))
	}
	for _, w := range workers {
		select {
		case <-w.done:
		case <-ctx.Done():
			t.Fatalf("%s did not finish", w.name)
		}
		if w.cmd.ProcessState.ExitCode() != 0 {
			t.Fatalf("%s exited %d:\n%s", w.name, w.cmd.ProcessState.ExitCode(), tail(w.log.String(), 30))
		}
	}

	held := map[int64]time.Time{}
	for _, d := range frozen.deliveries() {
		held[d.offset] = d.seen
	}
	killedHeld := map[int64]bool{}
	for _, d := range killed.deliveries() {
		killedHeld[d.offset] = true
	}
	// The killed consumer never acknowledged: its records must all come
	// back to the workers.
	accepted := map[int64]string{} // offset -> the worker that accepted it
	deliveries := map[int64][]int32{}
	withRecords := 0
	for _, w := range workers {
		got := w.deliveries()
		if len(got) > 0 {
			withRecords++
		}
		t.Logf("%s: %d deliveries", w.name, len(got))
		for _, d := range got {
			deliveries[d.offset] = append(deliveries[d.offset], d.delivery)
			if !strings.HasPrefix(d.key, "job-") {
				continue
			}
			if prev, ok := accepted[d.offset]; ok {
				t.Errorf("offset %d (%s) accepted by %s and again by %s", d.offset, d.key, prev, w.name)
			}
			accepted[d.offset] = w.name
			if killedHeld[d.offset] && d.delivery < 2 {
				t.Errorf("offset %d, held by the killed consumer, redelivered with delivery count %d", d.offset, d.delivery)
			}
			if at, ok := held[d.offset]; ok {
				if d.delivery < 2 {
					t.Errorf("offset %d, held by the frozen consumer, redelivered with delivery count %d", d.offset, d.delivery)
				}
				if gap := d.seen.Sub(at); gap < shareLock/2 {
					t.Errorf("offset %d, held by the frozen consumer, redelivered %v after it was taken, before its %v lock expired", d.offset, gap, shareLock)
				}
			}
		}
	}
	if withRecords < 2 {
		t.Errorf("only %d of 4 consumers got records", withRecords)
	}
	for i := range total {
		off := int64(i)
		k := key(i)
		counts := deliveries[off]
		switch {
		case strings.HasPrefix(k, "job-"):
			if _, ok := accepted[off]; !ok {
				t.Errorf("offset %d (%s) was never accepted", off, k)
			}
		case strings.HasPrefix(k, "poison-"):
			top := int32(0)
			for _, dc := range counts {
				top = max(top, dc)
			}
			for _, d := range append(frozen.deliveries(), killed.deliveries()...) {
				if d.offset == off {
					top = max(top, d.delivery)
				}
			}
			if top != shareDeliveryLimit {
				t.Errorf("offset %d (%s), always released, reached delivery count %d, want %d and then archived", off, k, top, shareDeliveryLimit)
			}
		case strings.HasPrefix(k, "bad-"):
			if len(counts) > 1 {
				t.Errorf("offset %d (%s), rejected, was delivered to the workers %d times", off, k, len(counts))
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	if spso := shareStartOffset(ctx, t, cl, group, "jobs"); spso != total {
		t.Fatalf("share-partition start offset %d, want %d: every record accepted, rejected or archived", spso, total)
	}
	t.Logf("%d jobs accepted exactly once, %d held records redelivered after the lock, %d poison archived at delivery %d",
		len(accepted), len(held), total/100, shareDeliveryLimit)

	// Failover: 200 more jobs, 100 accepted, the leader killed, the other
	// 100 delivered by the new leader and none of the first 100 again.
	recs = recs[:0]
	for i := total; i < total+200; i++ {
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("job-%d", i)), Value: []byte(strconv.Itoa(i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	first := startShareConsumer(ctx, t, bin, "before-failover", args("--max-messages", "100", "--timeout", "20s")...)
	<-first.done
	if n := len(first.deliveries()); n != 100 {
		t.Fatalf("the consumer before the failover printed %d records, want 100:\n%s", n, first.log.String())
	}
	leader := testenvtest.PartitionLeader(t, c, adm, "jobs", 0)
	leader.Kill()
	await.True(t, time.Minute, "a new leader of jobs", func() bool {
		return testenvtest.PartitionLeader(t, c, adm, "jobs", 0).ID() != leader.ID()
	})
	second := startShareConsumer(ctx, t, bin, "after-failover", args("--timeout", "12s")...)
	<-second.done
	seen := map[int64]int{}
	for _, d := range first.deliveries() {
		seen[d.offset]++
	}
	for _, d := range second.deliveries() {
		seen[d.offset]++
	}
	for off := int64(total); off < total+200; off++ {
		if seen[off] != 1 {
			t.Errorf("offset %d delivered %d times across the failover, want once", off, seen[off])
		}
	}
	if spso := shareStartOffset(ctx, t, cl, group, "jobs"); spso != total+200 {
		t.Fatalf("share-partition start offset %d after the failover, want %d", spso, total+200)
	}
}

// TestShareGroupWalkthrough runs README's share-group walk-through against
// `strata dev`: 1,000 records read by two shareconsume processes of one
// group at once, every record once, both members listed by strata groups
// describe; then three records released every time come back with their
// delivery count raised until group.share.delivery.count.limit (5) archives
// them.
func TestShareGroupWalkthrough(t *testing.T) {
	testenvtest.SkipShort(t)
	d := testenv.StartDev(t, testenv.DevOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "shareconsume")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/strata-broker/strata/cmd/shareconsume").CombinedOutput(); err != nil {
		t.Fatalf("build shareconsume: %v\n%s", err, out)
	}
	testenvtest.StrataCLI(t, d, "", "topics", "create", "jobs", "--partitions", "1")
	var in strings.Builder
	for i := 1; i <= 1000; i++ {
		fmt.Fprintf(&in, "job-%d\n", i)
	}
	testenvtest.StrataCLI(t, d, in.String(), "produce", "jobs")

	args := []string{"--bootstrap-server", d.KafkaAddr, "--group", "workers", "--topic", "jobs", "--from-beginning", "--timeout", "5s"}
	a := startShareConsumer(ctx, t, bin, "a", append(args, "--print-offsets")...)
	b := startShareConsumer(ctx, t, bin, "b", append(args, "--print-offsets")...)
	await.True(t, time.Minute, "both consumers in strata groups describe", func() bool {
		out, _, err := testenvtest.RunStrata(t, d.GRPCAddr, "", "groups", "describe", "workers")
		return err == nil && strings.Count(out, "jobs:0") == 2
	})
	<-a.done
	<-b.done
	seen := map[int64]int{}
	for _, c := range []*shareConsumer{a, b} {
		if c.cmd.ProcessState.ExitCode() != 0 {
			t.Fatalf("consumer %s exited %d:\n%s", c.name, c.cmd.ProcessState.ExitCode(), c.log.String())
		}
		for _, dl := range c.deliveries() {
			seen[dl.offset]++
		}
	}
	for off := int64(0); off < 1000; off++ {
		if seen[off] != 1 {
			t.Fatalf("offset %d printed %d times by the two consumers, want once (a: %d records, b: %d)",
				off, seen[off], len(a.deliveries()), len(b.deliveries()))
		}
	}
	t.Logf("consumer a printed %d records, b %d", len(a.deliveries()), len(b.deliveries()))

	testenvtest.StrataCLI(t, d, "retry-1\nretry-2\nretry-3\n", "produce", "jobs")
	r := startShareConsumer(ctx, t, bin, "release", "--bootstrap-server", d.KafkaAddr, "--group", "workers",
		"--topic", "jobs", "--release", "--print-offsets", "--timeout", "3s")
	<-r.done
	counts := map[int64][]int32{}
	for _, dl := range r.deliveries() {
		counts[dl.offset] = append(counts[dl.offset], dl.delivery)
	}
	for off := int64(1000); off < 1003; off++ {
		if !slices.Equal(counts[off], []int32{1, 2, 3, 4, 5}) {
			t.Errorf("released offset %d was delivered with counts %v, want 1..5 and then archived", off, counts[off])
		}
	}
}

// alterGroupConfigs sets a group's configs with IncrementalAlterConfigs,
// as kafka-configs --entity-type groups does.
func alterGroupConfigs(ctx context.Context, t *testing.T, cl *kgo.Client, group string, configs map[string]string) {
	t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceTypeGroupConfig
	res.ResourceName = group
	for k, v := range configs {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name = k
		c.Op = kmsg.IncrementalAlterConfigOpSet
		c.Value = kmsg.StringPtr(v)
		res.Configs = append(res.Configs, c)
	}
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("IncrementalAlterConfigs of group %s: %v", group, err)
	}
	for _, r := range resp.Resources {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			t.Fatalf("IncrementalAlterConfigs of group %s: %v", group, err)
		}
	}
}

// shareStartOffset is partition 0's share-partition start offset of topic
// in group, from DescribeShareGroupOffsets.
func shareStartOffset(ctx context.Context, t *testing.T, cl *kgo.Client, group, topic string) int64 {
	t.Helper()
	req := kmsg.NewPtrDescribeShareGroupOffsetsRequest()
	g := kmsg.NewDescribeShareGroupOffsetsRequestGroup()
	g.GroupID = group
	rt := kmsg.NewDescribeShareGroupOffsetsRequestGroupTopic()
	rt.Topic = topic
	rt.Partitions = []int32{0}
	g.Topics = append(g.Topics, rt)
	req.Groups = append(req.Groups, g)
	var spso int64 = -1
	await.NoError(t, 30*time.Second, "DescribeShareGroupOffsets", func() error {
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		for _, rg := range resp.Groups {
			if err := kerr.ErrorForCode(rg.ErrorCode); err != nil {
				return err
			}
			for _, rt := range rg.Topics {
				for _, rp := range rt.Partitions {
					if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
						return err
					}
					spso = rp.StartOffset
				}
			}
		}
		return nil
	})
	return spso
}

// TestShareGroupReadsTieredHistory: a share group started at the earliest
// offset of a tiered topic whose first segments are only in the bucket
// reads them through the broker like any fetch, every record once.
func TestShareGroupReadsTieredHistory(t *testing.T) {
	testenvtest.SkipShort(t)
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 1, MinIO: true,
		BrokerSettings: map[string]string{"log.segment.min.bytes": "1024", "remote.log.manager.task.interval.ms": "100"}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := c.Brokers()[0]
	const topic, total = "archive", 600
	cl, adm, seeds := testenvtest.KafkaClient(t, c, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()))
	testenvtest.CreateKafkaTopic(ctx, t, adm, topic, 1, map[string]string{
		"remote.storage.enable": "true", "segment.bytes": "4096", "local.retention.bytes": "4096",
	})
	for i := range total {
		v := fmt.Sprintf("rec-%04d-%0100d", i, 0)
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	await.True(t, time.Minute, "the first segments in the bucket and off the broker's disk", func() bool {
		files, _ := filepath.Glob(filepath.Join(b.DataDir(), topic+"-0", "*.log"))
		first := filepath.Join(b.DataDir(), topic+"-0", "00000000000000000000.log")
		return testenvtest.BucketEnd(t, c, topic, 0) > total/2 && len(files) > 0 && !slices.Contains(files, first)
	})
	alterGroupConfigs(ctx, t, cl, "archivists", map[string]string{"share.auto.offset.reset": "earliest"})

	sc, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ShareGroup("archivists"), kgo.ConsumeTopics(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	seen := map[int64]int{}
	for len(seen) < total {
		fetches := sc.PollRecords(ctx, 500)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records before the deadline", len(seen), total)
		}
		fetches.EachError(func(tp string, p int32, err error) { t.Fatalf("share fetch %s-%d: %v", tp, p, err) })
		for _, r := range fetches.Records() {
			if want := fmt.Sprintf("rec-%04d-", r.Offset); !strings.HasPrefix(string(r.Value), want) {
				t.Fatalf("offset %d holds %.12q, want %q...", r.Offset, r.Value, want)
			}
			seen[r.Offset]++
			r.Ack(kgo.AckAccept)
		}
	}
	if err := sc.FlushAcks(ctx); err != nil {
		t.Fatal(err)
	}
	for off, n := range seen {
		if n != 1 || off < 0 || off >= total {
			t.Fatalf("offset %d delivered %d times", off, n)
		}
	}
	if spso := shareStartOffset(ctx, t, cl, "archivists", topic); spso != total {
		t.Fatalf("share-partition start offset %d, want %d", spso, total)
	}
}
