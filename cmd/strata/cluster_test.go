package main

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-broker/strata/api/client"
	"github.com/strata-broker/strata/api/client/clienttest"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// The client commands against a cluster of three, bootstrapped from one
// broker (or a list whose first entry is down), while leaders move.
func TestCLIFollowsLeadersInACluster(t *testing.T) {
	cl := clienttest.NewCluster(t, 3)
	bs := "--bootstrap-server=" + cl.Broker(2).Addr

	mustStrata(t, "", "topics", "create", "events", "--partitions", "3", "--replication-factor", "3", bs)
	cl.SetLeader("events", 0, 3)
	cl.SetLeader("events", 1, -1)
	desc := mustStrata(t, "", "topics", "describe", "events", bs)
	for _, want := range []string{
		"\tTopic: events\tPartition: 0\tLeader: 3\tReplicas: 1,2,3\tIsr: 1,2,3\n",
		"\tTopic: events\tPartition: 1\tLeader: none\tReplicas: 2,3,1\tIsr: 2,3,1\n",
		"\tTopic: events\tPartition: 2\tLeader: 3\tReplicas: 3,1,2\tIsr: 3,1,2\n",
	} {
		if !strings.Contains(desc, want) {
			t.Errorf("describe lacks %q:\n%s", want, desc)
		}
	}
	var dj topicJSON
	if err := json.Unmarshal([]byte(mustStrata(t, "", "topics", "describe", "events", "-o", "json", bs)), &dj); err != nil {
		t.Fatal(err)
	}
	if dj.Partitions[1].Leader != -1 || dj.Partitions[0].Leader != 3 || dj.Partitions[0].LeaderEpoch != 1 {
		t.Errorf("describe json partitions: %+v", dj.Partitions)
	}
	cl.SetLeader("events", 1, 1)

	mustStrata(t, "a\nb\nc\n", "produce", "events", "--partition", "0", bs)
	cl.SetLeader("events", 0, 1)
	// A bootstrap list whose first server is down.
	mustStrata(t, "d\ne\n", "produce", "events", "--partition", "0", "--bootstrap-server=127.0.0.1:1,"+cl.Broker(3).Addr)
	got := mustStrata(t, "", "consume", "events", "--partition", "0", "--offset", "earliest", "--exit-at-end", "--print-offset", bs)
	if want := "Offset:0\ta\nOffset:1\tb\nOffset:2\tc\nOffset:3\td\nOffset:4\te\n"; got != want {
		t.Errorf("consume across the move: %q, want %q", got, want)
	}

	// The load generator, with leaders moving under it.
	var wg sync.WaitGroup
	wg.Add(1)
	var out string
	var code int
	var errOut string
	go func() {
		defer wg.Done()
		code, out, errOut = strata(t, "", "bench", "produce", "--topic", "load", "--partitions", "3", "--replication-factor", "3",
			"--records", "20000", "--record-size", "100", "--linger", "1ms", "-o", "json", bs)
	}()
	for i := range 12 {
		time.Sleep(10 * time.Millisecond) // spread the moves over the run
		if slices.Contains(strings.Split(mustStrata(t, "", "topics", "list", bs), "\n"), "load") {
			cl.SetLeader("load", int32(i%3), int32(i%3+1)%3+1)
		}
	}
	wg.Wait()
	if code != 0 {
		t.Fatalf("bench produce: exit %d: %s", code, errOut)
	}
	var pr benchProduceResult
	if err := json.Unmarshal([]byte(out), &pr); err != nil {
		t.Fatal(err)
	}
	if pr.Records != 20000 || pr.Errors != 0 || pr.LatencySamples != 20000 || pr.Partitions != 3 {
		t.Errorf("bench produce: %+v", pr)
	}
	var cr benchConsumeResult
	if err := json.Unmarshal([]byte(mustStrata(t, "", "bench", "consume", "--topic", "load", "-o", "json", bs)), &cr); err != nil {
		t.Fatal(err)
	}
	if cr.Records != 20000 {
		t.Errorf("bench consume: %+v; want 20000 records (each once: the fake never appends twice)", cr)
	}
}

// A record's latency runs from Produce to its acknowledgement, so a retried
// record's includes the failed attempt and the backoff.
func TestBenchLatencyIncludesRetries(t *testing.T) {
	srv := clienttest.NewServer(t)
	bs := "--bootstrap-server=" + srv.Addr
	mustStrata(t, "", "topics", "create", "slow", bs)
	const stall = 100 * time.Millisecond
	var once sync.Once
	srv.SetProduceHook(func(*stratav1.ProduceRequest) error {
		var err error
		once.Do(func() {
			time.Sleep(stall)
			err = status.Error(codes.Unavailable, "broker restarting")
		})
		return err
	})
	var pr benchProduceResult
	if err := json.Unmarshal([]byte(mustStrata(t, "", "bench", "produce", "--topic", "slow", "--records", "1", "--linger", "0", "-o", "json", bs)), &pr); err != nil {
		t.Fatal(err)
	}
	if pr.Records != 1 || pr.Errors != 0 || pr.LatencySamples != 1 || pr.LatencyMs.Max < ms(stall) {
		t.Fatalf("bench produce: %+v; want one record timed at %v or more", pr, stall)
	}
}

// Failed records have no acknowledgement: they are counted, not timed.
func TestBenchTimesAcknowledgedRecordsOnly(t *testing.T) {
	b := newBenchRun(2)
	b.sampler().cb(client.Result{}, errors.New("failed"))
	b.sampler().cb(client.Result{}, nil)
	if b.hist.count() != 1 || b.acked.Load() != 1 || b.failed.Load() != 1 {
		t.Fatalf("timed %d, acked %d, failed %d; want 1, 1, 1", b.hist.count(), b.acked.Load(), b.failed.Load())
	}
}
