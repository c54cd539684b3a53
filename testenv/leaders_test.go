package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/rcrowley/go-metrics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// awaitPartitions polls Kafka Metadata for topic until ok accepts every
// partition of it. A broker whose view of etcd lags answers an older
// state, or leader -1, for a moment: polling waits that out.
func awaitPartitions(t testing.TB, adm *kadm.Client, topic string, timeout time.Duration, what string, ok func(kadm.PartitionDetail) error) kadm.PartitionDetails {
	t.Helper()
	var parts kadm.PartitionDetails
	await.NoError(t, timeout, what, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return err
		}
		td, listed := md.Topics[topic]
		if !listed || td.Err != nil || len(td.Partitions) == 0 {
			return fmt.Errorf("topic %s in metadata: listed %v, err %v", topic, listed, td.Err)
		}
		for _, pd := range td.Partitions.Sorted() {
			// A leaderless partition is answered with leader -1 and
			// LEADER_NOT_AVAILABLE: ok judges the leader.
			if pd.Err != nil && !errors.Is(pd.Err, kerr.LeaderNotAvailable) {
				return fmt.Errorf("partition %d: %w", pd.Partition, pd.Err)
			}
			if err := ok(pd); err != nil {
				return fmt.Errorf("partition %d (leader %d, replicas %v, isr %v): %w", pd.Partition, pd.Leader, pd.Replicas, pd.ISR, err)
			}
		}
		parts = td.Partitions
		return nil
	})
	return parts
}

// ledByPreferred: the first replica leads.
func ledByPreferred(pd kadm.PartitionDetail) error {
	if pd.Leader != pd.Replicas[0] {
		return errors.New("not led by its preferred replica")
	}
	return nil
}

// preferredBy returns the partitions of parts whose preferred replica is id.
func preferredBy(parts kadm.PartitionDetails, id int32) []int32 {
	var out []int32
	for _, pd := range parts.Sorted() {
		if pd.Replicas[0] == id {
			out = append(out, pd.Partition)
		}
	}
	return out
}

// failOver kills broker victim, waits until every partition of topic it
// led is led by another broker, runs whileDown, and starts it again.
func failOver(ctx context.Context, t testing.TB, c *testenv.Cluster, adm *kadm.Client, topic string, victim int32, whileDown func()) {
	t.Helper()
	c.Broker(victim).Kill()
	awaitPartitions(t, adm, topic, 30*time.Second, "leadership to move off broker "+strconv.Itoa(int(victim)), func(pd kadm.PartitionDetail) error {
		if pd.Leader < 0 || pd.Leader == victim {
			return errors.New("not led by a live broker")
		}
		return nil
	})
	whileDown()
	if err := c.Broker(victim).Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// produceEach writes n acks=all records to every partition of topic, so a
// restarted replica has something to catch up on before it is in sync.
func produceEach(ctx context.Context, t testing.TB, cl *kgo.Client, topic string, partitions int32, n int) {
	t.Helper()
	var recs []*kgo.Record
	for p := range partitions {
		for i := range n {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(strconv.Itoa(i))})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}

// With auto.leader.rebalance.enable (Kafka's default) the controller gives
// a restarted broker back the leadership of the partitions it is the
// preferred replica of, once it is in sync again. Before it did, a failover
// left the partitions led by the brokers that took over, for good.
func TestLeadersReturnToPreferredReplicasAfterARestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster")
	}
	// Kafka's least interval; the default (300 s) would outlast the test.
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3, BrokerArgs: func(int32) []string {
		return []string{"--config", "leader.imbalance.check.interval.seconds=1"}
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	const topic, partitions = "balanced", 6
	cl, adm, _ := testenvtest.KafkaClient(t, c, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))
	if _, err := adm.CreateTopic(ctx, partitions, 3, nil, topic); err != nil {
		t.Fatal(err)
	}
	parts := awaitPartitions(t, adm, topic, 30*time.Second, "leaders of a new topic", ledByPreferred)
	const victim = 1
	if len(preferredBy(parts, victim)) == 0 {
		t.Fatalf("broker %d is the preferred replica of no partition: %v", victim, parts)
	}
	produceEach(ctx, t, cl, topic, partitions, 50)

	// Records written while it is down are what it catches up on before
	// it is in sync, and can lead, again.
	failOver(ctx, t, c, adm, topic, victim, func() { produceEach(ctx, t, cl, topic, partitions, 50) })
	restarted := time.Now()
	awaitPartitions(t, adm, topic, 60*time.Second, "leadership to return to the preferred replicas", ledByPreferred)
	t.Logf("Metadata shows the preferred replicas leading %v after broker %d started again", time.Since(restarted).Round(time.Millisecond), victim)

	// The controller counted what it did, and sees no imbalance left.
	moved := float64(len(preferredBy(parts, victim)))
	await.True(t, 10*time.Second, "the controller's metrics", func() bool {
		return clusterMetric(t, c, "strata_controller_preferred_leader_elections_total") >= moved &&
			clusterMetric(t, c, "strata_controller_preferred_replica_imbalance") == 0
	})
}

// clusterMetric sums a metric over the brokers of c.
func clusterMetric(t testing.TB, c *testenv.Cluster, name string) float64 {
	t.Helper()
	sum := 0.0
	for _, b := range c.Brokers() {
		if v := metricValue(t, b, name); v > 0 {
			sum += v
		}
	}
	return sum
}

// With auto.leader.rebalance.enable=false leadership stays where a failover
// put it until an operator elects: Kafka's ElectLeaders from franz-go's
// kadm and from sarama's ClusterAdmin bring the preferred replicas back,
// and an unclean election through kadm gives a leaderless partition a
// replica that was not in sync.
func TestElectLeadersFromKafkaAdminClients(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3, BrokerArgs: func(int32) []string {
		return []string{"--config", "auto.leader.rebalance.enable=false", "--config", "leader.imbalance.check.interval.seconds=1"}
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	const topic, partitions = "elected", 6
	cl, adm, seeds := testenvtest.KafkaClient(t, c, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))
	if _, err := adm.CreateTopic(ctx, partitions, 3, nil, topic); err != nil {
		t.Fatal(err)
	}
	parts := awaitPartitions(t, adm, topic, 30*time.Second, "leaders of a new topic", ledByPreferred)
	const victim = 2
	moved := preferredBy(parts, victim)
	if len(moved) < 2 {
		t.Fatalf("broker %d is the preferred replica of %v; the test needs two", victim, moved)
	}
	failOver(ctx, t, c, adm, topic, victim, func() { produceEach(ctx, t, cl, topic, partitions, 50) })
	awaitPartitions(t, adm, topic, 60*time.Second, "broker 2 back in every ISR", func(pd kadm.PartitionDetail) error {
		if !slices.Contains(pd.ISR, victim) {
			return errors.New("broker 2 is not in sync")
		}
		return nil
	})
	// In sync and preferred, yet not leading: nothing balances leaders.
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range moved {
		if pd := md.Topics[topic].Partitions[p]; pd.Leader == victim {
			t.Fatalf("partition %d is led by broker %d again with auto.leader.rebalance.enable=false", p, victim)
		}
	}

	// kadm elects in all but the last of broker 2's partitions, sarama in
	// the last.
	kadmParts, saramaPart := moved[:len(moved)-1], moved[len(moved)-1]
	res, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{topic: setOf(kadmParts)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range kadmParts {
		if r, ok := res[topic][p]; !ok || r.Err != nil {
			t.Fatalf("kadm ElectLeaders, partition %d: listed %v, %v %s", p, ok, r.Err, r.ErrMessage)
		}
	}
	sa := saramaAdmin(t, seeds)
	sres, err := sa.ElectLeaders(sarama.PreferredElection, map[string][]int32{topic: {saramaPart}})
	if err != nil {
		t.Fatal(err)
	}
	if r := sres[topic][saramaPart]; r == nil || !errors.Is(r.ErrorCode, sarama.ErrNoError) {
		t.Fatalf("sarama ElectLeaders, partition %d: %+v", saramaPart, r)
	}
	awaitPartitions(t, adm, topic, 30*time.Second, "leadership back on the preferred replicas", ledByPreferred)
	// Asked again, there is nothing to do.
	res, err = adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{topic: setOf(kadmParts)})
	if err != nil {
		t.Fatal(err)
	}
	if r := res[topic][kadmParts[0]]; !errors.Is(r.Err, kerr.ElectionNotNeeded) {
		t.Fatalf("a second election of partition %d: %v, want ELECTION_NOT_NEEDED", kadmParts[0], r.Err)
	}

	// A partition whose only in-sync replica is gone has no leader; an
	// unclean election hands it to the replica that was out of sync.
	const lost = "lost"
	if _, err := adm.CreateTopic(ctx, 1, 2, nil, lost); err != nil {
		t.Fatal(err)
	}
	pd := awaitPartitions(t, adm, lost, 30*time.Second, "a leader of "+lost, ledByPreferred)[0]
	inSync, behind := pd.Replicas[0], pd.Replicas[1]
	c.Broker(behind).Kill()
	awaitPartitions(t, adm, lost, 30*time.Second, "the ISR to shrink", func(pd kadm.PartitionDetail) error {
		if !slices.Equal(pd.ISR, []int32{inSync}) {
			return errors.New("ISR is not the leader alone")
		}
		return nil
	})
	produceEach(ctx, t, cl, lost, 1, 10)
	c.Broker(inSync).Kill()
	awaitPartitions(t, adm, lost, 30*time.Second, "the partition to lose its leader", func(pd kadm.PartitionDetail) error {
		if pd.Leader != -1 {
			return errors.New("still led")
		}
		return nil
	})
	if err := c.Broker(behind).Start(ctx); err != nil {
		t.Fatal(err)
	}
	res, err = adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{lost: {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := res[lost][0]; !errors.Is(r.Err, kerr.PreferredLeaderNotAvailable) {
		t.Fatalf("preferred election with the preferred replica down: %v, want PREFERRED_LEADER_NOT_AVAILABLE", r.Err)
	}
	res, err = adm.ElectLeaders(ctx, kadm.ElectLiveReplica, kadm.TopicsSet{lost: {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := res[lost][0]; r.Err != nil {
		t.Fatalf("unclean election: %v %s", r.Err, r.ErrMessage)
	}
	awaitPartitions(t, adm, lost, 30*time.Second, "the out-of-sync replica to lead", func(pd kadm.PartitionDetail) error {
		if pd.Leader != behind || !slices.Equal(pd.ISR, []int32{behind}) {
			return fmt.Errorf("want leader %d, ISR [%d]", behind, behind)
		}
		return nil
	})
}

func setOf(ps []int32) map[int32]struct{} {
	m := make(map[int32]struct{}, len(ps))
	for _, p := range ps {
		m[p] = struct{}{}
	}
	return m
}

// saramaAdmin is a sarama ClusterAdmin on seeds, closed when the test ends.
func saramaAdmin(t testing.TB, seeds []string) sarama.ClusterAdmin {
	t.Helper()
	// sarama's meters start a go-metrics goroutine that never ends, which
	// the package's goleak check would report.
	metrics.UseNilMetrics = true
	testenvtest.SaramaLogTo(nil)
	cfg := sarama.NewConfig()
	// ElectLeaders v2 (with the election type) needs Kafka 2.4.
	cfg.Version = sarama.V2_4_0_0
	sa, err := sarama.NewClusterAdmin(seeds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sa.Close() })
	return sa
}
