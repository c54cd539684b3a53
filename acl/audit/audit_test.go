package audit

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-broker/strata/acl"
)

func denial(name string) Decision {
	return Decision{Principal: "User:alice", Host: "10.0.0.1", Operation: acl.OpRead, ResourceType: acl.ResourceTopic,
		ResourceName: name, Reason: acl.ReasonNoMatchingACL, API: "Fetch"}
}

func TestDenialsAreLoggedAndCounted(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	a := New("kafka", slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})), reg)
	a.Record(context.Background(), denial("orders"))
	allowed := denial("orders")
	allowed.Allowed = true
	a.Record(context.Background(), allowed)

	line := logs.String()
	for _, want := range []string{"level=INFO", "component=audit", "principal=User:alice", "host=10.0.0.1",
		"operation=READ", "resource_type=TOPIC", "resource_name=orders", "outcome=denied", "api=Fetch"} {
		if !strings.Contains(line, want) {
			t.Errorf("audit line %q lacks %s", line, want)
		}
	}
	if strings.Count(line, "\n") != 1 {
		t.Errorf("an allowed decision was logged at INFO: %q", line)
	}
	// A second frontend on the same registry shares the counter.
	b := New("grpc", nil, reg)
	b.Record(context.Background(), denial("x"))
	err := reg.Register(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_authorization_decisions_total", Help: helpText}, labelNames()))
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Fatalf("the counter was not registered: %v", err)
	}
	vec := are.ExistingCollector.(*prometheus.CounterVec)
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"kafka", "READ", "TOPIC", "denied"}, 1},
		{[]string{"kafka", "READ", "TOPIC", "allowed"}, 1},
		{[]string{"grpc", "READ", "TOPIC", "denied"}, 1},
		{[]string{"kafka", "WRITE", "TOPIC", "denied"}, 0},
	} {
		if got := testutil.ToFloat64(vec.WithLabelValues(c.labels...)); got != c.want {
			t.Errorf("decisions%v = %v, want %v", c.labels, got, c.want)
		}
	}
}

func TestAllowedDecisionsAreLoggedAtDebug(t *testing.T) {
	var logs bytes.Buffer
	a := New("kafka", slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), nil)
	d := denial("orders")
	d.Allowed = true
	a.Record(context.Background(), d)
	if !strings.Contains(logs.String(), "level=DEBUG") || !strings.Contains(logs.String(), "outcome=allowed") {
		t.Fatalf("allowed decision: %q", logs.String())
	}
}

func TestDenialsAreRateLimited(t *testing.T) {
	var logs bytes.Buffer
	now := time.Unix(1000, 0)
	a := New("kafka", slog.New(slog.NewTextHandler(&logs, nil)), nil, WithClock(func() time.Time { return now }))
	for range burst + 500 {
		a.Record(context.Background(), denial("orders"))
	}
	if n := strings.Count(logs.String(), "\n"); n != burst {
		t.Fatalf("%d lines written at once, want the burst of %d", n, burst)
	}
	now = now.Add(time.Second)
	logs.Reset()
	a.Record(context.Background(), denial("orders"))
	if !strings.Contains(logs.String(), "suppressed_since_last=500") {
		t.Fatalf("the next line does not say what was left out: %q", logs.String())
	}
}
