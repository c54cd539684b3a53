package main

import (
	"slices"
	"strings"
	"testing"
)

// `topics list` shows stored topics; Kafka's internal topic, which Kafka
// clients see, only when asked for, and `topics describe` describes it.
func TestTopicsListLeavesTheInternalTopicOutUnlessAsked(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker with embedded etcd")
	}
	bs := "--bootstrap-server=" + startBroker(t)
	mustStrata(t, "", "topics", "create", "events", bs)
	if out := strings.Fields(mustStrata(t, "", "topics", "list", bs)); !slices.Equal(out, []string{"events"}) {
		t.Errorf("list: %q, want only events", out)
	}
	if out := strings.Fields(mustStrata(t, "", "topics", "list", "--include-internal", bs)); !slices.Equal(out, []string{"__consumer_offsets", "events"}) {
		t.Errorf("list --include-internal: %q", out)
	}
	desc := mustStrata(t, "", "topics", "describe", "__consumer_offsets", bs)
	if !strings.HasPrefix(desc, "Topic: __consumer_offsets\t") || !strings.Contains(desc, "PartitionCount: 50") {
		t.Errorf("describe:\n%s", desc)
	}
}
