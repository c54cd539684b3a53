package broker

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-broker/strata/broker/txn"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/metastore"
)

// initTxn is InitProducerId for id at the broker, retried until the broker
// coordinates the id (it learns the live brokers after it starts).
func initTxn(t *testing.T, b *Broker, id string, timeoutMs int32) (int64, int16) {
	t.Helper()
	var pid int64
	var epoch int16
	await.NoError(t, 30*time.Second, "the broker to coordinate "+id, func() error {
		var err error
		pid, epoch, err = b.InitTransactionalProducerID(context.Background(), id, timeoutMs, -1, -1)
		if err != nil && !errors.Is(err, txn.ErrNotCoordinator) {
			t.Fatal(err)
		}
		return err
	})
	return pid, epoch
}

// openTxn adds tx-0 to id's transaction and produces two records in it.
func openTxn(t *testing.T, b *Broker, id string, pid int64, epoch int16) {
	t.Helper()
	ctx := context.Background()
	tp := metastore.TopicPartition{Topic: "tx", Partition: 0}
	if errs, err := b.AddPartitionsToTxn(ctx, id, pid, epoch, []metastore.TopicPartition{tp}); err != nil || len(errs) > 0 {
		t.Fatalf("AddPartitionsToTxn: %v %v", errs, err)
	}
	res, err := b.ProduceTransactional(ctx, id, "tx", AcksAll, 10*time.Second,
		[]PartitionBatches{{Partition: 0, Batches: markerTxnBatch(t, pid, epoch, 0, 2)}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
}

// lsoLag is the exported LSO lag of tx-0, and how many lag series there
// are.
func lsoLag(t *testing.T, reg *prometheus.Registry) (float64, int) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "strata_partition_last_stable_offset_lag" {
			for _, m := range mf.GetMetric() {
				return m.GetGauge().GetValue(), len(mf.GetMetric())
			}
		}
	}
	return 0, 0
}

// TestTransactionMetrics: the open-transaction gauge, the completed and
// timed-out counters and the LSO lag follow a transaction that commits and
// one that times out.
func TestTransactionMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	b, _ := startBrokerWith(t, Config{Registerer: reg})
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "tx", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	await.True(t, 30*time.Second, "leading tx-0", func() bool {
		_, err := b.hosted.leaderPartition("tx", 0)
		return err == nil
	})
	gauge := func(name string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatalf("%s not exported", name)
		return 0
	}
	counts := func(what string, commits, aborts, timedOut float64) {
		t.Helper()
		want := strings.NewReader(`
# HELP strata_transactions_completed_total Transactions this broker completed as their coordinator (CompleteCommit or CompleteAbort stored), by outcome; aborts include those of timed-out transactions and of producers fenced by a new one.
# TYPE strata_transactions_completed_total counter
strata_transactions_completed_total{outcome="abort"} ` + ftoa(aborts) + `
strata_transactions_completed_total{outcome="commit"} ` + ftoa(commits) + `
# HELP strata_transactions_timed_out_total Transactions this broker, as their coordinator, aborted for being open longer than their transaction.timeout.ms.
# TYPE strata_transactions_timed_out_total counter
strata_transactions_timed_out_total ` + ftoa(timedOut) + `
`)
		if err := testutil.GatherAndCompare(reg, want, "strata_transactions_completed_total", "strata_transactions_timed_out_total"); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	counts("at start", 0, 0, 0)
	if lag, n := lsoLag(t, reg); n != 0 {
		t.Fatalf("LSO lag %v exported without a transaction", lag)
	}
	pid, epoch := initTxn(t, b, "committer", 60_000)
	openTxn(t, b, "committer", pid, epoch)
	if got := gauge("strata_transactions_open"); got != 1 {
		t.Fatalf("strata_transactions_open %v with one transaction open, want 1", got)
	}
	if lag, n := lsoLag(t, reg); lag != 2 || n != 1 {
		t.Fatalf("LSO lag %v (%d series) with two records in an open transaction, want 2 (1)", lag, n)
	}
	if err := b.EndTxn(ctx, "committer", pid, epoch, true); err != nil {
		t.Fatal(err)
	}
	counts("after a commit", 1, 0, 0)
	if got := gauge("strata_transactions_open"); got != 0 {
		t.Fatalf("strata_transactions_open %v after the commit, want 0", got)
	}
	if lag, n := lsoLag(t, reg); n != 0 {
		t.Fatalf("LSO lag %v still exported after the commit marker", lag)
	}

	pid, epoch = initTxn(t, b, "sleeper", 1000)
	openTxn(t, b, "sleeper", pid, epoch)
	b.Transactions().Tick(ctx, time.Now().Add(time.Minute))
	counts("after a timeout", 1, 1, 1)
	if got := gauge("strata_transactions_open"); got != 0 {
		t.Fatalf("strata_transactions_open %v after the timeout, want 0", got)
	}
	if lag, n := lsoLag(t, reg); n != 0 {
		t.Fatalf("LSO lag %v still exported after the abort marker", lag)
	}
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
