package testenv_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/api/client"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
)

// BenchmarkLeaderFailover measures failover as a producer sees it: from the
// SIGKILL of partition 0's leader to the first acknowledgement of a record
// produced after the kill (acks=all, RF=3, a record every millisecond,
// through the Go client, which finds the new leader itself). Each iteration
// kills the current leader, then restarts it and waits for the ISR to be
// whole. Reported: the median and the largest failover, in ms. Run with
// `make bench` (-benchtime Nx sets the number of kills).
func BenchmarkLeaderFailover(b *testing.B) {
	c := testenv.NewTestCluster(b, testenv.ClusterOptions{Brokers: 3})
	ctx := context.Background()
	cl, err := client.Dial(ctx, c.BootstrapServers())
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	const topic = "failover"
	if _, err := cl.CreateTopic(ctx, topic, 1, 3, map[string]string{"min.insync.replicas": "2"}); err != nil {
		b.Fatal(err)
	}
	prod := client.NewProducer(cl, client.ProducerOptions{Acks: client.AcksAll})
	defer prod.Close()

	var mu sync.Mutex
	var acked []struct{ produced, at time.Time }
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-tick.C:
			}
			produced := time.Now()
			prod.Produce(pctx, topic, client.Record{Partition: 0, Value: []byte("failover")}, func(_ client.Result, err error) {
				if err == nil {
					mu.Lock()
					acked = append(acked, struct{ produced, at time.Time }{produced, time.Now()})
					mu.Unlock()
				}
			})
		}
	}()
	defer func() { stop(); <-done }()

	leader := func() (int32, []int32) {
		md, err := cl.Metadata(ctx, topic)
		if err != nil || len(md.GetTopics()) != 1 || len(md.GetTopics()[0].GetPartitions()) != 1 {
			return -1, nil
		}
		p := md.GetTopics()[0].GetPartitions()[0]
		return p.GetLeader(), p.GetIsr()
	}
	var failovers []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		await.True(b, 60*time.Second, "a whole ISR", func() bool { l, isr := leader(); return l > 0 && len(isr) == 3 })
		time.Sleep(500 * time.Millisecond) // let acknowledgements flow again
		old, _ := leader()
		b.StartTimer()
		t0 := time.Now()
		c.Broker(old).Kill()
		var at time.Time
		await.True(b, 60*time.Second, "an acknowledgement after the kill", func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, a := range acked {
				if a.produced.After(t0) {
					at = a.at
					return true
				}
			}
			return false
		})
		b.StopTimer()
		failovers = append(failovers, at.Sub(t0))
		if err := c.Broker(old).Start(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(failovers)
	b.ReportMetric(float64(failovers[len(failovers)/2].Microseconds())/1000, "failover-median-ms")
	b.ReportMetric(float64(failovers[len(failovers)-1].Microseconds())/1000, "failover-max-ms")
	b.Logf("failovers: %v", failovers)
}
