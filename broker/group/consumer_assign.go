package group

import (
	"cmp"
	"maps"
	"slices"
)

// The server-side assignors of the consumer group protocol (KIP-848),
// named as Kafka names them in group.consumer.assignors.
const (
	AssignorUniform = "uniform"
	AssignorRange   = "range"
)

// Assignors returns the assignors this coordinator has, the default first.
func Assignors() []string { return []string{AssignorUniform, AssignorRange} }

// TopicInfo is a topic as the assignors see it.
type TopicInfo struct {
	Name string
	// ID is the topic id as a UUID string: assignments are by id, so a
	// topic deleted and created again under its name is another topic.
	ID         string
	Partitions int32
}

// assignment is a member's partitions by topic id, each list sorted.
type assignment map[string][]int32

func (a assignment) clone() assignment {
	out := make(assignment, len(a))
	for t, ps := range a {
		out[t] = slices.Clone(ps)
	}
	return out
}

func (a assignment) count() int {
	n := 0
	for _, ps := range a {
		n += len(ps)
	}
	return n
}

func (a assignment) has(topic string, p int32) bool {
	_, ok := slices.BinarySearch(a[topic], p)
	return ok
}

func (a assignment) add(topic string, p int32) {
	ps := a[topic]
	if i, ok := slices.BinarySearch(ps, p); !ok {
		a[topic] = slices.Insert(ps, i, p)
	}
}

func (a assignment) equal(b assignment) bool {
	if a.count() != b.count() {
		return false
	}
	for t, ps := range a {
		if !slices.Equal(ps, b[t]) {
			return false
		}
	}
	return true
}

// each calls fn with every partition of a, in topic id then partition order.
func (a assignment) each(fn func(topic string, p int32)) {
	for _, t := range slices.Sorted(maps.Keys(a)) {
		for _, p := range a[t] {
			fn(t, p)
		}
	}
}

// assignSpec is an assignor's input: the members with the topics (ids) they
// subscribe to, the topics by id, and the previous target assignment, which
// the uniform assignor keeps where it can so that few partitions move.
type assignSpec struct {
	members []assignMember // sorted by id
	topics  map[string]TopicInfo
	prev    map[string]assignment
}

type assignMember struct {
	id     string
	topics map[string]bool // topic ids
}

// assign runs the named assignor; every member gets an entry.
func assign(name string, spec assignSpec) map[string]assignment {
	if name == AssignorRange {
		return assignRange(spec)
	}
	return assignUniform(spec)
}

// assignRange gives each topic's members (by id order) contiguous ranges of
// its partitions, the first ones one more when they do not divide evenly,
// as the classic range assignor does for each topic.
func assignRange(spec assignSpec) map[string]assignment {
	out := make(map[string]assignment, len(spec.members))
	for _, m := range spec.members {
		out[m.id] = assignment{}
	}
	for _, tid := range slices.Sorted(maps.Keys(spec.topics)) {
		var subs []string
		for _, m := range spec.members {
			if m.topics[tid] {
				subs = append(subs, m.id)
			}
		}
		if len(subs) == 0 {
			continue
		}
		n := spec.topics[tid].Partitions
		per, extra := n/int32(len(subs)), n%int32(len(subs))
		next := int32(0)
		for i, id := range subs {
			take := per
			if int32(i) < extra {
				take++
			}
			for p := next; p < next+take; p++ {
				out[id].add(tid, p)
			}
			next += take
		}
	}
	return out
}

// assignUniform spreads all subscribed partitions evenly over the members
// that subscribe to them, keeping each partition with its previous owner
// while that owner is under its share: a member joining or leaving moves
// only the partitions needed to even out.
func assignUniform(spec assignSpec) map[string]assignment {
	out := make(map[string]assignment, len(spec.members))
	eligible := 0
	total := 0
	for _, tid := range slices.Sorted(maps.Keys(spec.topics)) {
		for _, m := range spec.members {
			if m.topics[tid] {
				total += int(spec.topics[tid].Partitions)
				break
			}
		}
	}
	for _, m := range spec.members {
		out[m.id] = assignment{}
		if len(m.topics) > 0 {
			eligible++
		}
	}
	if eligible == 0 {
		return out
	}
	minQuota, extra := total/eligible, total%eligible
	taken := map[partitionKey]bool{}
	counts := map[string]int{}
	// Keep: previous partitions that still exist and are still subscribed,
	// up to each member's share.
	for _, m := range spec.members {
		spec.prev[m.id].each(func(tid string, p int32) {
			t, ok := spec.topics[tid]
			if !ok || !m.topics[tid] || p >= t.Partitions || taken[partitionKey{tid, p}] {
				return
			}
			switch {
			case counts[m.id] < minQuota:
			case counts[m.id] == minQuota && extra > 0:
				extra--
			default:
				return
			}
			taken[partitionKey{tid, p}] = true
			counts[m.id]++
			out[m.id].add(tid, p)
		})
	}
	// Fill: every other partition goes to the subscriber that has fewest.
	for _, tid := range slices.Sorted(maps.Keys(spec.topics)) {
		var subs []string
		for _, m := range spec.members {
			if m.topics[tid] {
				subs = append(subs, m.id)
			}
		}
		if len(subs) == 0 {
			continue
		}
		for p := range spec.topics[tid].Partitions {
			if taken[partitionKey{tid, p}] {
				continue
			}
			best := slices.MinFunc(subs, func(a, b string) int {
				return cmp.Or(cmp.Compare(counts[a], counts[b]), cmp.Compare(a, b))
			})
			counts[best]++
			out[best].add(tid, p)
		}
	}
	return out
}
