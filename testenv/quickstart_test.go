package testenv_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// TestQuickstartSurvivesKill9 is the README's walk-through: create a
// 3-partition topic, pipe 10,000 lines into `strata produce`, read them back
// with `strata consume --from-beginning`, kill -9 the broker, start it again
// and read the same records at the same offsets.
func TestQuickstartSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts strata processes")
	}
	dev := testenv.StartDev(t, testenv.DevOptions{})
	if out := testenvtest.StrataCLI(t, dev, "", "topics", "create", "lines", "--partitions", "3"); !strings.Contains(out, "Created topic lines.") {
		t.Fatalf("create: %q", out)
	}
	desc := testenvtest.StrataCLI(t, dev, "", "topics", "describe", "lines")
	if !strings.Contains(desc, "PartitionCount: 3") || !strings.Contains(desc, "Partition: 2\tLeader: 1\tReplicas: 1\tIsr: 1") {
		t.Fatalf("describe:\n%s", desc)
	}
	var in strings.Builder
	for i := 1; i <= 10000; i++ {
		fmt.Fprintf(&in, "key-%d:line %d\n", i%97, i)
	}
	testenvtest.StrataCLI(t, dev, in.String(), "produce", "lines", "--key-separator", ":")

	consume := func() []string {
		out := testenvtest.StrataCLI(t, dev, "", "consume", "lines", "--from-beginning", "--max-messages", "10000",
			"--print-partition", "--print-offset", "--print-key")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		sort.Strings(lines)
		return lines
	}
	before := consume()
	if len(before) != 10000 {
		t.Fatalf("consumed %d records, want 10000", len(before))
	}
	values := map[string]bool{}
	for _, l := range before {
		f := strings.Split(l, "\t")
		values[f[len(f)-1]] = true
	}
	if len(values) != 10000 || !values["line 1"] || !values["line 10000"] {
		t.Fatalf("consumed %d distinct values", len(values))
	}

	dev.Kill()
	dev.Restart(t)
	after := consume()
	if strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Fatalf("records differ after kill -9 and restart (first before %q, after %q)", before[0], after[0])
	}
}

// Lines without --key-separator are unkeyed records (null keys) spread over
// the partitions by the sticky partitioner, as kafka-console-producer does,
// not records keyed by the empty string (which would all hash to one partition).
func TestProduceWithoutKeySeparatorIsUnkeyed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts strata processes")
	}
	dev := testenv.StartDev(t, testenv.DevOptions{})
	testenvtest.StrataCLI(t, dev, "", "topics", "create", "plain", "--partitions", "3")
	var in strings.Builder
	for i := 1; i <= 10000; i++ {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	testenvtest.StrataCLI(t, dev, in.String(), "produce", "plain")
	out := testenvtest.StrataCLI(t, dev, "", "consume", "plain", "--from-beginning", "--max-messages", "10000", "--print-partition", "--print-key")
	partitions := map[string]int{}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 3 || f[1] != "null" {
			t.Fatalf("want partition, null key, value; got %q", l)
		}
		partitions[f[0]]++
	}
	if len(partitions) < 2 {
		t.Fatalf("10,000 unkeyed lines all went to %v", partitions)
	}
}
