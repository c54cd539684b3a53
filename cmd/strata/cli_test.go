package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/strata-broker/strata/api/client/clienttest"
	"github.com/strata-broker/strata/testenv"
)

// strata runs the command line with stdin and returns the exit code, stdout
// and stderr.
func strata(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// mustStrata runs the command line and fails the test unless it succeeds.
func mustStrata(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, out, errOut := strata(t, stdin, args...)
	if code != 0 {
		t.Fatalf("strata %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func sortedLines(s string) []string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	slices.Sort(lines)
	return lines
}

// runCLISuite drives the client commands against a server at addr.
func runCLISuite(t *testing.T, addr string) {
	bs := "--bootstrap-server=" + addr

	if out := mustStrata(t, "", "topics", "create", "events", "--partitions", "3", "--config", "retention.ms=3600000", bs); out != "Created topic events.\n" {
		t.Errorf("create: %q", out)
	}
	if code, _, errOut := strata(t, "", "topics", "create", "events", bs); code == 0 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "AlreadyExists") {
		t.Errorf("create twice: exit %d, stderr %q: want one line naming AlreadyExists", code, errOut)
	}
	t.Setenv(bootstrapEnv, addr) // the environment alone finds the broker
	if out := mustStrata(t, "", "topics", "list"); !slices.Contains(strings.Split(out, "\n"), "events") {
		t.Errorf("list: %q", out)
	}
	t.Setenv(bootstrapEnv, "")

	desc := mustStrata(t, "", "topics", "describe", "events", bs)
	lines := strings.Split(strings.TrimSuffix(desc, "\n"), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "Topic: events\tTopicId: ") ||
		!strings.HasSuffix(lines[0], "\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: retention.ms=3600000") ||
		lines[2] != "\tTopic: events\tPartition: 1\tLeader: 1\tReplicas: 1\tIsr: 1" {
		t.Errorf("describe:\n%s", desc)
	}
	var dj topicJSON
	if err := json.Unmarshal([]byte(mustStrata(t, "", "topics", "describe", "events", "-o", "json", "--configs", bs)), &dj); err != nil {
		t.Fatal(err)
	}
	if dj.PartitionCount != 3 || dj.Configs["retention.ms"] != "3600000" || len(dj.AllConfigs) < 2 {
		t.Errorf("describe json: %+v", dj)
	}

	mustStrata(t, "k1:v1\nk2:v2\r\nk3:v3\n", "produce", "events", "--key-separator", ":", bs)
	got := mustStrata(t, "", "consume", "events", "--from-beginning", "--max-messages", "3", "--print-key", "--key-separator", ":", bs)
	if want := []string{"k1:v1", "k2:v2", "k3:v3"}; !slices.Equal(sortedLines(got), want) {
		t.Errorf("consume: %q, want %q in some order", got, want)
	}
	code, out, errOut := strata(t, "", "consume", "events", "--from-beginning", "--exit-at-end", "--print-offset", "--print-partition", bs)
	if code != 0 || strings.Count(out, "\n") != 3 || !strings.Contains(out, "\tOffset:0\tv") || errOut != "Processed a total of 3 messages\n" {
		t.Errorf("consume to the end: exit %d, %q, %q", code, out, errOut)
	}

	code, _, errOut = strata(t, "a:1\nno separator\nb:2\n", "produce", "events", "--key-separator", ":", bs)
	if code != 1 || errOut != "strata: line 2: no key separator \":\" found\n" {
		t.Errorf("line without separator: exit %d, stderr %q", code, errOut)
	}

	// A line far beyond bufio.Scanner's 64 KiB, into one partition.
	long := strings.Repeat("L", 700<<10)
	mustStrata(t, long+"\n", "produce", "events", "--partition", "2", bs)
	out = mustStrata(t, "", "consume", "events", "--partition", "2", "--offset", "earliest", "--exit-at-end", bs)
	if !strings.Contains(out, long+"\n") {
		t.Errorf("the 700 KiB line did not come back whole (%d bytes of output)", len(out))
	}

	if out := mustStrata(t, "", "topics", "alter", "events", "--config", "cleanup.policy=compact", "--delete-config", "retention.ms", bs); out != "Altered topic events.\nConfigs: cleanup.policy=compact\n" {
		t.Errorf("alter: %q", out)
	}

	var pr benchProduceResult
	if err := json.Unmarshal([]byte(mustStrata(t, "", "bench", "produce", "--topic", "bench", "--partitions", "2", "--records", "3000", "--record-size", "100", "-o", "json", bs)), &pr); err != nil {
		t.Fatal(err)
	}
	if pr.Records != 3000 || pr.Errors != 0 || pr.Partitions != 2 || pr.LatencySamples != 3000 || pr.LatencyMs.P50 <= 0 || pr.LatencyMs.P999 < pr.LatencyMs.P50 {
		t.Errorf("bench produce: %+v", pr)
	}
	var cr benchConsumeResult
	if err := json.Unmarshal([]byte(mustStrata(t, "", "bench", "consume", "--topic", "bench", "-o", "json", bs)), &cr); err != nil {
		t.Fatal(err)
	}
	if cr.Records != 3000 || cr.Bytes < 300000 {
		t.Errorf("bench consume: %+v", cr)
	}
	if err := json.Unmarshal([]byte(mustStrata(t, "", "bench", "consume", "--topic", "bench", "--decode", "-o", "json", bs)), &cr); err != nil {
		t.Fatal(err)
	}
	if cr.Records != 3000 || cr.Bytes != 300000 {
		t.Errorf("bench consume --decode: %+v", cr)
	}
	if table := mustStrata(t, "", "bench", "consume", "--topic", "bench", bs); !regexp.MustCompile(`(?m)^records +3000$`).MatchString(table) {
		t.Errorf("bench consume table:\n%s", table)
	}

	// Headers: --header on every record of a produce, --print-headers in
	// Kafka's console consumer format.
	mustStrata(t, "", "topics", "create", "headed", bs)
	mustStrata(t, "v\n", "produce", "headed", "--header", "trace=a=b", "--header", "empty=", bs)
	mustStrata(t, "w\n", "produce", "headed", bs)
	out = mustStrata(t, "", "consume", "headed", "--from-beginning", "--exit-at-end", "--print-offset", "--print-headers", "--print-key", bs)
	if want := "Offset:0\ttrace:a=b,empty:\tnull\tv\nOffset:1\tNO_HEADERS\tnull\tw\n"; out != want {
		t.Errorf("consume --print-headers: %q, want %q", out, want)
	}
	if code, _, errOut := strata(t, "x\n", "produce", "headed", "--header", "novalue", bs); code != 1 || !strings.Contains(errOut, `--header "novalue": want KEY=VALUE`) {
		t.Errorf("--header without =: exit %d, %q", code, errOut)
	}

	mustStrata(t, "", "topics", "delete", "events", bs)
	code, _, errOut = strata(t, "", "topics", "describe", "events", bs)
	if code != 1 || !strings.HasPrefix(errOut, "strata: ") || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "NotFound") {
		t.Errorf("describe deleted: exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := strata(t, "x\n", "produce", "events", bs); code != 1 {
		t.Errorf("produce to a deleted topic: exit %d", code)
	}
}

func TestCLIAgainstClienttest(t *testing.T) {
	runCLISuite(t, clienttest.NewServer(t).Addr)
}

func TestCLIAgainstBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker with embedded etcd")
	}
	runCLISuite(t, startBroker(t))
}

// startBroker runs a broker in-process and returns its gRPC address.
func startBroker(t *testing.T) string { return testenv.StartInProcess(t, nil) }

// An unknown flag is a one-line error with a pointer to the help.
func TestUsageErrorIsOneLine(t *testing.T) {
	code, _, errOut := strata(t, "", "consume", "t", "--no-such-flag")
	if code != 1 || errOut != "strata: unknown flag: --no-such-flag (see 'strata consume --help')\n" {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}
