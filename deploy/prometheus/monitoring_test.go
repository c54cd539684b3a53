// Package prometheus holds the alerting rules for Prometheus; its test
// checks them, and the Grafana dashboard beside it, against the metrics
// the broker defines.
package prometheus

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
)

const (
	rulesFile     = "strata-alerts.yml"
	dashboardFile = "../grafana/strata.json"
)

// The rules file is what `promtool check rules` checks: it parses, with
// no unknown fields, every expression is valid PromQL, every template
// expands, and no rule name repeats in a group.
func TestRulesAreValid(t *testing.T) {
	groups, errs := parseRules()
	if len(errs) > 0 {
		t.Fatalf("%s: %v", rulesFile, errs)
	}
	n := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" {
				t.Errorf("group %s: a rule without an alert name (recording rules belong elsewhere)", g.Name)
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %s: want a severity label and a summary annotation", r.Alert)
			}
		}
	}
	if n == 0 {
		t.Fatal("no rules")
	}
}

// Every metric a rule or a panel queries is one the broker defines (or
// Prometheus's own up): a renamed metric must not leave an alert that can
// never fire or a panel that shows no data.
func TestQueriedMetricsExist(t *testing.T) {
	defined := definedMetrics(t)
	for where, expr := range queries(t) {
		for _, name := range metricNames(t, expr) {
			if name == "up" {
				continue
			}
			base := name
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, s); ok && defined[b] {
					base = b
				}
			}
			if !defined[base] {
				t.Errorf("%s queries %s, which no broker code defines", where, name)
			}
		}
	}
}

// The dashboard covers what an operator looks at first, and Grafana can
// load it: unique panel ids and a query in every panel that is not a row.
func TestDashboardPanels(t *testing.T) {
	d := readDashboard(t)
	ids := map[int]bool{}
	var rows []string
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d repeats", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			rows = append(rows, p.Title)
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
	}
	for _, want := range []string{"Throughput", "Latency", "Replication", "Tiering", "Consumer lag", "Log cleaner"} {
		if !slices.Contains(rows, want) {
			t.Errorf("no %q row; rows: %v", want, rows)
		}
	}
}

// The under-replicated alert's expression fires on what the brokers
// report while a follower is out of the ISR, from one partition on, and
// not before or after; another job's series do not count.
func TestUnderReplicatedAlertFires(t *testing.T) {
	expr := alertExpr(t, "StrataUnderReplicatedPartitions")
	promqltest.RunTest(t, fmt.Sprintf(`
load 1m
  strata_under_replicated_partitions{job="strata",instance="b1"} 0 0 1 2 0
  strata_under_replicated_partitions{job="strata",instance="b2"} 0 0 0 1 0
  strata_under_replicated_partitions{job="other",instance="x"}   5 5 5 5 5

eval instant at 1m %[1]s

eval instant at 2m %[1]s
  {} 1

eval instant at 3m %[1]s
  {} 3

eval instant at 4m %[1]s
`, expr), promqltest.NewTestEngine(t, false, 5*time.Minute, promqltest.DefaultMaxSamplesPerQuery))
}

// parseRules parses and checks the rules file as promtool check rules does.
func parseRules() (*rulefmt.RuleGroups, []error) {
	return rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
}

func alertExpr(t *testing.T, alert string) string {
	t.Helper()
	groups, errs := parseRules()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == alert {
				return r.Expr
			}
		}
	}
	t.Fatalf("no alert %s in %s", alert, rulesFile)
	return ""
}

type dashboard struct {
	Panels []struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// queries returns every PromQL expression of the rules and the
// dashboard, keyed by where it is.
func queries(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	groups, errs := parseRules()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			out["alert "+r.Alert] = r.Expr
		}
	}
	for _, p := range readDashboard(t).Panels {
		for i, q := range p.Targets {
			expr, err := grafanaExpr(q.Expr)
			if err != nil {
				t.Fatalf("panel %q query %d: %v", p.Title, i, err)
			}
			out[fmt.Sprintf("panel %q query %d", p.Title, i)] = expr
		}
	}
	if len(out) == 0 {
		t.Fatal("no queries")
	}
	return out
}

func metricNames(t *testing.T, expr string) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	if len(names) == 0 {
		t.Fatalf("%s names no metric", expr)
	}
	return names
}

var metricLiteral = regexp.MustCompile(`"(strata_[a-z0-9_]+)"`)

// definedMetrics collects the metric names the module's Go code (tests
// left out) spells as string literals: every metric is made with its name
// written out once.
func definedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	root := filepath.Join("..", "..")
	out := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "deploy") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range metricLiteral.FindAllSubmatch(b, -1) {
			out[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !out["strata_produce_bytes_total"] {
		t.Fatalf("found %d metric names under %s, not strata_produce_bytes_total: the walk is looking in the wrong place", len(out), root)
	}
	return out
}
