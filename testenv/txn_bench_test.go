package testenv_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// BenchmarkTransactionalProduce compares transactional produce with
// idempotent produce of the same records, on a three-broker cluster with
// a topic of 4 partitions, replication factor 3, acks=all: STRATA_TXN_RECORDS
// records of 1 KiB (default 200,000) idempotently, then in transactions of
// 100 records and of 1,000 (each: produce, flush, commit), the three
// alternated STRATA_TXN_RUNS times (default 3). Reported: each mode's
// median MiB/s, and the commit latency (EndTxn until the client has its
// answer) p50 and p99 over every run's transactions, and the etcd write
// transactions per transaction (the store revision's growth). Run it with
// -benchtime 1x (`make bench-txn`).
func BenchmarkTransactionalProduce(b *testing.B) {
	records := envInt(b, "STRATA_TXN_RECORDS", 200_000)
	runs := envInt(b, "STRATA_TXN_RUNS", 3)
	c := testenv.NewTestCluster(b, testenv.ClusterOptions{Brokers: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	_, adm, seeds := testenvtest.KafkaClient(b, c)
	const topic = "txn-bench"
	if resp, err := adm.CreateTopic(ctx, 4, 3, nil, topic); err != nil || resp.Err != nil {
		b.Fatalf("create topic: %v %v", err, resp.Err)
	}
	value := make([]byte, 1024)
	rand.Read(value)
	etcd, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Etcd().Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	defer etcd.Close()
	// revision is etcd's store revision: it grows by one per write
	// transaction, whatever its size.
	revision := func() int64 {
		resp, err := etcd.Get(ctx, "strata-bench-revision")
		if err != nil {
			b.Fatal(err)
		}
		return resp.Header.Revision
	}

	type mode struct {
		name  string
		perTx int // 0: idempotent, no transactions
	}
	modes := []mode{{"idempotent", 0}, {"txn-100", 100}, {"txn-1000", 1000}}
	rates := map[string][]float64{}
	commits := map[string][]time.Duration{}
	etcdWrites := map[string][]float64{} // per transaction
	for run := range runs {
		for _, m := range modes {
			opts := []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
				kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(5 * time.Millisecond)}
			if m.perTx > 0 {
				opts = append(opts, kgo.TransactionalID(fmt.Sprintf("bench-%s-%d", m.name, run)))
			}
			cl, err := kgo.NewClient(opts...)
			if err != nil {
				b.Fatal(err)
			}
			start, rev0, ntx := time.Now(), revision(), 0
			for sent := 0; sent < records; {
				n := records - sent
				if m.perTx > 0 {
					n = min(n, m.perTx)
					if err := cl.BeginTransaction(); err != nil {
						b.Fatal(err)
					}
				}
				for range n {
					cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
						if err != nil {
							b.Errorf("produce: %v", err)
						}
					})
				}
				if err := cl.Flush(ctx); err != nil {
					b.Fatal(err)
				}
				if m.perTx > 0 {
					t0 := time.Now()
					if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
						b.Fatal(err)
					}
					commits[m.name] = append(commits[m.name], time.Since(t0))
					ntx++
				}
				sent += n
			}
			elapsed := time.Since(start)
			cl.Close()
			if ntx > 0 {
				// The group lag sampler and leases write too; over
				// thousands of transactions they are noise.
				etcdWrites[m.name] = append(etcdWrites[m.name], float64(revision()-rev0)/float64(ntx))
			}
			rate := float64(records) * float64(len(value)) / (1 << 20) / elapsed.Seconds()
			rates[m.name] = append(rates[m.name], rate)
			b.Logf("run %d %s: %d records in %v, %.1f MiB/s", run+1, m.name, records, elapsed.Round(time.Millisecond), rate)
		}
	}
	for _, m := range modes {
		b.ReportMetric(median(rates[m.name]), m.name+"-MiB/s")
		if d := commits[m.name]; len(d) > 0 {
			slices.Sort(d)
			b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, m.name+"-commit-p50-ms")
			b.ReportMetric(float64(d[len(d)*99/100].Microseconds())/1000, m.name+"-commit-p99-ms")
			b.ReportMetric(median(etcdWrites[m.name]), m.name+"-etcd-writes/txn")
		}
	}
}
