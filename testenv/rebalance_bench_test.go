package testenv_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/testenv"
)

// BenchmarkProduceP99DuringRebalance measures what a rebalance costs
// producers: acks=all p99 latency of `strata bench produce` (1 KiB records
// at 4,000 records/s, linger 0, 6 s) on a three-broker cluster with a
// fourth, empty broker added and an RF=2 topic of 6 partitions holding
// 64 MiB per partition, with `strata cluster rebalance --wait` started 2 s
// into the run, against the same run without it. Each run has a fresh
// cluster; each iteration runs both, the order alternating. Reported:
// the medians of the p99s and maxima, and of how long the rebalance took.
// The run is short so that the moves cover a good share of it: the p99 of
// a long run would hide them. Run with
// `make bench` (-benchtime Nx sets the number of pairs).
func BenchmarkProduceP99DuringRebalance(b *testing.B) {
	var quiet, moving, quietMax, movingMax, took []float64
	// Per-run lines go to stderr: a benchmark's log is cut at ten lines.
	for i := range b.N {
		order := []bool{false, true}
		if i%2 == 1 {
			order = []bool{true, false}
		}
		for _, rebalance := range order {
			p99, pmax, d := produceP99(b, rebalance)
			if rebalance {
				moving, movingMax = append(moving, p99), append(movingMax, pmax)
				took = append(took, d.Seconds())
				fmt.Fprintf(os.Stderr, "pair %d: p99 %.2f ms, max %.2f ms during a rebalance of %.2f s\n", i, p99, pmax, d.Seconds())
			} else {
				quiet, quietMax = append(quiet, p99), append(quietMax, pmax)
				fmt.Fprintf(os.Stderr, "pair %d: p99 %.2f ms, max %.2f ms without a rebalance\n", i, p99, pmax)
			}
		}
	}
	b.ReportMetric(median(quiet), "p99-ms-quiet")
	b.ReportMetric(median(moving), "p99-ms-rebalance")
	b.ReportMetric(median(quietMax), "max-ms-quiet")
	b.ReportMetric(median(movingMax), "max-ms-rebalance")
	b.ReportMetric(median(took), "rebalance-s")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// produceP99 runs the load on a fresh cluster, with or without a
// rebalance under it, and returns its p99 and max latency in ms and how
// long the rebalance took.
func produceP99(b *testing.B, rebalance bool) (p99, pmax float64, took time.Duration) {
	b.Helper()
	c := testenv.NewTestCluster(b, testenv.ClusterOptions{Brokers: 3})
	defer c.Close()
	bin := testenv.Binary(b)
	strata := func(args ...string) ([]byte, error) {
		cmd := exec.Command(bin, append(args, "--bootstrap-server", c.BootstrapServers())...)
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		out, err := cmd.Output()
		if err != nil {
			return out, fmt.Errorf("strata %v: %w: %s", args, err, errOut.String())
		}
		return out, nil
	}
	const partitions = 6
	if _, err := strata("bench", "produce", "--topic", "history", "--partitions", fmt.Sprint(partitions), "--replication-factor", "2",
		"--records", fmt.Sprint(partitions*64*1024), "--record-size", "1024", "--acks", "all"); err != nil {
		b.Fatal(err)
	}
	if _, err := strata("topics", "create", "load", "--partitions", fmt.Sprint(partitions), "--replication-factor", "2"); err != nil {
		b.Fatal(err)
	}
	if _, err := c.AddBroker(context.Background()); err != nil {
		b.Fatal(err)
	}
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := strata("bench", "produce", "--topic", "load", "--duration", "6s", "--record-size", "1024",
			"--acks", "all", "--throughput", "4000", "--linger", "0", "-o", "json")
		done <- result{out, err}
	}()
	if rebalance {
		time.Sleep(2 * time.Second) // into the run: the load is steady
		start := time.Now()
		out, err := strata("cluster", "rebalance", "--wait", "60s")
		if err != nil {
			b.Fatal(err)
		}
		took = time.Since(start)
		if !bytes.Contains(out, []byte("Reassignment of partition")) {
			b.Fatalf("the rebalance moved nothing:\n%s", out)
		}
	}
	r := <-done
	if r.err != nil {
		b.Fatal(r.err)
	}
	var res struct {
		Errors    int64 `json:"errors"`
		LatencyMs struct {
			P99 float64 `json:"p99"`
			Max float64 `json:"max"`
		} `json:"latency_ms"`
	}
	if err := json.Unmarshal(r.out, &res); err != nil {
		b.Fatalf("bench produce output %q: %v", r.out, err)
	}
	if res.Errors != 0 {
		b.Fatalf("%d records failed", res.Errors)
	}
	return res.LatencyMs.P99, res.LatencyMs.Max, took
}
