package group

import (
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"testing"
)

// Members that subscribe alike share one resolution of their subscription
// (a regular expression is matched against every topic once per group
// refresh, not once per member: the refresh holds the coordinator), and
// subscriptions that only look alike when joined stay apart.
func TestSubscriptionsResolvedOncePerDistinctSubscription(t *testing.T) {
	var topics []TopicInfo
	for i := range 50 {
		topics = append(topics, TopicInfo{Name: fmt.Sprintf("t%d", i), ID: fmt.Sprintf("id%d", i), Partitions: 1})
	}
	topics = append(topics, TopicInfo{Name: "a", ID: "id-a", Partitions: 1}, TopicInfo{Name: "b", ID: "id-b", Partitions: 1})
	c := New(nil, Config{Topics: func() []TopicInfo { return topics }})
	cg := newConsumerGroup()
	re := regexp.MustCompile("^(?:t.*)$")
	for i := range 20 {
		id := fmt.Sprintf("m%d", i)
		cg.members[id] = &consumerMember{id: id, regex: "t.*", compiled: re}
	}
	// Joined naively, "a" + ["b"] and "a,b" + [] could name one key.
	cg.members["x"] = &consumerMember{id: "x", subscribed: []string{"a", "b"}}
	cg.members["y"] = &consumerMember{id: "y", regex: "a\x00b", compiled: regexp.MustCompile("^(?:a\x00b)$"), subscribed: []string{}}
	cg.members["z"] = &consumerMember{id: "z", regex: "a", compiled: regexp.MustCompile("^(?:a)$"), subscribed: []string{"b"}}

	subs, used, _ := c.subscriptionLocked(cg)
	first := reflect.ValueOf(subs["m0"]).UnsafePointer()
	for i := range 20 {
		if reflect.ValueOf(subs[fmt.Sprintf("m%d", i)]).UnsafePointer() != first {
			t.Fatalf("member m%d's subscription was resolved again", i)
		}
	}
	if len(subs["m0"]) != 50 || len(used) != 52 {
		t.Fatalf("regex resolved to %d topics (used %d), want 50 (52)", len(subs["m0"]), len(used))
	}
	for id, want := range map[string][]string{"x": {"id-a", "id-b"}, "y": nil, "z": {"id-a", "id-b"}} {
		if got := slices.Sorted(maps.Keys(subs[id])); !slices.Equal(got, want) {
			t.Fatalf("member %s subscribes to %v, want %v", id, got, want)
		}
	}
}
