package sharegroup

import (
	"slices"
	"strings"

	"github.com/strata-broker/strata/metastore"
)

// Subscription is a member's subscribed topics, as the assignor sees it.
type Subscription struct {
	MemberID string
	Topics   []string
}

// Assign is the simple share assignor: every partition of a subscribed
// topic goes to at least one member subscribed to it. When a topic has at
// least as many partitions as subscribers, each partition goes to exactly
// one of them, to the one with the fewest partitions so far (by member id
// on a tie), so that members end up balanced across topics; when it has
// fewer, each subscriber gets one partition of it and each partition is
// shared by ⌊n/p⌋ or ⌈n/p⌉ members. The result depends only on its input.
// partitions gives each existing topic's partition count; subscribed
// topics missing from it are skipped.
func Assign(subs []Subscription, partitions map[string]int32) map[string][]metastore.TopicPartition {
	subs = slices.Clone(subs)
	slices.SortFunc(subs, func(a, b Subscription) int { return strings.Compare(a.MemberID, b.MemberID) })
	byTopic := map[string][]string{}
	for _, s := range subs {
		for _, t := range s.Topics {
			if _, ok := partitions[t]; ok && !slices.Contains(byTopic[t], s.MemberID) {
				byTopic[t] = append(byTopic[t], s.MemberID)
			}
		}
	}
	topics := make([]string, 0, len(byTopic))
	for t := range byTopic {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	out := make(map[string][]metastore.TopicPartition, len(subs))
	load := make(map[string]int, len(subs))
	for _, t := range topics {
		members, n := byTopic[t], int(partitions[t])
		if n <= 0 {
			continue
		}
		if len(members) > n {
			for i, m := range members {
				out[m] = append(out[m], metastore.TopicPartition{Topic: t, Partition: int32(i % n)})
				load[m]++
			}
			continue
		}
		for p := range n {
			best := members[0]
			for _, m := range members[1:] {
				if load[m] < load[best] {
					best = m
				}
			}
			out[best] = append(out[best], metastore.TopicPartition{Topic: t, Partition: int32(p)})
			load[best]++
		}
	}
	return out
}
