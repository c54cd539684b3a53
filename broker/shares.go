package broker

// ShareLeader reports the leader epoch and topic id of a partition this
// broker leads, for the share partitions kept on leaders
// (broker/sharepartition): a share partition loaded under another epoch is
// loaded again from the metastore, so a broker that lost and regained the
// leadership does not continue from what it held before. Partitions led
// elsewhere fail as produce does (ErrNotLeader, ErrLeaderNotAvailable).
func (b *Broker) ShareLeader(topic string, partition int32) (leaderEpoch int32, topicID string, err error) {
	p, err := b.hosted.leaderPartition(topic, partition)
	if err != nil {
		return 0, "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.leaderErrLocked(); err != nil {
		return 0, "", err
	}
	return p.leaderEpoch, p.topicID, nil
}

// HostedTopicName returns the name of the topic with id (the canonical
// UUID string) among the topics this broker hosts: ShareFetch names topics
// by id and is sent to the partitions' leaders, which host them.
func (b *Broker) HostedTopicName(id string) (string, bool) {
	b.hosted.mu.RLock()
	defer b.hosted.mu.RUnlock()
	name, ok := b.hosted.byID[id]
	return name, ok
}
