package kafkatests_test

import (
	"bufio"
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/testenv"
)

// franzGoRecords is KGO_TEST_RECORDS for TestFranzGoSuite: the suite's
// default is 500,000, which takes minutes on two cores; the same code paths
// run with fewer. STRATA_FRANZ_RECORDS overrides it.
const franzGoRecords = "50000"

// franzGoExpectedSkips are the broker-touching franz-go tests that skip
// themselves against Strata, with the reason. Any other skip fails
// TestFranzGoSuite.
var franzGoExpectedSkips = map[string]string{
	// It checks that a client pinned to Kafka 0.10 is refused by a broker
	// that no longer offers Produce v0-2, as Kafka 4 does. Strata still
	// offers them because librdkafka turns compression on only when it
	// sees Produce v0 offered; their message sets v0/v1 are answered
	// UNSUPPORTED_FOR_MESSAGE_FORMAT per partition.
	"TestIssueProduceBrokerTooOldFailsRecords": "broker still takes produce v2",
}

// brokerHelpers are the identifiers through which a test in franz-go's
// kgo package reaches a broker: a test whose body names one of them talks
// to the broker under KGO_SEEDS (or the SASL seeds).
var brokerHelpers = map[string]bool{
	"newTestClient": true, "adm": true, "testClientOpts": true, "getSeedBrokers": true,
	"tmpTopic": true, "tmpTopicPartitions": true, "tmpGroup": true, "tmpShareGroup": true,
	"scramSeeds": true, "oauthSeeds": true,
}

// franzGoBrokerTests lists the top-level tests of the kgo package in dir
// that talk to a broker, read from its test files, so a newer franz-go's
// new tests are run without editing a list here.
func franzGoBrokerTests(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("franz-go's kgo tests in %s: %v", dir, err)
	}
	var names []string
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || fn.Body == nil || !strings.HasPrefix(fn.Name.Name, "Test") {
				continue
			}
			touches := false
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				if id, ok := n.(*ast.Ident); ok && brokerHelpers[id.Name] {
					touches = true
				}
				return !touches
			})
			if touches {
				names = append(names, fn.Name.Name)
			}
		}
	}
	slices.Sort(names)
	return names
}

// TestFranzGoSuite runs every test of franz-go's kgo package that talks to
// a broker (its integration suite, from the module's own test files)
// against Strata: a three-broker cluster for KGO_SEEDS (RF=3 topics,
// transactions, classic, KIP-848 and share groups), a SCRAM listener and an
// OAUTHBEARER listener (Kafka's unsecured token mode: the test signs no
// tokens) for the SASL tests. Every test must pass, none may skip except
// franzGoExpectedSkips, and no subtest may skip.
func TestFranzGoSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs franz-go's integration tests against a three-broker cluster")
	}
	modDir := goModuleDir(t, "github.com/twmb/franz-go")
	tests := franzGoBrokerTests(t, filepath.Join(modDir, "pkg", "kgo"))
	if len(tests) < 30 {
		t.Fatalf("found only %d broker tests in franz-go's kgo package: %v", len(tests), tests)
	}

	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3,
		BrokerSettings: map[string]string{"auto.create.topics.enable": "false"}})
	scramDev := startSASLDev(t)
	oauthDev := testenv.StartDev(t, testenv.DevOptions{KafkaProtocol: "SASL_PLAINTEXT", ExtraArgs: []string{
		"--config", "sasl.enabled.mechanisms=OAUTHBEARER",
		"--config", "sasl.oauthbearer.unsecured.validation.enable=true",
	}})

	records := franzGoRecords
	if v := os.Getenv("STRATA_FRANZ_RECORDS"); v != "" {
		records = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-v", "-timeout", "9m",
		"-run", "^("+strings.Join(tests, "|")+")$", "github.com/twmb/franz-go/pkg/kgo")
	var seeds []string
	for _, b := range c.Brokers() {
		seeds = append(seeds, b.KafkaAddr())
	}
	cmd.Env = append(os.Environ(), "KGO_SEEDS="+strings.Join(seeds, ","), "KGO_TEST_RECORDS="+records,
		"KGO_LOG_LEVEL=none",
		"KGO_TEST_SCRAM_SEEDS="+scramDev.KafkaAddr, "KGO_TEST_SCRAM=alice:alice-secret:512",
		"KGO_TEST_OAUTH_SEEDS="+oauthDev.KafkaAddr)
	start := time.Now()
	out, runErr := cmd.CombinedOutput()
	results := franzGoResults(string(out))

	var passed, skipped []string
	var problems []string
	for _, name := range tests {
		switch res := results[name]; {
		case res.outcome == "PASS":
			passed = append(passed, name)
		case res.outcome == "SKIP" && franzGoExpectedSkips[name] != "" && strings.Contains(res.log, franzGoExpectedSkips[name]):
			skipped = append(skipped, name)
		case res.outcome == "":
			problems = append(problems, name+" did not finish")
		default:
			problems = append(problems, name+" "+res.outcome+": "+firstLine(res.log))
		}
	}
	for _, sub := range subtestSkips(string(out)) {
		problems = append(problems, "subtest skipped: "+sub)
	}
	if len(problems) > 0 || runErr != nil {
		report := tail(string(out), 200)
		if i := strings.Index(string(out), "panic: test timed out"); i >= 0 {
			// The goroutine dump that follows would hide which tests hung.
			lines := strings.SplitN(string(out[i:]), "\n", 30)
			report = strings.Join(lines[:len(lines)-1], "\n")
		}
		t.Fatalf("franz-go's suite (%v): %d passed, %d skipped of %d; %v\n%s",
			runErr, len(passed), len(skipped), len(tests), problems, report)
	}
	t.Logf("franz-go's kgo broker tests: %d passed, %d skipped (%v) of %d, in %v",
		len(passed), len(skipped), skipped, len(tests), time.Since(start).Round(time.Second))
}

type franzGoResult struct{ outcome, log string }

var (
	topResult = regexp.MustCompile(`^--- (PASS|FAIL|SKIP): (\S+) `)
	subSkip   = regexp.MustCompile(`^\s+--- SKIP: (\S+) `)
	running   = regexp.MustCompile(`^=== (?:RUN|CONT|PAUSE|NAME)\s+([^/\s]+)`)
	logLine   = regexp.MustCompile(`^\s+\S+\.go:\d+: (.*)$`)
)

// franzGoResults reads go test -v output: each top-level test's outcome
// and the lines it logged (go test -v names the test that runs before its
// lines; parallel tests interleave, each under its own === CONT line).
func franzGoResults(out string) map[string]franzGoResult {
	results := map[string]franzGoResult{}
	var current string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := running.FindStringSubmatch(line); m != nil {
			current = m[1]
			continue
		}
		if m := topResult.FindStringSubmatch(line); m != nil {
			r := results[m[2]]
			r.outcome = m[1]
			results[m[2]] = r
			continue
		}
		if m := logLine.FindStringSubmatch(line); m != nil && current != "" {
			r := results[current]
			r.log += m[1] + "\n"
			results[current] = r
		}
	}
	return results
}

// subtestSkips names the subtests that skipped themselves (a KIP-848 or
// share-group case skips when the broker does not advertise it).
func subtestSkips(out string) []string {
	var subs []string
	for _, line := range strings.Split(out, "\n") {
		if m := subSkip.FindStringSubmatch(line); m != nil {
			subs = append(subs, m[1])
		}
	}
	return subs
}

// goModuleDir is where the go command keeps the module this repository
// requires at path, downloaded if it is not yet.
func goModuleDir(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", path).Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v", path, err)
	}
	var m struct{ Dir string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		t.Fatalf("go list -m %s: %q %v", path, out, err)
	}
	return m.Dir
}

// firstLine is s up to its first newline.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
