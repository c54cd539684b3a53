package testenv_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
)

// TestBrokerRacks: each broker's broker.rack reaches Kafka clients in
// Metadata and DescribeCluster, and `strata brokers list` shows it with
// the replicas and leaders each broker has.
func TestBrokerRacks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster")
	}
	racks := map[int32]string{1: "zone-a", 2: "zone-b", 3: "zone-c"}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3,
		BrokerArgs: func(id int32) []string { return []string{"--config", "broker.rack=" + racks[id]} }})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, adm, _ := kafkaClient(t, c)
	resp, err := adm.CreateTopic(ctx, 3, 3, nil, "placed")
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	md, err := adm.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range md.Brokers {
		if b.Rack == nil || *b.Rack != racks[b.NodeID] {
			t.Errorf("Metadata: broker %d rack %v, want %s", b.NodeID, b.Rack, racks[b.NodeID])
		}
	}
	cluster, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range cluster.Brokers {
		if b.Rack == nil || *b.Rack != racks[b.NodeID] {
			t.Errorf("DescribeCluster: broker %d rack %v, want %s", b.NodeID, b.Rack, racks[b.NodeID])
		}
	}

	// Every broker holds a replica of each of the 3 partitions; between
	// them they lead all 3.
	await.NoError(t, 30*time.Second, "brokers list to show every replica and leader", func() error {
		out, _, err := runStrata(t, c.BootstrapServers(), "", "brokers", "list")
		if err != nil {
			return err
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 4 {
			return fmt.Errorf("brokers list:\n%s", out)
		}
		leaders := 0
		for i, line := range lines[1:] {
			f := strings.Fields(line)
			id := int32(i + 1)
			if len(f) != 8 || strings.TrimSuffix(f[0], "*") != fmt.Sprint(id) || f[3] != racks[id] || f[4] != "3" {
				return fmt.Errorf("broker %d's line %q, want rack %s and 3 replicas:\n%s", id, line, racks[id], out)
			}
			var n int
			fmt.Sscan(f[5], &n)
			leaders += n
		}
		if leaders != 3 {
			return fmt.Errorf("%d leaders listed, want 3:\n%s", leaders, out)
		}
		return nil
	})
}
