package prometheus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
)

// scrapeInterval is the spacing of the synthetic timestamps the scrapes
// are stored at: Prometheus's usual 30 s, so that a rate over one minute
// has two samples and an alert's one-minute `for` is met by the third
// evaluation.
const scrapeInterval = 30 * time.Second

// What an operator sees on a real cluster, through the panels and alerts
// exactly as deploy/ writes them: a healthy three-broker cluster shows
// healthy values on the dashboard and raises no alert; after a broker is
// killed, the under-replicated alert goes pending, then fires once its
// `for` has passed, and so does the broker-down alert for the instance
// whose scrape fails. The brokers' /metrics are scraped for real and parsed
// with Prometheus's own text parser; only the timestamps are made up, so
// that minutes of alert history take seconds.
func TestDashboardAndAlertsOnALiveCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	const (
		topic      = "dashboard"
		partitions = 3
	)
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	var seeds []string
	for _, b := range c.Brokers() {
		seeds = append(seeds, b.KafkaAddr())
	}
	kc, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	resp, err := kadm.NewClient(kc).CreateTopic(ctx, partitions, 3, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	produce := func(n int) {
		t.Helper()
		rs := make([]*kgo.Record, n)
		for i := range rs {
			rs[i] = kgo.StringRecord(fmt.Sprintf("record %d", i))
		}
		if err := kc.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	produce(30)
	await.NoError(t, 30*time.Second, "a leader for every partition", func() error {
		if got := sumOver(t, c.Brokers(), "strata_leader_partitions"); got != partitions {
			return fmt.Errorf("the brokers lead %v partitions, want %d", got, partitions)
		}
		return nil
	})

	// Healthy: two scrapes of every broker, records produced between them.
	t0 := time.Now().Truncate(time.Second)
	healthy := teststorage.New(t)
	load(t, healthy, c.Brokers(), nil, t0)
	produce(30)
	load(t, healthy, c.Brokers(), nil, t0.Add(scrapeInterval))
	now := t0.Add(scrapeInterval)
	engine := newEngine()
	panels := evalPanels(t, engine, healthy, now)
	var empty []string
	for title, v := range panels {
		if len(v) == 0 {
			empty = append(empty, title)
		}
	}
	slices.Sort(empty)
	// Tiering, consumer groups and the cleaner have nothing to show on
	// this cluster: their queries ran, which is what can be checked here.
	t.Logf("panels with no data on a cluster without tiering, groups or compacted topics: %q", empty)
	for title, want := range map[string]float64{
		"Brokers up":                  3,
		"Under-replicated partitions": 0,
		"Under min ISR":               0,
		"Offline partitions":          0,
		"Active controllers":          1,
		"Builds":                      3, // one series: every broker runs the same build
	} {
		checkSingle(t, panels, title, want)
	}
	if got := total(panels["Leaders per broker"]); got != partitions {
		t.Errorf("panel \"Leaders per broker\": %v leaders in all, want %d", got, partitions)
	}
	if v, ok := seriesWith(panels["Produce records/s by topic"], "topic", topic); !ok || v <= 0 {
		t.Errorf("panel \"Produce records/s by topic\": %v (found %v) for %s, want a positive rate", v, ok, topic)
	}
	groups := loadRules(t, engine, healthy)
	evalRules(t, groups, now)
	if active := activeAlerts(groups); len(active) > 0 {
		t.Fatalf("alerts active on a healthy cluster: %v", active)
	}

	// A broker (not the controller, whose failover is another story) dies.
	var victim *testenv.Broker
	var survivors []*testenv.Broker
	for _, b := range c.Brokers() {
		if victim == nil && scrapeSum(t, b, "strata_controller_active") == 0 {
			victim = b
			continue
		}
		survivors = append(survivors, b)
	}
	if victim == nil {
		t.Fatal("every broker reports itself the active controller")
	}
	victim.Kill()
	killed := time.Now()
	await.True(t, 20*time.Second, "a survivor reporting under-replicated partitions", func() bool {
		return sumOver(t, survivors, "strata_under_replicated_partitions") > 0
	})
	t.Logf("broker %d killed; under-replicated partitions reported after %v", victim.ID(), time.Since(killed).Round(time.Millisecond))

	// The alert's history: three scrapes of the survivors, the victim's
	// scrape failing each time, evaluated as the rule manager would.
	degraded := teststorage.New(t)
	groups = loadRules(t, engine, degraded)
	t1 := now.Add(10 * time.Minute)
	const fire = "StrataUnderReplicatedPartitions"
	const down = "StrataBrokerDown"
	for i := range 3 {
		ts := t1.Add(time.Duration(i) * scrapeInterval)
		load(t, degraded, survivors, []*testenv.Broker{victim}, ts)
		evalRules(t, groups, ts)
		active := activeAlerts(groups)
		want := rules.StatePending
		if time.Duration(i)*scrapeInterval >= time.Minute {
			want = rules.StateFiring
		}
		for _, name := range []string{fire, down} {
			if active[name] != want {
				t.Errorf("%v after the kill: %s is %v, want %v (active: %v)", time.Duration(i)*scrapeInterval, name, active[name], want, active)
			}
		}
		if i == 2 {
			delete(active, fire)
			delete(active, down)
			if len(active) > 0 {
				t.Errorf("other alerts active with one broker of three down: %v", active)
			}
		}
	}
	panels = evalPanels(t, engine, degraded, t1.Add(2*scrapeInterval))
	checkSingle(t, panels, "Brokers up", 2)
	checkSingle(t, panels, "Offline partitions", 0)
	if v := total(panels["Under-replicated partitions"]); v <= 0 {
		t.Errorf("panel \"Under-replicated partitions\" with a broker down: %v, want > 0", v)
	}
}

func newEngine() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		MaxSamples:    1_000_000,
		Timeout:       10 * time.Second,
		LookbackDelta: 5 * time.Minute,
	})
}

// load stores one scrape of each broker in up at ts, as Prometheus's
// scrape loop would under job="strata": every series with job and instance
// labels, and up 1; for each broker in down, only up 0.
func load(t *testing.T, st *teststorage.TestStorage, up, down []*testenv.Broker, ts time.Time) {
	t.Helper()
	app := st.Appender(t.Context())
	ms := ts.UnixMilli()
	add := func(lset labels.Labels, v float64) {
		if _, err := app.Append(0, lset, ms, v); err != nil {
			t.Fatalf("append %s: %v", lset, err)
		}
	}
	for _, b := range down {
		add(labels.FromStrings("__name__", "up", "job", "strata", "instance", b.HTTPAddr()), 0)
	}
	for _, b := range up {
		add(labels.FromStrings("__name__", "up", "job", "strata", "instance", b.HTTPAddr()), 1)
		p := textparse.NewPromParser(scrape(t, b), labels.NewSymbolTable(), false)
		n := 0
		for {
			et, err := p.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("parse broker %d's /metrics: %v", b.ID(), err)
			}
			if et != textparse.EntrySeries {
				continue
			}
			_, _, v := p.Series()
			var lset labels.Labels
			p.Labels(&lset)
			lb := labels.NewBuilder(lset)
			lb.Set("job", "strata")
			lb.Set("instance", b.HTTPAddr())
			add(lb.Labels(), v)
			n++
		}
		if n == 0 {
			t.Fatalf("broker %d's /metrics has no series", b.ID())
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

func scrape(t *testing.T, b *testenv.Broker) []byte {
	t.Helper()
	resp, err := http.Get("http://" + b.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatalf("scrape broker %d: %v", b.ID(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape broker %d: %s %v", b.ID(), resp.Status, err)
	}
	return body
}

// scrapeSum is the sum of a metric's series on one broker's /metrics.
func scrapeSum(t *testing.T, b *testenv.Broker, name string) float64 {
	t.Helper()
	p := textparse.NewPromParser(scrape(t, b), labels.NewSymbolTable(), false)
	sum := 0.0
	for {
		et, err := p.Next()
		if errors.Is(err, io.EOF) {
			return sum
		}
		if err != nil {
			t.Fatalf("parse broker %d's /metrics: %v", b.ID(), err)
		}
		if et != textparse.EntrySeries {
			continue
		}
		_, _, v := p.Series()
		var lset labels.Labels
		p.Labels(&lset)
		if lset.Get("__name__") == name {
			sum += v
		}
	}
}

func sumOver(t *testing.T, bs []*testenv.Broker, name string) float64 {
	t.Helper()
	sum := 0.0
	for _, b := range bs {
		sum += scrapeSum(t, b, name)
	}
	return sum
}

// evalPanels runs every panel query of the dashboard at ts, failing the
// test on any error, and returns each panel's result by title (the
// results of a panel's queries together).
func evalPanels(t *testing.T, engine *promql.Engine, st *teststorage.TestStorage, ts time.Time) map[string]promql.Vector {
	t.Helper()
	out := map[string]promql.Vector{}
	for _, p := range readDashboard(t).Panels {
		for i, q := range p.Targets {
			expr, err := grafanaExpr(q.Expr)
			if err != nil {
				t.Fatalf("panel %q query %d: %v", p.Title, i, err)
			}
			qry, err := engine.NewInstantQuery(t.Context(), st, nil, expr, ts)
			if err != nil {
				t.Fatalf("panel %q query %d: %s: %v", p.Title, i, expr, err)
			}
			res := qry.Exec(t.Context())
			if res.Err != nil {
				t.Fatalf("panel %q query %d: %s: %v", p.Title, i, expr, res.Err)
			}
			v, err := res.Vector()
			if err != nil {
				t.Fatalf("panel %q query %d: %s: %v", p.Title, i, expr, err)
			}
			out[p.Title] = append(out[p.Title], v...)
			qry.Close()
		}
	}
	return out
}

// checkSingle wants a panel to show one value: an empty result is
// Grafana's "No data", not a healthy zero.
func checkSingle(t *testing.T, panels map[string]promql.Vector, title string, want float64) {
	t.Helper()
	v, ok := panels[title]
	if !ok {
		t.Errorf("no panel %q", title)
		return
	}
	switch {
	case len(v) == 0:
		t.Errorf("panel %q shows no data, want the single value %v", title, want)
	case len(v) != 1 || v[0].F != want:
		t.Errorf("panel %q shows %v, want the single value %v", title, v, want)
	}
}

func total(v promql.Vector) float64 {
	sum := 0.0
	for _, s := range v {
		sum += s.F
	}
	return sum
}

func seriesWith(v promql.Vector, name, value string) (float64, bool) {
	for _, s := range v {
		if s.Metric.Get(name) == value {
			return s.F, !math.IsNaN(s.F)
		}
	}
	return 0, false
}

// loadRules loads the rules file as Prometheus's rule manager does,
// querying st; the groups are evaluated by hand (evalRules), at the
// test's timestamps.
func loadRules(t *testing.T, engine *promql.Engine, st *teststorage.TestStorage) []*rules.Group {
	t.Helper()
	m := rules.NewManager(&rules.ManagerOptions{
		QueryFunc:    rules.EngineQueryFunc(engine, st),
		NotifyFunc:   func(context.Context, string, ...*rules.Alert) {},
		Context:      t.Context(),
		AppendableV2: st,
		Queryable:    st,
		Logger:       slog.New(slog.DiscardHandler),
		Registerer:   prometheus.NewRegistry(),
	})
	loaded, errs := m.LoadGroups(scrapeInterval, labels.EmptyLabels(), "", nil, false, rulesFile)
	if len(errs) > 0 {
		t.Fatalf("load %s: %v", rulesFile, errs)
	}
	return slices.Collect(maps.Values(loaded))
}

// evalRules evaluates every group at ts and fails the test if a rule's
// query failed: an alert that errors never fires.
func evalRules(t *testing.T, groups []*rules.Group, ts time.Time) {
	t.Helper()
	for _, g := range groups {
		g.Eval(t.Context(), ts)
		for _, r := range g.Rules() {
			if err := r.LastError(); err != nil {
				t.Fatalf("rule %s at %v: %v", r.Name(), ts, err)
			}
		}
	}
}

// activeAlerts are the pending or firing alerts by rule name, each
// rule's most advanced state.
func activeAlerts(groups []*rules.Group) map[string]rules.AlertState {
	out := map[string]rules.AlertState{}
	for _, g := range groups {
		for _, r := range g.Rules() {
			ar, ok := r.(*rules.AlertingRule)
			if !ok {
				continue
			}
			for _, a := range ar.ActiveAlerts() {
				if a.State > out[ar.Name()] {
					out[ar.Name()] = a.State
				}
			}
		}
	}
	return out
}

// grafanaExpr replaces the Grafana variables a panel query uses with
// what Grafana would send for a one-minute range at a 30 s scrape
// interval; any other variable is an error, since the dashboard defines
// no template variables a query could use.
func grafanaExpr(expr string) (string, error) {
	out := strings.NewReplacer(
		"$__rate_interval", "1m",
		"${__rate_interval}", "1m",
		"$__interval", "30s",
		"${__interval}", "30s",
		"$__range", "1m",
		"${__range}", "1m",
	).Replace(expr)
	if i := strings.Index(out, "$"); i >= 0 {
		return "", fmt.Errorf("%s: unknown variable at %q", expr, out[i:])
	}
	return out, nil
}
