package main

import (
	"strings"
	"testing"
)

func TestTopicsAlterPartitions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker with embedded etcd")
	}
	bs := "--bootstrap-server=" + startBroker(t)
	mustStrata(t, "", "topics", "create", "grow", bs)
	if out := mustStrata(t, "", "topics", "alter", "grow", "--partitions", "3", bs); out != "Altered topic grow.\nPartitionCount: 3\n" {
		t.Errorf("alter --partitions: %q", out)
	}
	if desc := mustStrata(t, "", "topics", "describe", "grow", bs); !strings.Contains(desc, "\tPartitionCount: 3\t") || !strings.Contains(desc, "\tPartition: 2\tLeader: 1\t") {
		t.Errorf("describe after growing:\n%s", desc)
	}
	// The new partition takes records.
	mustStrata(t, "new\n", "produce", "grow", "--partition", "2", bs)
	if out := mustStrata(t, "", "consume", "grow", "--partition", "2", "--offset", "earliest", "--exit-at-end", bs); out != "new\n" {
		t.Errorf("consume the new partition: %q", out)
	}
	// Both at once: configs first (they can be set back), then partitions;
	// a refused config grows nothing.
	if code, _, errOut := strata(t, "", "topics", "alter", "grow", "--partitions", "5", "--config", "retention.ms=banana", bs); code != 1 || !strings.Contains(errOut, "retention.ms") {
		t.Errorf("alter with a bad config: exit %d, %q", code, errOut)
	}
	if desc := mustStrata(t, "", "topics", "describe", "grow", bs); !strings.Contains(desc, "\tPartitionCount: 3\t") {
		t.Errorf("a refused config grew the topic:\n%s", desc)
	}
	if out := mustStrata(t, "", "topics", "alter", "grow", "--partitions", "4", "--config", "retention.ms=60000", bs); out != "Altered topic grow.\nConfigs: retention.ms=60000\nPartitionCount: 4\n" {
		t.Errorf("alter --partitions --config: %q", out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"grow", "--partitions", "2"}, "higher than the requested 2"},
		{[]string{"grow", "--partitions", "4"}, "already has 4 partitions"},
		{[]string{"grow", "--partitions", "0"}, "at least 1"},
		{[]string{"nosuch", "--partitions", "2"}, "nosuch"},
		{[]string{"grow"}, "nothing to alter"},
	} {
		code, _, errOut := strata(t, "", append([]string{"topics", "alter", bs}, c.args...)...)
		if code != 1 || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("alter %v: exit %d, %q: want one line containing %q", c.args, code, errOut, c.want)
		}
	}
}
