package group

import (
	"testing"
)

func members(subs map[string][]string) []assignMember {
	var out []assignMember
	for _, id := range []string{"a", "b", "c", "d"} {
		if ts, ok := subs[id]; ok {
			m := assignMember{id: id, topics: map[string]bool{}}
			for _, t := range ts {
				m.topics[t] = true
			}
			out = append(out, m)
		}
	}
	return out
}

// checkComplete fails unless every partition of every subscribed topic has
// exactly one owner, and that owner subscribes to it.
func checkComplete(t *testing.T, spec assignSpec, got map[string]assignment) {
	t.Helper()
	owner := map[partitionKey]string{}
	for id, a := range got {
		a.each(func(topic string, p int32) {
			if prev, dup := owner[partitionKey{topic, p}]; dup {
				t.Errorf("%s-%d given to %s and %s", topic, p, prev, id)
			}
			owner[partitionKey{topic, p}] = id
			for _, m := range spec.members {
				if m.id == id && !m.topics[topic] {
					t.Errorf("%s-%d given to %s, which does not subscribe to it", topic, p, id)
				}
			}
		})
	}
	for tid, ti := range spec.topics {
		subscribed := false
		for _, m := range spec.members {
			subscribed = subscribed || m.topics[tid]
		}
		for p := range ti.Partitions {
			if _, ok := owner[partitionKey{tid, p}]; subscribed && !ok {
				t.Errorf("%s-%d given to nobody", tid, p)
			}
		}
	}
}

func TestAssignRange(t *testing.T) {
	spec := assignSpec{
		members: members(map[string][]string{"a": {"t1", "t2"}, "b": {"t1", "t2"}, "c": {"t1"}}),
		topics:  map[string]TopicInfo{"t1": {Name: "x", ID: "t1", Partitions: 7}, "t2": {Name: "y", ID: "t2", Partitions: 3}},
	}
	got := assignRange(spec)
	checkComplete(t, spec, got)
	want := map[string]assignment{
		"a": {"t1": {0, 1, 2}, "t2": {0, 1}},
		"b": {"t1": {3, 4}, "t2": {2}},
		"c": {"t1": {5, 6}},
	}
	for id, a := range want {
		if !got[id].equal(a) {
			t.Errorf("%s got %v, want %v", id, got[id], a)
		}
	}
}

func TestAssignUniformBalancedAndSticky(t *testing.T) {
	topics := map[string]TopicInfo{"t1": {ID: "t1", Partitions: 6}, "t2": {ID: "t2", Partitions: 5}}
	two := assignSpec{members: members(map[string][]string{"a": {"t1", "t2"}, "b": {"t1", "t2"}}), topics: topics}
	first := assignUniform(two)
	checkComplete(t, two, first)
	if na, nb := first["a"].count(), first["b"].count(); na+nb != 11 || na-nb > 1 || nb-na > 1 {
		t.Fatalf("two members got %d and %d of 11 partitions", na, nb)
	}
	// A third member joins: it takes what it needs and the others keep
	// the rest of what they had.
	three := assignSpec{members: members(map[string][]string{"a": {"t1", "t2"}, "b": {"t1", "t2"}, "c": {"t1", "t2"}}),
		topics: topics, prev: first}
	second := assignUniform(three)
	checkComplete(t, three, second)
	moved := 0
	for _, id := range []string{"a", "b"} {
		second[id].each(func(topic string, p int32) {
			if !first[id].has(topic, p) {
				moved++
			}
		})
	}
	if moved != 0 {
		t.Errorf("%d partitions moved between the members that stayed", moved)
	}
	for _, id := range []string{"a", "b", "c"} {
		if n := second[id].count(); n < 3 || n > 4 {
			t.Errorf("%s has %d of 11 partitions over 3 members", id, n)
		}
	}
	// Members that subscribe to different topics get only theirs.
	mixed := assignSpec{members: members(map[string][]string{"a": {"t1"}, "b": {"t2"}, "c": {"t1", "t2"}}), topics: topics, prev: second}
	checkComplete(t, mixed, assignUniform(mixed))
}

func TestAssignNoSubscribers(t *testing.T) {
	spec := assignSpec{members: members(map[string][]string{"a": nil}), topics: map[string]TopicInfo{"t1": {ID: "t1", Partitions: 2}}}
	for _, name := range Assignors() {
		if got := assign(name, spec); got["a"].count() != 0 {
			t.Errorf("%s gave %v to a member without subscriptions", name, got["a"])
		}
	}
}
