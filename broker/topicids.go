package broker

// EachTopicID calls f with the name and id of every topic this broker
// follows, so that a frontend can find topics named by id (Fetch v13+). A
// topic deleted and created again has a new id, so the old one names
// nothing. f must not call back into the broker.
func (b *Broker) EachTopicID(f func(name, id string)) {
	stored := false
	b.hosted.mu.RLock()
	for name, t := range b.hosted.topics {
		f(name, t.meta.ID)
		stored = stored || name == OffsetsTopic
	}
	b.hosted.mu.RUnlock()
	if !stored {
		b.eachVirtualTopicID(f)
	}
}

// TopicByID is the name of the topic with id (its UUID string) among those
// this broker follows, the internal topic included: one map lookup, for
// requests that name topics by id.
func (b *Broker) TopicByID(id string) (string, bool) {
	b.hosted.mu.RLock()
	name, ok := b.hosted.byID[id]
	b.hosted.mu.RUnlock()
	if ok {
		return name, true
	}
	found := ""
	b.eachVirtualTopicID(func(n, vid string) {
		if vid == id {
			found = n
		}
	})
	return found, found != ""
}
