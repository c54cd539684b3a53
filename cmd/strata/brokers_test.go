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
