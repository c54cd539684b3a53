package main

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/api/client"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
)

// describeRow returns the describe table's row of a partition, split into
// its columns.
func describeRow(t *testing.T, out, topic, partition string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 9 && f[1] == topic && f[2] == partition {
			return f
		}
	}
	t.Fatalf("no row for %s-%s in:\n%s", topic, partition, out)
	return nil
}

func TestGroupsCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker with embedded etcd")
	}
	addr := testenv.StartInProcess(t, map[string]string{"group.initial.rebalance.delay.ms": "0"})
	bs := "--bootstrap-server=" + addr
	mustStrata(t, "", "topics", "create", "t1", bs)
	mustStrata(t, "v0\nv1\nv2\nv3\nv4\nv5\nv6\nv7\nv8\nv9\n", "produce", "t1", bs)

	// consume --group commits what it printed and the next one resumes.
	if out := mustStrata(t, "", "consume", "t1", "--group", "g", "--from-beginning", "--max-messages", "4", bs); out != "v0\nv1\nv2\nv3\n" {
		t.Fatalf("first consume: %q", out)
	}
	desc := mustStrata(t, "", "groups", "describe", "g", bs)
	if !strings.HasPrefix(desc, "Consumer group 'g' has no active members.\n\nGROUP ") {
		t.Errorf("describe:\n%s", desc)
	}
	if row := describeRow(t, desc, "t1", "0"); strings.Join(row, " ") != "g t1 0 4 10 6 - - -" {
		t.Errorf("describe row %q", row)
	}
	if out := mustStrata(t, "", "consume", "t1", "--group", "g", "--max-messages", "6", "--commit-interval", "0", bs); out != "v4\nv5\nv6\nv7\nv8\nv9\n" {
		t.Fatalf("second consume: %q", out)
	}
	var dj groupJSON
	if err := json.Unmarshal([]byte(mustStrata(t, "", "groups", "describe", "g", "-o", "json", bs)), &dj); err != nil {
		t.Fatal(err)
	}
	if len(dj.Partitions) != 1 || dj.Partitions[0].CurrentOffset != 10 || dj.Partitions[0].Lag != 0 {
		t.Errorf("describe json: %+v", dj)
	}
	if out := mustStrata(t, "", "groups", "list", bs); out != "g\n" {
		t.Errorf("list: %q", out)
	}

	// With an active member: refused; describe names the member.
	c, err := client.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	gc, err := client.NewGroupConsumer(c, client.GroupConsumerOptions{Group: "g", Topic: "t1", ClientID: "tester"})
	if err != nil {
		t.Fatal(err)
	}
	await.True(t, 30*time.Second, "the member to get an assignment", func() bool { return len(gc.Assignment().Partitions) == 1 })
	row := describeRow(t, mustStrata(t, "", "groups", "describe", "g", bs), "t1", "0")
	if row[6] != gc.Assignment().MemberID || row[7] != "127.0.0.1" || row[8] != "tester" {
		t.Errorf("describe with a member: %q", row)
	}
	code, _, errOut := strata(t, "", "groups", "reset-offsets", "g", "--topic", "t1", "--to-earliest", "--execute", bs)
	if code != 1 || !strings.Contains(errOut, "inactive") || !strings.Contains(errOut, "NON_EMPTY_GROUP") && !strings.Contains(errOut, "FailedPrecondition") {
		t.Errorf("reset with a member: exit %d, %q", code, errOut)
	}
	if code, _, _ := strata(t, "", "groups", "delete", "g", bs); code != 1 {
		t.Errorf("delete with a member: exit %d", code)
	}
	if err := gc.Close(); err != nil {
		t.Fatal(err)
	}

	// Without members: reset works (and --to-offset is clamped).
	if out := mustStrata(t, "", "groups", "reset-offsets", "g", "--topic", "t1", "--to-offset", "99", "--execute", bs); !strings.Contains(out, "NEW-OFFSET") || describeRow9(out) != "10" {
		t.Errorf("reset --to-offset: %q", out)
	}
	mustStrata(t, "", "groups", "reset-offsets", "g", "--topic", "t1", "--to-datetime", "2000-01-01T00:00:00.000", "--execute", bs)
	if row := describeRow(t, mustStrata(t, "", "groups", "describe", "g", bs), "t1", "0"); row[3] != "0" || row[5] != "10" {
		t.Errorf("after reset --to-datetime: %q", row)
	}

	// Without --execute, a preview: the plan is printed, nothing changes.
	code, out, errOut := strata(t, "", "groups", "reset-offsets", "g", "--topic", "t1", "--to-latest", bs)
	if code != 0 || describeRow9(out) != "10" || !strings.Contains(errOut, "--execute") {
		t.Errorf("preview: exit %d, %q, %q", code, out, errOut)
	}
	if code, out, errOut := strata(t, "", "groups", "reset-offsets", "g", "--topic", "t1", "--to-latest", "--dry-run", bs); code != 0 || describeRow9(out) != "10" || errOut != "" {
		t.Errorf("--dry-run: exit %d, %q, %q", code, out, errOut)
	}
	committed := func() string {
		t.Helper()
		return describeRow(t, mustStrata(t, "", "groups", "describe", "g", bs), "t1", "0")[3]
	}
	if got := committed(); got != "0" {
		t.Fatalf("a preview changed the committed offset to %s", got)
	}
	// Each target with --execute, the committed offset after it.
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"--all-topics", "--to-latest"}, "10"},
		{[]string{"--topic", "t1", "--shift-by", "-3"}, "7"},
		{[]string{"--all-topics", "--to-current"}, "7"},
		{[]string{"--topic", "t1", "--shift-by", "100"}, "10"}, // clamped to the log end
		{[]string{"--topic", "t1", "--by-duration", "P1D"}, "0"},
		{[]string{"--topic", "t1", "--partitions", "0", "--shift-by=-100"}, "0"}, // clamped to the log start
	} {
		args := append([]string{"groups", "reset-offsets", "g", "--execute", bs}, step.args...)
		if out := mustStrata(t, "", args...); describeRow9(out) != step.want {
			t.Errorf("%v: printed %q, want new offset %s", step.args, out, step.want)
		}
		if got := committed(); got != step.want {
			t.Errorf("%v: committed offset %s, want %s", step.args, got, step.want)
		}
	}
	if code, _, errOut := strata(t, "", "groups", "reset-offsets", "nobody", "--all-topics", "--to-latest", bs); code != 1 || !strings.Contains(errOut, "no committed offsets") {
		t.Errorf("--all-topics of a group without offsets: exit %d, %q", code, errOut)
	}
	if code, _, errOut := strata(t, "", "groups", "reset-offsets", "nobody", "--topic", "t1", "--shift-by", "1", bs); code != 1 || !strings.Contains(errOut, "no committed offset") {
		t.Errorf("--shift-by without a committed offset: exit %d, %q", code, errOut)
	}
	if code, _, errOut := strata(t, "", "groups", "reset-offsets", "g", "--topic", "t1", "--to-earliest", "--to-latest", bs); code != 1 || !strings.Contains(errOut, "exactly one") {
		t.Errorf("two targets: exit %d, %q", code, errOut)
	}
	if out := mustStrata(t, "", "groups", "delete", "g", bs); out != "Deletion of requested consumer groups ('g') was successful.\n" {
		t.Errorf("delete: %q", out)
	}
	if out := mustStrata(t, "", "groups", "list", bs); out != "" {
		t.Errorf("list after delete: %q", out)
	}
	if code, _, errOut := strata(t, "", "groups", "describe", "g", bs); code != 1 || !strings.Contains(errOut, "does not exist") {
		t.Errorf("describe deleted: exit %d, %q", code, errOut)
	}
}

// describeRow9 returns the NEW-OFFSET of the reset table's first row.
func describeRow9(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 {
		return ""
	}
	f := strings.Fields(lines[1])
	return f[len(f)-1]
}

func TestConsumeGroupFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--group", "g", "--partition", "0"},
		{"--group", "g", "--exit-at-end"},
		{"--group", "g", "--commit-interval", "-1s"},
	} {
		code, _, errOut := strata(t, "", append([]string{"consume", "t", "--bootstrap-server=127.0.0.1:1"}, args...)...)
		if code != 1 || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, %q", args, code, errOut)
		}
	}
}

func TestResetOffsetsFlagErrors(t *testing.T) {
	bs := "--bootstrap-server=127.0.0.1:1" // never dialled: the flags are refused first
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--to-earliest"}, "exactly one of --topic, --all-topics"},
		{[]string{"--topic", "t", "--all-topics", "--to-earliest"}, "exactly one of --topic, --all-topics"},
		{[]string{"--all-topics", "--partitions", "0", "--to-earliest"}, "--partitions goes with --topic"},
		{[]string{"--topic", "t"}, "exactly one of --to-earliest"},
		{[]string{"--topic", "t", "--to-current", "--shift-by", "1"}, "exactly one of --to-earliest"},
		{[]string{"--topic", "t", "--to-latest", "--dry-run", "--execute"}, "at most one of --dry-run, --execute"},
		{[]string{"--topic", "t", "--to-offset", "-1"}, "must not be negative"},
	} {
		code, _, errOut := strata(t, "", append([]string{"groups", "reset-offsets", "g", bs}, c.args...)...)
		if code != 1 || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, %q: want one line containing %q", c.args, code, errOut, c.want)
		}
	}
}

func TestParseByDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"P7D":       7 * 24 * time.Hour,
		"PT1H30M":   90 * time.Minute,
		"P1DT12H":   36 * time.Hour,
		"pt0.5s":    500 * time.Millisecond,
		"PT2M3.25S": 2*time.Minute + 3250*time.Millisecond,
		"90m":       90 * time.Minute,
	} {
		if got, err := parseByDuration(in); err != nil || got != want {
			t.Errorf("parseByDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "P", "PT", "P1DT", "7D", "-1h", "P1W", "PT1.S"} {
		if d, err := parseByDuration(in); err == nil {
			t.Errorf("parseByDuration(%q) = %v, want an error", in, d)
		}
	}
}

// A shift far past either end lands on that end, never wrapping round to
// the other: --shift-by 9223372036854775807 means the latest offset.
func TestSaturatingShift(t *testing.T) {
	for _, c := range []struct{ a, b, want int64 }{
		{5, 3, 8},
		{5, -8, -3},
		{5, math.MaxInt64, math.MaxInt64},
		{-5, math.MinInt64, math.MinInt64},
		{math.MaxInt64, 1, math.MaxInt64},
	} {
		if got := saturatingAdd(c.a, c.b); got != c.want {
			t.Errorf("saturatingAdd(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
