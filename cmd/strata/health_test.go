package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/strata-broker/strata/api/client/clienttest"
)

// lines splits output into its lines, without the final newline.
func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// topics describe without a name, its report options and cluster info, as
// a cluster of three loses a leader and then a broker.
func TestDescribeAllAndHealthReports(t *testing.T) {
	cl := clienttest.NewCluster(t, 3)
	bs := "--bootstrap-server=" + cl.Broker(1).Addr
	mustStrata(t, "", "topics", "create", "b", "--partitions", "2", "--replication-factor", "2", bs)
	mustStrata(t, "", "topics", "create", "a", "--partitions", "3", "--replication-factor", "3", "--config", "min.insync.replicas=3", bs)

	var heads []string
	for _, l := range lines(mustStrata(t, "", "topics", "describe", bs)) {
		if strings.HasPrefix(l, "Topic: ") {
			heads = append(heads, strings.Split(l, "\t")[0])
		}
	}
	if !slices.Equal(heads, []string{"Topic: a", "Topic: b"}) {
		t.Errorf("describe without a name: topic lines %q, want a then b", heads)
	}
	for _, report := range []string{"--under-replicated-partitions", "--under-min-isr-partitions", "--unavailable-partitions"} {
		if out := mustStrata(t, "", "topics", "describe", report, bs); out != "" {
			t.Errorf("%s on a healthy cluster: %q", report, out)
		}
	}
	info := mustStrata(t, "", "cluster", "info", bs)
	if want := "Brokers: 3, no racks set\nTopics: 2, partitions: 5, under-replicated: 0, unavailable: 0\n"; !strings.Contains(info, want) || !strings.HasPrefix(info, "Controller: 1 (") {
		t.Errorf("cluster info:\n%s", info)
	}

	cl.SetLeader("a", 1, -1)
	if out, want := mustStrata(t, "", "topics", "describe", "--unavailable-partitions", bs), "\tTopic: a\tPartition: 1\tLeader: none\tReplicas: 2,3,1\tIsr: 2,3,1\n"; out != want {
		t.Errorf("--unavailable-partitions:\n%q\nwant\n%q", out, want)
	}
	// One name narrows the report to that topic.
	if out := mustStrata(t, "", "topics", "describe", "b", "--unavailable-partitions", bs); out != "" {
		t.Errorf("--unavailable-partitions of b: %q", out)
	}
	cl.SetLeader("a", 1, 2)

	// Without broker 3 every partition it held is under-replicated; a's
	// are also under its min.insync.replicas of 3, b's are not under 1.
	cl.RemoveBroker(3)
	under := lines(mustStrata(t, "", "topics", "describe", "--under-replicated-partitions", bs))
	var underA, underB int
	for _, l := range under {
		switch {
		case strings.HasPrefix(l, "\tTopic: a\t"):
			underA++
		case strings.HasPrefix(l, "\tTopic: b\t") && slices.Contains(replicasOf(l), "3"):
			underB++
		default:
			t.Errorf("--under-replicated-partitions: unexpected line %q", l)
		}
	}
	if underA != 3 || underB == 0 {
		t.Errorf("--under-replicated-partitions: %d lines of a (want 3), %d of b (want those on broker 3):\n%s", underA, underB, strings.Join(under, "\n"))
	}
	minISR := lines(mustStrata(t, "", "topics", "describe", "--under-min-isr-partitions", bs))
	if len(minISR) != 3 || !strings.HasPrefix(minISR[0], "\tTopic: a\tPartition: 0\t") {
		t.Errorf("--under-min-isr-partitions:\n%s", strings.Join(minISR, "\n"))
	}
	var dj []topicJSON
	if err := json.Unmarshal([]byte(mustStrata(t, "", "topics", "describe", "--under-min-isr-partitions", "-o", "json", bs)), &dj); err != nil {
		t.Fatal(err)
	}
	if len(dj) != 1 || dj[0].Name != "a" || len(dj[0].Partitions) != 3 {
		t.Errorf("--under-min-isr-partitions -o json: %+v", dj)
	}

	var ci clusterInfoJSON
	if err := json.Unmarshal([]byte(mustStrata(t, "", "cluster", "info", "-o", "json", bs)), &ci); err != nil {
		t.Fatal(err)
	}
	if len(ci.Brokers) != 2 || ci.ControllerID != 1 || ci.Topics != 2 || ci.Partitions != 5 || ci.UnderReplicated != 3+underB || ci.Unavailable != 0 {
		t.Errorf("cluster info -o json after losing broker 3: %+v", ci)
	}

	if code, _, errOut := strata(t, "", "topics", "describe", "--under-replicated-partitions", "--unavailable-partitions", bs); code != 1 || !strings.Contains(errOut, "at most one of") {
		t.Errorf("two report options: exit %d, %q", code, errOut)
	}
}

// replicasOf returns the ids of a describe partition line's Replicas field.
func replicasOf(line string) []string {
	for _, f := range strings.Split(line, "\t") {
		if ids, ok := strings.CutPrefix(f, "Replicas: "); ok {
			return strings.Split(ids, ",")
		}
	}
	return nil
}
