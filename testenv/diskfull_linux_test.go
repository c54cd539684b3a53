package testenv_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/internal/tmpfs"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// A full disk is handled as Kafka handles an offline log directory. One
// broker of three keeps its data on a small tmpfs; an idempotent acks=all
// producer writes to the partition that broker leads until its disk fills.
// The broker gives the partition up (an in-sync replica takes over and the
// producer carries on there), answers KAFKA_STORAGE_ERROR for it, and says
// so on /healthz and in its metrics; once the space is given back, the
// partition recovers and rejoins the ISR without a restart, and every
// acknowledged record is there once.
func TestFullDiskTakesPartitionOfflineAndBack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster")
	}
	dir := t.TempDir()
	const victimID = 1
	data := filepath.Join(dir, fmt.Sprintf("broker-%d", victimID), "data")
	tmpfs.Mount(t, data, 64<<20)
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{
		Dir:     dir,
		Brokers: 3,
		// Recovery is retried every half second instead of every 5 s.
		BrokerSettings: map[string]string{"log.dir.failure.retry.ms": "500"},
	})
	victim := c.Broker(victimID)
	pid := victim.Pid()
	t.Cleanup(func() { // before the cluster stops, whether the test passed or not
		if rss, peak, err := testenv.Memory(pid); err == nil {
			t.Logf("broker %d: RSS %d MiB, peak %d MiB", victimID, rss>>20, peak>>20)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var seeds []string
	for _, b := range c.Brokers() {
		seeds = append(seeds, b.KafkaAddr())
	}
	admCl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	const topic = "disk-full"
	minISR := "2"
	if _, err := adm.CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": &minISR}, topic); err != nil {
		t.Fatal(err)
	}
	describe := func() (kadm.PartitionDetails, error) {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return nil, err
		}
		td := md.Topics[topic]
		if td.Err != nil {
			return nil, td.Err
		}
		return td.Partitions, nil
	}
	// Replicas are placed round-robin: one partition is led by the victim.
	part := int32(-1)
	await.NoError(t, 30*time.Second, "every partition to have a leader and a full ISR", func() error {
		ps, err := describe()
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.Leader < 0 || len(p.ISR) != 3 {
				return fmt.Errorf("partition %d: leader %d, ISR %v", p.Partition, p.Leader, p.ISR)
			}
			if p.Leader == victimID {
				part = p.Partition
			}
		}
		return nil
	})
	if part < 0 {
		t.Fatalf("no partition of %s is led by broker %d", topic, victimID)
	}

	// Leave the victim's disk about 2 MiB, then produce to its partition.
	filler := filepath.Join(data, "filler")
	tmpfs.Fill(t, filler, 2<<20)
	watch := testenv.WatchKafka(victim.KafkaAddr())
	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds...),
		kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(90*time.Second),
		kgo.MaxBufferedRecords(500))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var (
		mu     sync.Mutex
		acked  = map[string]bool{}
		failed []error
	)
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	// Records wait for buffer space under pctx, which only a failing test
	// cancels: a stuck partition must not hold the test for its timeout.
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	stop := make(chan struct{})
	producing := make(chan int)
	go func() {
		sent := 0
		defer func() { producing <- sent }()
		// Random values: compressed or not, each record takes its size on
		// disk.
		rng := rand.New(rand.NewPCG(1, 2))
		value := make([]byte, 1024)
		for {
			select {
			case <-stop:
				return
			default:
			}
			k := strconv.Itoa(sent)
			sent++
			for i := range value {
				value[i] = byte(rng.Uint32())
			}
			r := &kgo.Record{Partition: part, Key: []byte(k), Value: slices.Clone(value)}
			prod.Produce(pctx, r, func(r *kgo.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed = append(failed, err)
					return
				}
				acked[string(r.Key)] = true
			})
			// About 500 KB/s: what the victim replicates once it is back must
			// fit on its disk.
			time.Sleep(2 * time.Millisecond)
		}
	}()
	var (
		stopOnce sync.Once
		sent     int
	)
	stopProducing := func() int {
		stopOnce.Do(func() {
			close(stop)
			sent = <-producing
		})
		return sent
	}
	defer func() {
		pcancel()
		stopProducing()
	}()

	// The victim's disk fills; another in-sync replica takes the partition
	// over and the ISR no longer names the victim.
	var atFailover int
	await.NoError(t, 40*time.Second, "the partition to move off the broker with the full disk", func() error {
		ps, err := describe()
		if err != nil {
			return err
		}
		p := ps[part]
		if p.Leader == victimID || p.Leader < 0 || slices.Contains(p.ISR, victimID) {
			return fmt.Errorf("partition %d: leader %d, ISR %v (%d records acknowledged)", part, p.Leader, p.ISR, ackedCount())
		}
		atFailover = ackedCount()
		t.Logf("partition %d moved to broker %d, ISR %v, after %d acknowledged records", part, p.Leader, p.ISR, atFailover)
		return nil
	})
	await.True(t, 30*time.Second, "the producer to carry on at the new leader", func() bool {
		return ackedCount() >= atFailover+500
	})

	// The victim says which partition it gave up, and why.
	code, err := fetchErrorCode(ctx, t, admCl, victimID, topic, part)
	if err != nil {
		t.Fatal(err)
	}
	if code != kerr.KafkaStorageError.Code {
		t.Errorf("fetch of %s-%d from broker %d: error %v, want KAFKA_STORAGE_ERROR", topic, part, victimID, kerr.ErrorForCode(code))
	}
	status, body := getStatusBody(t, victim.HTTPAddr(), "/healthz")
	if status != http.StatusOK || !strings.Contains(body, "degraded") || !strings.Contains(body, data) ||
		!strings.Contains(body, fmt.Sprintf("%s-%d", topic, part)) {
		t.Errorf("/healthz with a full disk: %d %q; want 200, degraded, naming %s and %s-%d", status, body, data, topic, part)
	}
	if status, body := getStatusBody(t, victim.HTTPAddr(), "/readyz"); status != http.StatusServiceUnavailable {
		t.Errorf("/readyz with a full disk: %d %q; want 503", status, body)
	}
	if n := metricValue(t, victim, "strata_offline_log_directories"); n != 1 {
		t.Errorf("strata_offline_log_directories = %v with a full disk, want 1", n)
	}
	if n := metricValue(t, victim, "strata_offline_replicas"); n < 1 {
		t.Errorf("strata_offline_replicas = %v with a full disk, want at least 1", n)
	}

	// Space comes back: the partition recovers on its own and rejoins the
	// ISR as a follower.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	await.NoError(t, 40*time.Second, "the victim to rejoin the ISR", func() error {
		ps, err := describe()
		if err != nil {
			return err
		}
		if p := ps[part]; !slices.Contains(p.ISR, victimID) {
			return fmt.Errorf("partition %d: leader %d, ISR %v", part, p.Leader, p.ISR)
		}
		return nil
	})
	await.True(t, 10*time.Second, "the victim to report no offline log directory", func() bool {
		return metricValue(t, victim, "strata_offline_log_directories") == 0
	})
	if status, body := getStatusBody(t, victim.HTTPAddr(), "/healthz"); status != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz after recovery: %d %q; want 200 ok", status, body)
	}
	if status, body := getStatusBody(t, victim.HTTPAddr(), "/readyz"); status != http.StatusOK {
		t.Errorf("/readyz after recovery: %d %q; want 200", status, body)
	}
	if victim.Pid() != pid {
		t.Fatalf("broker %d was restarted (pid %d, now %d)", victimID, pid, victim.Pid())
	}
	slowest, answered, failures := watch.Stop()
	t.Logf("broker %d answered ApiVersions %d times, slowest in %v", victimID, answered, slowest)
	if slowest > time.Second || len(failures) > 0 {
		t.Errorf("a well-behaved client of broker %d: slowest answer %v, failures %v", victimID, slowest, failures)
	}

	stopProducing()
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(failed) > 0 {
		t.Errorf("%d records failed, first: %v", len(failed), failed[0])
	}
	total := len(acked)
	mu.Unlock()
	t.Logf("%d records sent, %d acknowledged", sent, total)

	// Every acknowledged record is in the partition, once.
	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {part: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	end, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	hw, _ := end.Lookup(topic, part)
	seen := map[string]int{}
	for read := int64(0); read < hw.Offset; {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records: %v", read, hw.Offset, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen[string(r.Key)]++
			read = r.Offset + 1
		})
	}
	mu.Lock()
	defer mu.Unlock()
	for k := range acked {
		if seen[k] != 1 {
			t.Errorf("acknowledged record %s is in the log %d times", k, seen[k])
		}
	}
}

// fetchErrorCode sends one fetch of topic-partition to broker id and returns
// the partition's error code.
func fetchErrorCode(ctx context.Context, t testing.TB, cl *kgo.Client, id int32, topic string, partition int32) (int16, error) {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxBytes = 1 << 20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, testenvtest.TopicID(ctx, t, cl, topic)
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = partition
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl.Broker(int(id)))
	if err != nil {
		return 0, fmt.Errorf("fetch from broker %d: %w", id, err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			return p.ErrorCode, nil
		}
	}
	return 0, fmt.Errorf("fetch from broker %d: no partition in the response (error %d)", id, resp.ErrorCode)
}

// httpGet returns the status and body of GET path on addr.
func getStatusBody(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}
