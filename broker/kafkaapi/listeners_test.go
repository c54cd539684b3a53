package kafkaapi

import (
	"context"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/metastore"
)

// listenersCore has three brokers: 1 with listeners INTERNAL and
// EXTERNAL, 2 with INTERNAL only, 3 registered before named listeners
// (its one address, KafkaAddr, serves every listener). Broker 2 leads
// partition 1 and coordinates every group.
type listenersCore struct{ nullCore }

func (listenersCore) Metadata(_ context.Context, topics []string) (broker.Metadata, error) {
	md := broker.Metadata{ControllerID: 2, Brokers: []metastore.BrokerInfo{
		{NodeID: 1, KafkaAddr: "in1:9093", Endpoints: []metastore.Endpoint{
			{Listener: "INTERNAL", SecurityProtocol: "PLAINTEXT", Addr: "in1:9093"},
			{Listener: "EXTERNAL", SecurityProtocol: "SSL", Addr: "ext1:9092"}}},
		{NodeID: 2, KafkaAddr: "in2:9093", Endpoints: []metastore.Endpoint{
			{Listener: "INTERNAL", SecurityProtocol: "PLAINTEXT", Addr: "in2:9093"}}},
		{NodeID: 3, KafkaAddr: "old3:9092"},
	}}
	for _, name := range topics {
		md.Topics = append(md.Topics, broker.TopicMetadata{Name: name, Partitions: []metastore.PartitionState{
			{Topic: name, Partition: 0, Leader: 1, Replicas: []int32{1}, ISR: []int32{1}},
			{Topic: name, Partition: 1, Leader: 2, Replicas: []int32{2}, ISR: []int32{2}},
		}})
	}
	return md, nil
}

func (c listenersCore) GroupCoordinator(string) metastore.BrokerInfo {
	md, _ := c.Metadata(context.Background(), nil)
	return md.Brokers[1]
}

// TestBrokersOfTheRequestsListener: Metadata, DescribeCluster and
// FindCoordinator name each broker at its address on the listener the
// request came in on, and leave out a broker without that listener, as
// Kafka does: its partitions have no leader for this client, and it is
// neither controller nor coordinator.
func TestBrokersOfTheRequestsListener(t *testing.T) {
	s := New(listenersCore{}, Config{NodeID: 1})
	ctx := context.Background()
	for _, c := range []struct {
		listener   string
		want       string
		leader1    int32
		controller int32
		coord      int16
	}{
		{"INTERNAL", "[1:in1:9093 2:in2:9093 3:old3:9092]", 2, 2, 0},
		{"EXTERNAL", "[1:ext1:9092 3:old3:9092]", -1, 1, kerr.CoordinatorNotAvailable.Code},
	} {
		h := header{listener: c.listener}
		req := kmsg.NewPtrMetadataRequest()
		req.Version = 12
		topic := "t"
		req.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
		md := s.metadata(ctx, h, req)
		var got []string
		for _, b := range md.Brokers {
			got = append(got, fmt.Sprintf("%d:%s:%d", b.NodeID, b.Host, b.Port))
		}
		if fmt.Sprint(got) != c.want {
			t.Errorf("%s: Metadata brokers %v, want %s", c.listener, got, c.want)
		}
		if p := md.Topics[0].Partitions[1]; p.Leader != c.leader1 {
			t.Errorf("%s: partition 1 led by %d, want %d", c.listener, p.Leader, c.leader1)
		}
		if md.ControllerID != c.controller {
			t.Errorf("%s: controller %d, want %d", c.listener, md.ControllerID, c.controller)
		}

		dc := s.describeCluster(ctx, h, kmsg.NewPtrDescribeClusterRequest())
		got = nil
		for _, b := range dc.Brokers {
			got = append(got, fmt.Sprintf("%d:%s:%d", b.NodeID, b.Host, b.Port))
		}
		if fmt.Sprint(got) != c.want {
			t.Errorf("%s: DescribeCluster brokers %v, want %s", c.listener, got, c.want)
		}

		fc := kmsg.NewPtrFindCoordinatorRequest()
		fc.CoordinatorKey = "g"
		fr := s.findCoordinator(ctx, h, fc)
		if fr.ErrorCode != c.coord || (c.coord == 0 && (fr.Host != "in2" || fr.Port != 9093)) {
			t.Errorf("%s: FindCoordinator %d at %s:%d, error %d; want error %d", c.listener, fr.NodeID, fr.Host, fr.Port, fr.ErrorCode, c.coord)
		}
	}
}
