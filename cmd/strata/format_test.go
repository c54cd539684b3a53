package main

import (
	"bytes"
	"encoding/json"
	"testing"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

func sampleDescription() *stratav1.TopicDescription {
	return &stratav1.TopicDescription{
		Name:              "orders",
		TopicId:           "8d3f1c2a-0000-4000-8000-000000000001",
		ReplicationFactor: 3,
		Partitions: []*stratav1.PartitionInfo{
			{Partition: 0, Leader: 1, LeaderEpoch: 4, Replicas: []int32{1, 2, 3}, Isr: []int32{1, 2, 3}},
			{Partition: 1, Leader: -1, Replicas: []int32{2, 3, 1}, Isr: []int32{}},
		},
		Configs: []*stratav1.ConfigEntry{
			{Name: "retention.ms", Value: "3600000", Source: "topic"},
			{Name: "cleanup.policy", Value: "compact", Source: "topic"},
			{Name: "segment.bytes", Value: "1073741824", Source: "default"},
			{Name: "min.insync.replicas", Value: "2", Source: "broker"},
		},
	}
}

// The text form is kafka-topics.sh --describe's, byte for byte: scripts that
// parse Kafka's output must work unchanged.
func TestDescribeTextIsKafkasFormat(t *testing.T) {
	var out bytes.Buffer
	writeDescribe(&out, sampleDescription(), false)
	want := "Topic: orders\tTopicId: 8d3f1c2a-0000-4000-8000-000000000001\tPartitionCount: 2\tReplicationFactor: 3\tConfigs: cleanup.policy=compact,retention.ms=3600000\n" +
		"\tTopic: orders\tPartition: 0\tLeader: 1\tReplicas: 1,2,3\tIsr: 1,2,3\n" +
		"\tTopic: orders\tPartition: 1\tLeader: none\tReplicas: 2,3,1\tIsr: \n"
	if out.String() != want {
		t.Fatalf("got:\n%q\nwant:\n%q", out.String(), want)
	}
}

func TestDescribeWithAllConfigs(t *testing.T) {
	var out bytes.Buffer
	writeDescribe(&out, sampleDescription(), true)
	want := "All configs for topic orders are:\n" +
		"  cleanup.policy=compact\tsource=topic\n" +
		"  min.insync.replicas=2\tsource=broker\n" +
		"  retention.ms=3600000\tsource=topic\n" +
		"  segment.bytes=1073741824\tsource=default\n"
	if got := out.String(); !bytes.HasSuffix([]byte(got), []byte(want)) {
		t.Fatalf("got:\n%s\nwant it to end with:\n%s", got, want)
	}
}

func TestDescribeJSONShape(t *testing.T) {
	var out bytes.Buffer
	if err := writeJSON(&out, describeJSON(sampleDescription(), false)); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"name", "topic_id", "partition_count", "replication_factor", "configs", "partitions"} {
		if _, ok := got[key]; !ok {
			t.Errorf("missing %q in %s", key, out.String())
		}
	}
	if _, ok := got["all_configs"]; ok {
		t.Error("all_configs present without --configs")
	}
	configs := got["configs"].(map[string]any)
	if len(configs) != 2 || configs["retention.ms"] != "3600000" {
		t.Errorf("configs %v: want the two topic overrides", configs)
	}
	p1 := got["partitions"].([]any)[1].(map[string]any)
	if p1["leader"] != float64(-1) || p1["isr"] == nil {
		t.Errorf("partition 1: %v (isr must be [], not null)", p1)
	}

	out.Reset()
	_ = writeJSON(&out, describeJSON(sampleDescription(), true))
	var all topicJSON
	if err := json.Unmarshal(out.Bytes(), &all); err != nil {
		t.Fatal(err)
	}
	if len(all.AllConfigs) != 4 || all.AllConfigs[0].Name != "cleanup.policy" || all.AllConfigs[1].Source != "broker" {
		t.Errorf("all_configs %+v", all.AllConfigs)
	}
}

func TestLatencyHistogramQuantiles(t *testing.T) {
	var h latencyHistogram
	// 1..10000 microseconds, once each.
	for i := 1; i <= 10000; i++ {
		h.record(micros(i))
	}
	for _, c := range []struct {
		q    float64
		want int
	}{{0.5, 5000}, {0.99, 9900}, {0.999, 9990}, {1, 10000}} {
		got := h.quantile(c.q)
		want := micros(c.want)
		if diff := got - want; diff < -want/100 || diff > want/100 {
			t.Errorf("quantile(%v) = %v, want %v within 1%%", c.q, got, want)
		}
	}
	if h.count() != 10000 || h.max.Load() != int64(micros(10000)) {
		t.Errorf("count %d max %d", h.count(), h.max.Load())
	}
	var empty latencyHistogram
	if empty.quantile(0.5) != 0 {
		t.Error("empty histogram has a median")
	}
}

func TestHistogramBucketsCoverValues(t *testing.T) {
	for _, v := range []uint64{0, 1, 255, 256, 257, 1000, 1 << 20, 1<<20 + 12345, 1 << 40, 1<<63 + 5} {
		i := histIndex(v)
		lower, width := histLower(i)
		if v < lower || v-lower >= width {
			t.Errorf("value %d in bucket %d = [%d, %d+%d)", v, i, lower, lower, width)
		}
		if i >= histBuckets {
			t.Errorf("value %d: bucket %d out of range", v, i)
		}
	}
}
