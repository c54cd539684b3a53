package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/broker/server"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/tiering/objstore"
)

// The replay summary gives each partition's last offset in the bucket and,
// asked with --bootstrap-server, how far the broker's log goes beyond it;
// a partition with nothing sealed yet says so.
func TestReplaySummaryComparesTheBrokersLog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker with embedded etcd")
	}
	t.Setenv(bootstrapEnv, "")
	dir := t.TempDir()
	storeURL := "file://" + filepath.Join(dir, "objects")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan server.Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Config{
			NodeID: 1, DataDir: filepath.Join(dir, "data"), GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", KafkaAddr: "127.0.0.1:0",
			EmbedEtcd: true, EtcdClientAddr: "127.0.0.1:0", ObjectStoreURL: storeURL,
			Settings: map[string]string{"remote.log.manager.task.interval.ms": "50", "log.segment.min.bytes": "1024"},
		}, func(a server.Addrs) { ready <- a })
	}()
	var addrs server.Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("broker exited before it was ready: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("broker: %v", err)
		}
	})

	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs.Kafka.String()), kgo.DefaultProduceTopic("orders"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	v := func(s string) *string { return &s }
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, map[string]*string{"remote.storage.enable": v("true"), "segment.bytes": v("1024")}, "orders"); err != nil {
		t.Fatal(err)
	}
	// Partition 0 fills several segments; partition 1 only starts its
	// first, which stays on the broker until it is sealed.
	const n0, n1 = 60, 3
	var recs []*kgo.Record
	for i := range n0 {
		recs = append(recs, &kgo.Record{Partition: 0, Value: []byte(fmt.Sprintf("%d-%s", i, strings.Repeat("x", 100)))})
	}
	for i := range n1 {
		recs = append(recs, &kgo.Record{Partition: 1, Value: []byte(fmt.Sprint(i))})
	}
	for _, r := range recs {
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	objects, err := objstore.Open(ctx, storeURL, objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	await.NoError(t, 30*time.Second, "a segment of partition 0 in the bucket", func() error {
		plan, err := tiering.PlanReplay(ctx, objects, "orders", tiering.ReplayOptions{Partitions: []int32{0}})
		if err != nil {
			return err
		}
		if _, ok := plan.Partitions[0].LastOffset(); !ok {
			return fmt.Errorf("nothing uploaded yet")
		}
		return nil
	})

	// lastReplayed is partition 0's last offset in replay's output: the
	// bucket's end as the replay's own plan saw it (more may be uploaded
	// meanwhile).
	lastReplayed := func(t *testing.T, out string) int64 {
		t.Helper()
		last := int64(-1)
		for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			var r struct {
				Partition int32 `json:"partition"`
				Offset    int64 `json:"offset"`
			}
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if r.Partition == 0 {
				last = r.Offset
			}
		}
		if last < 0 {
			t.Fatalf("no record of partition 0 replayed:\n%s", out)
		}
		return last
	}
	store := "--object-store=" + storeURL

	t.Run("with the broker", func(t *testing.T) {
		code, out, errOut := strata(t, "", "replay", store, "--topic", "orders", "--bootstrap-server="+addrs.GRPC.String())
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		last := lastReplayed(t, out)
		for _, want := range []string{
			fmt.Sprintf("  partition 0: last offset in the bucket %d; the broker's log goes %d offsets beyond it (high watermark %d)\n", last, n0-last-1, n0),
			fmt.Sprintf("  partition 1: nothing in the bucket yet; the broker's high watermark is %d\n", n1),
		} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr %q lacks %q", errOut, want)
			}
		}
	})
	t.Run("without a broker", func(t *testing.T) {
		code, out, errOut := strata(t, "", "replay", store, "--topic", "orders")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		last := lastReplayed(t, out)
		for _, want := range []string{
			fmt.Sprintf("  partition 0: last offset in the bucket %d\n", last),
			"  partition 1: nothing in the bucket yet (only sealed segments are uploaded)\n",
		} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr %q lacks %q", errOut, want)
			}
		}
	})
	t.Run("broker unreachable", func(t *testing.T) {
		lis := "127.0.0.1:1"
		code, _, errOut := strata(t, "", "replay", store, "--topic", "orders", "--bootstrap-server="+lis)
		if code != 0 || !strings.Contains(errOut, "The broker at "+lis+" was not asked") && !strings.Contains(errOut, "The broker at "+lis+" did not") ||
			strings.Contains(errOut, "rpc error") || !strings.Contains(errOut, "  partition 1: nothing in the bucket yet (only sealed") {
			t.Errorf("exit %d, stderr %q: want the summary and a note that the broker was not reached", code, errOut)
		}
	})
}
