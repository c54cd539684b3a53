package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// metadataForUnknown sends one Metadata request naming n topics that do
// not exist, allowing auto-creation, and returns each topic's error code.
func metadataForUnknown(t *testing.T, cl *kgo.Client, prefix string, n int) map[string]int16 {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = true
	for i := range n {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(fmt.Sprintf("%s%04d", prefix, i))
		req.Topics = append(req.Topics, rt)
	}
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("metadata naming %d unknown topics: %v", n, err)
	}
	codes := map[string]int16{}
	for _, rt := range resp.Topics {
		codes[*rt.Topic] = rt.ErrorCode
	}
	if len(codes) != n {
		t.Fatalf("metadata answered for %d topics, asked for %d", len(codes), n)
	}
	return codes
}

// One Metadata request naming 1,000 topics that did not exist created all
// of them (9.3 s, each with its files and goroutines). A broker does not
// auto-create topics unless auto.create.topics.enable is set, which only
// `strata dev` does by default.
func TestMetadataCreatesNothingOnABroker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of processes")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 1})
	b := c.Brokers()[0]
	cl, _ := growthKafka(t, b.KafkaAddr())
	_, peakBefore := growthMemory(t, b.Pid())
	codes := metadataForUnknown(t, cl, "unknown-", 1000)
	_, peakAfter := growthMemory(t, b.Pid())
	t.Logf("peak RSS %d -> %d MiB", peakBefore>>20, peakAfter>>20)
	for name, code := range codes {
		if code != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("topic %s: error %d, want UNKNOWN_TOPIC_OR_PARTITION", name, code)
		}
	}
	if got := growthTopics(t, testenvtest.Dial(t, b.GRPCAddr()), "unknown-"); len(got) != 0 {
		t.Fatalf("Metadata created %d topics on a broker without auto.create.topics.enable", len(got))
	}
}

// `strata dev` auto-creates topics, as Kafka's default does, but at most
// auto.create.topics.max.per.request of those one Metadata request names
// (in the request's order); the rest are answered
// UNKNOWN_TOPIC_OR_PARTITION, so a client asks again.
func TestMetadataAutoCreatesABoundedNumberOnDev(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker; skipped with -short")
	}
	// The bound this test holds the broker to: well below what one request
	// names.
	const bound = 100
	dev := testenv.StartDev(t, testenv.DevOptions{})
	cl, _ := growthKafka(t, dev.KafkaAddr)
	api := testenvtest.Dial(t, dev.GRPCAddr)
	_, peakBefore := growthMemory(t, dev.Pid())
	codes := metadataForUnknown(t, cl, "unknown-", 1000)
	created := growthTopics(t, api, "unknown-")
	_, peakAfter := growthMemory(t, dev.Pid())
	t.Logf("one request auto-created %d topics; peak RSS %d -> %d MiB", len(created), peakBefore>>20, peakAfter>>20)
	if len(created) == 0 || len(created) > bound {
		t.Fatalf("one Metadata request auto-created %d topics; want between 1 and %d", len(created), bound)
	}
	for name, code := range codes {
		switch _, ok := created[name]; {
		case ok && code != 0 && code != kerr.LeaderNotAvailable.Code:
			t.Errorf("created topic %s answered with error %d", name, code)
		case !ok && code != kerr.UnknownTopicOrPartition.Code:
			t.Errorf("topic %s not created but answered with error %d, want UNKNOWN_TOPIC_OR_PARTITION", name, code)
		}
	}
	// The first ones named are the ones created.
	for i := range len(created) {
		if name := fmt.Sprintf("unknown-%04d", i); created[name] == 0 {
			t.Errorf("topic %s, named %d of 1000, was not created, but %d were", name, i, len(created))
		}
	}
	// Asking again creates the next ones.
	metadataForUnknown(t, cl, "unknown-", 1000)
	if again := growthTopics(t, api, "unknown-"); len(again) <= len(created) || len(again) > 2*len(created) {
		t.Fatalf("a second request grew the auto-created topics from %d to %d", len(created), len(again))
	}
}

// The cluster's partition count is bounded by max.partitions (KIP-578's
// key): CreateTopics, CreatePartitions and auto-creation that would go
// past it fail with POLICY_VIOLATION naming the limit, and create nothing,
// even when many requests race for the last partitions.
func TestClusterPartitionLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker; skipped with -short")
	}
	const limit = 20
	dev := testenv.StartDev(t, testenv.DevOptions{ExtraArgs: []string{"--config", "max.partitions=" + strconv.Itoa(limit)}})
	cl, adm := growthKafka(t, dev.KafkaAddr)
	api := testenvtest.Dial(t, dev.GRPCAddr)
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()

	// Concurrent creations compete for the 20 partitions: 12 topics of 3.
	var wg sync.WaitGroup
	errs := make([]error, 12)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = api.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: fmt.Sprintf("limited-%02d", i),
				Partitions: 3, ReplicationFactor: 1})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil && status.Code(err) != codes.FailedPrecondition {
			t.Errorf("topic limited-%02d: %v, want FailedPrecondition", i, err)
		}
		if err != nil && !strings.Contains(err.Error(), "max.partitions") {
			t.Errorf("topic limited-%02d: message %q does not name max.partitions", i, err)
		}
	}
	created := growthTopics(t, api, "limited-")
	total := int32(0)
	for _, n := range created {
		total += n
	}
	if total > limit || total < limit-2 {
		t.Fatalf("%d topics of 3 partitions created, %d partitions; want the most that fit in %d", len(created), total, limit)
	}
	for i, err := range errs {
		if _, ok := created[fmt.Sprintf("limited-%02d", i)]; ok == (err != nil) {
			t.Errorf("topic limited-%02d: created %v, error %v", i, ok, err)
		}
	}

	// Fill the cluster: then even one more partition does not fit.
	if room := limit - total; room > 0 {
		createTopic(t, api, "limited-filler", room, nil)
	}

	// Through Kafka's APIs: a topic that does not fit, growing one, and an
	// auto-created one (strata dev auto-creates) all fail the same way.
	resp, err := adm.CreateTopic(ctx, 1, 1, nil, "over-kafka")
	if err == nil {
		err = resp.Err
	}
	if !errors.Is(err, kerr.PolicyViolation) || !strings.Contains(resp.ErrMessage, "max.partitions") {
		t.Fatalf("CreateTopics past max.partitions: %v (%q), want POLICY_VIOLATION naming max.partitions", err, resp.ErrMessage)
	}
	var grow string
	for name := range created {
		grow = name
		break
	}
	cp, err := adm.CreatePartitions(ctx, 1, grow)
	if err == nil {
		var r kadm.CreatePartitionsResponse
		if r, err = cp.On(grow, nil); err == nil {
			err = r.Err
		}
	}
	if !errors.Is(err, kerr.PolicyViolation) {
		t.Fatalf("CreatePartitions past max.partitions: %v, want POLICY_VIOLATION", err)
	}
	md := metadataForUnknown(t, cl, "over-auto-", 1)
	if code := md["over-auto-0000"]; code != kerr.PolicyViolation.Code {
		t.Fatalf("auto-creation past max.partitions answered %d, want POLICY_VIOLATION", code)
	}
	if got := growthTopics(t, api, "over-"); len(got) != 0 {
		t.Fatalf("topics past the limit were created: %v", got)
	}
	after := growthTopics(t, api, "limited-")
	if after[grow] != created[grow] {
		t.Fatalf("%s has %d partitions after a refused CreatePartitions, had %d", grow, after[grow], created[grow])
	}
}
