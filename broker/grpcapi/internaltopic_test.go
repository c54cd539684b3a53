package grpcapi

import (
	"context"
	"testing"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// Kafka's internal topic is virtual: the gRPC listings (and so `strata
// topics list`, rebalance and cluster info) leave it out; asked for by
// name, it is described.
func TestInternalTopicIsLeftOutOfListings(t *testing.T) {
	c, _ := startBroker(t)
	ctx := context.Background()
	md, err := c.Metadata(ctx, &stratav1.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tm := range md.GetTopics() {
		if tm.GetName() == "__consumer_offsets" {
			t.Fatal("metadata of every topic lists __consumer_offsets")
		}
	}
	lt, err := c.ListTopics(ctx, &stratav1.ListTopicsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tm := range lt.GetTopics() {
		if tm.GetName() == "__consumer_offsets" {
			t.Fatal("the topic list has __consumer_offsets")
		}
	}
	d, err := c.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: "__consumer_offsets"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(d.GetTopic().GetPartitions()); n != 50 {
		t.Fatalf("described with %d partitions, want offsets.topic.num.partitions' default, 50", n)
	}
}
