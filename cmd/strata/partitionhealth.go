package main

import stratav1 "github.com/strata-broker/strata/api/strata/v1"

// Partition health as Kafka's kafka-topics.sh --describe filters judge it.

// underReplicated: fewer replicas in sync than assigned.
func underReplicated(p *stratav1.PartitionInfo) bool {
	return len(p.GetIsr()) < len(p.GetReplicas())
}

// underMinISR: fewer replicas in sync than min.insync.replicas, so
// acks=all produce requests are refused.
func underMinISR(p *stratav1.PartitionInfo, minISR int) bool {
	return len(p.GetIsr()) < minISR
}

// unavailable: no leader, or a leader that is not a live broker.
func unavailable(p *stratav1.PartitionInfo, live map[int32]bool) bool {
	return p.GetLeader() < 0 || !live[p.GetLeader()]
}

// liveBrokers returns the node ids of the brokers in md.
func liveBrokers(md *stratav1.MetadataResponse) map[int32]bool {
	live := make(map[int32]bool, len(md.GetBrokers()))
	for _, b := range md.GetBrokers() {
		live[b.GetNodeId()] = true
	}
	return live
}
