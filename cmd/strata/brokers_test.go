package main

import (
	"bytes"
	"strings"
	"testing"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// brokers list counts each broker's replicas and leaderships from
// Metadata and sums its replicas' sizes from its DescribeLogDirs answer,
// marks the controller, and prints brokers in id order.
func TestBrokerRows(t *testing.T) {
	md := &stratav1.MetadataResponse{
		ControllerId: 2,
		Brokers: []*stratav1.BrokerInfo{
			{NodeId: 3, GrpcAddr: "h3:9093", KafkaAddr: "h3:9092", Rack: "b"},
			{NodeId: 1, GrpcAddr: "h1:9093", KafkaAddr: "h1:9092", Rack: "a"},
			{NodeId: 2, GrpcAddr: "h2:9093"},
		},
		Topics: []*stratav1.TopicMetadata{
			{Name: "t", Partitions: []*stratav1.PartitionInfo{
				{Partition: 0, Leader: 1, Replicas: []int32{1, 2, 3}},
				{Partition: 1, Leader: 3, Replicas: []int32{3, 1}},
				{Partition: 2, Leader: -1, Replicas: []int32{2, 4}}, // 4 is not live
			}},
		},
	}
	dirs := []*stratav1.DescribeLogDirsResponse{
		{NodeId: 1, Replicas: []*stratav1.ReplicaLogDir{{Topic: "t", Partition: 0, SizeBytes: 1000}, {Topic: "t", Partition: 1, SizeBytes: 24}}},
		{NodeId: 3, Replicas: []*stratav1.ReplicaLogDir{{Topic: "t", Partition: 0, SizeBytes: 3 << 20}}},
		{NodeId: 4, Replicas: []*stratav1.ReplicaLogDir{{Topic: "t", Partition: 2, SizeBytes: 7}}}, // not in Metadata
	}
	var out bytes.Buffer
	writeBrokers(&out, brokerRows(md, dirs))
	want := []string{
		"ID  GRPC     KAFKA    RACK  REPLICAS  LEADERS  BYTES",
		"1   h1:9093  h1:9092  a     2         1        1.0 KiB",
		"2*  h2:9093  -        -     2         0        0 B",
		"3   h3:9093  h3:9092  b     2         1        3.0 MiB",
	}
	if got := strings.Split(strings.TrimRight(out.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("brokers list:\n%s\nwant:\n%s", out.String(), strings.Join(want, "\n"))
	}
}

// The planner sees each partition's target (not the replicas a move
// removes), whether it is moving, and the largest of its replicas' sizes.
func TestPlanInput(t *testing.T) {
	md := &stratav1.MetadataResponse{
		Brokers: []*stratav1.BrokerInfo{{NodeId: 1, Rack: "a"}, {NodeId: 2}},
		Topics: []*stratav1.TopicMetadata{{Name: "t", Partitions: []*stratav1.PartitionInfo{
			{Partition: 0, Leader: 1, Replicas: []int32{1, 2}},
			{Partition: 1, Leader: 2, Replicas: []int32{2, 3, 1}, AddingReplicas: []int32{2}, RemovingReplicas: []int32{1}},
		}}},
	}
	dirs := []*stratav1.DescribeLogDirsResponse{
		{NodeId: 1, Replicas: []*stratav1.ReplicaLogDir{{Topic: "t", Partition: 0, SizeBytes: 100}, {Topic: "t", Partition: 1, SizeBytes: 7}}},
		{NodeId: 2, Replicas: []*stratav1.ReplicaLogDir{{Topic: "t", Partition: 0, SizeBytes: 90}}},
	}
	brokers, parts := planInput(md, dirs)
	if len(brokers) != 2 || brokers[0].Rack != "a" || brokers[1].Rack != "" {
		t.Errorf("brokers: %+v", brokers)
	}
	if len(parts) != 2 {
		t.Fatalf("partitions: %+v", parts)
	}
	if p := parts[0]; p.Size != 100 || p.Moving || p.Leader != 1 || len(p.Replicas) != 2 {
		t.Errorf("t-0: %+v", p)
	}
	if p := parts[1]; p.Size != 7 || !p.Moving || len(p.Replicas) != 2 || p.Replicas[0] != 2 || p.Replicas[1] != 3 {
		t.Errorf("t-1: %+v, want target [2 3], moving, 7 bytes", p)
	}
}

// Without sizes (no Describe on the cluster), bytes are unknown, not 0.
func TestBrokerRowsWithoutSizes(t *testing.T) {
	md := &stratav1.MetadataResponse{Brokers: []*stratav1.BrokerInfo{{NodeId: 1, GrpcAddr: "h1:9093"}}}
	rows := brokerRows(md, nil)
	if len(rows) != 1 || rows[0].Bytes != -1 {
		t.Fatalf("rows: %+v", rows)
	}
	var out bytes.Buffer
	writeBrokers(&out, rows)
	if want := "1   h1:9093  -      -     0         0        -\n"; !strings.HasSuffix(out.String(), want) {
		t.Errorf("brokers list:\n%q\nwant a last line %q", out.String(), want)
	}
}
