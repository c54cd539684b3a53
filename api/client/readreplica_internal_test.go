package client

import (
	"testing"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// A consumer with a rack reads from the in-sync replica in its rack when
// the leader is elsewhere, and from the leader otherwise.
func TestReadReplicaOf(t *testing.T) {
	resp := &stratav1.MetadataResponse{
		Brokers: []*stratav1.BrokerInfo{
			{NodeId: 1, GrpcAddr: "b1", Rack: "a"},
			{NodeId: 2, GrpcAddr: "b2", Rack: "b"},
			{NodeId: 3, GrpcAddr: "b3", Rack: "c"},
			{NodeId: 4, GrpcAddr: "b4", Rack: "b"},
		},
		Topics: []*stratav1.TopicMetadata{{Name: "t", Partitions: []*stratav1.PartitionInfo{
			{Partition: 0, Leader: 1, LeaderEpoch: 3, Replicas: []int32{1, 4, 2, 5}, Isr: []int32{1, 4, 2, 5}},
			{Partition: 1, Leader: 1, LeaderEpoch: 0, Replicas: []int32{1, 2, 3}, Isr: []int32{1, 3}},
			{Partition: 2, Leader: 2, LeaderEpoch: 0, Replicas: []int32{2, 3}, Isr: []int32{2, 3}},
			{Partition: 3, Leader: -1, Replicas: []int32{2}, Isr: []int32{2}},
		}}},
	}
	c := &Client{}
	c.meta.Store(newMetadata(resp, []string{"t"}))
	for _, tc := range []struct {
		partition int32
		rack      string
		want      int32
		why       string
	}{
		{0, "b", 2, "the lowest in-sync replica id in rack b"},
		{0, "a", 1, "the leader is in the rack"},
		{0, "", 1, "no rack"},
		{0, "d", 1, "no replica in the rack"},
		{1, "b", 1, "broker 2 is not in sync"},
		{1, "c", 3, "broker 3 is in sync"},
		{2, "c", 3, "a follower in the rack"},
		{3, "b", noLeader, "no leader"},
	} {
		got, _ := c.readReplicaOf("t", tc.partition, tc.rack)
		if got != tc.want {
			t.Errorf("partition %d, rack %q: broker %d, want %d (%s)", tc.partition, tc.rack, got, tc.want, tc.why)
		}
	}
	// The epoch a watched call compares is the leader's.
	if _, epoch := c.readReplicaOf("t", 0, "b"); epoch != 3 {
		t.Errorf("epoch %d, want the leader's 3", epoch)
	}
}
