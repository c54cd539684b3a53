package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
)

// awaitDescribe polls `strata topics describe -o json` until ok accepts
// every partition: a broker whose view lags answers an older state for a
// moment.
func awaitDescribe(t *testing.T, bs, topic, what string, ok func(partitionJSON) error) topicJSON {
	t.Helper()
	var desc topicJSON
	await.NoError(t, 60*time.Second, what, func() error {
		code, out, errOut := strata(t, "", "topics", "describe", topic, "-o", "json", bs)
		if code != 0 {
			return fmt.Errorf("describe: exit %d: %s", code, errOut)
		}
		var d topicJSON
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			return err
		}
		for _, p := range d.Partitions {
			if err := ok(p); err != nil {
				return fmt.Errorf("partition %d %+v: %w", p.Partition, p, err)
			}
		}
		desc = d
		return nil
	})
	return desc
}

// `strata partitions elect-leaders` against three brokers that do not
// balance leaders themselves: after a failover and the broker's return, it
// puts the preferred replicas back in the lead, and reports partitions
// that needed no election as kafka-leader-election does.
func TestElectLeadersCommandAgainstACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3, BrokerArgs: func(int32) []string {
		return []string{"--config", "auto.leader.rebalance.enable=false"}
	}})
	bs := "--bootstrap-server=" + c.Broker(3).GRPCAddr()
	const topic = "elect"
	mustStrata(t, "", "topics", "create", topic, "--partitions", "3", "--replication-factor", "3", bs)
	preferredLeads := func(p partitionJSON) error {
		if len(p.Replicas) == 0 || p.Leader != p.Replicas[0] {
			return errors.New("not led by its preferred replica")
		}
		return nil
	}
	desc := awaitDescribe(t, bs, topic, "leaders of a new topic", preferredLeads)
	const victim = 1
	var moved []string
	for _, p := range desc.Partitions {
		if p.Replicas[0] == victim {
			moved = append(moved, partitionName(topic, p.Partition))
		}
	}
	if len(moved) == 0 {
		t.Fatalf("broker %d is the preferred replica of no partition: %+v", victim, desc.Partitions)
	}

	// Nothing to elect yet.
	if got := mustStrata(t, "", "partitions", "elect-leaders", "--election-type", "preferred", "--topic", topic, "--partition", "0", bs); got != "Valid replica already elected for partitions elect-0\n" {
		t.Fatalf("election with the preferred replica leading: %q", got)
	}

	c.Broker(victim).Kill()
	awaitDescribe(t, bs, topic, "leadership to move off broker 1", func(p partitionJSON) error {
		if p.Leader < 0 || p.Leader == victim {
			return errors.New("not led by a live broker")
		}
		return nil
	})
	// While it is down, its partitions cannot have it back.
	code, out, errOut := strata(t, "", "partitions", "elect-leaders", "--election-type", "preferred", "--topic", topic, "--partition", strings.TrimPrefix(moved[0], topic+"-"), bs)
	// The partition is named once, with Kafka's name for the error.
	wantErr := "strata: leader election for partition " + moved[0] + ": PREFERRED_LEADER_NOT_AVAILABLE: preferred leader not available: broker 1 is not alive or not in the ISR"
	if code == 0 || !strings.HasPrefix(errOut, wantErr) {
		t.Fatalf("election with the preferred replica down: exit %d, out %q, err %q; want it to start %q", code, out, errOut, wantErr)
	}
	// Asked for every partition, one that cannot be elected is reported,
	// not a failure; an unclean election is needed nowhere.
	got := mustStrata(t, "", "partitions", "elect-leaders", "--election-type", "preferred", "--all-topic-partitions", bs)
	if want := "Error completing leader election for partition " + moved[0] + ": PREFERRED_LEADER_NOT_AVAILABLE: "; !strings.HasPrefix(got, want) {
		t.Fatalf("elect-leaders --all-topic-partitions with broker 1 down: %q, want it to start %q", got, want)
	}
	if got := mustStrata(t, "", "partitions", "elect-leaders", "--election-type", "unclean", "--all-topic-partitions", bs); got != "Valid replica already elected for partitions elect-0, elect-1, elect-2\n" {
		t.Fatalf("unclean election with every partition led: %q", got)
	}
	if err := c.Broker(victim).Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	awaitDescribe(t, bs, topic, "broker 1 back in every ISR", func(p partitionJSON) error {
		if !slices.Contains(p.ISR, victim) {
			return errors.New("broker 1 is not in sync")
		}
		return nil
	})

	plan := filepath.Join(t.TempDir(), "elect.json")
	if err := os.WriteFile(plan, []byte(`{"partitions":[{"topic":"elect","partition":0},{"topic":"elect","partition":1},{"topic":"elect","partition":2}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	got = mustStrata(t, "", "partitions", "elect-leaders", "--election-type", "preferred", "--path-to-json-file", plan, bs)
	if want := "Successfully completed leader election for partitions " + strings.Join(moved, ", ") + "\n"; !strings.HasPrefix(got, want) {
		t.Fatalf("elect-leaders printed %q, want it to start %q", got, want)
	}
	awaitDescribe(t, bs, topic, "leadership back on the preferred replicas", preferredLeads)
	if got := mustStrata(t, "", "partitions", "elect-leaders", "--election-type", "preferred", "--all-topic-partitions", bs); !strings.Contains(got, "Valid replica already elected for partitions elect-0, elect-1, elect-2") {
		t.Fatalf("elect-leaders --all-topic-partitions after the election: %q", got)
	}
}
