package grpcapi

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-broker/strata/acl"
)

// TestAuditDenials: every decision is counted by outcome; denials are
// logged under component=audit with who, what and the resource, at most
// auditLinesPerSecond a second, the next line saying how many were left
// out.
func TestAuditDenials(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	a := newAuditor(slog.New(slog.NewTextHandler(&logs, nil)), reg)
	now := time.Unix(1000, 0)
	a.now = func() time.Time { return now }
	deny := acl.Decision{Allowed: false, Reason: acl.ReasonNoMatchingACL}
	allowed := acl.Decision{Allowed: true, Reason: acl.ReasonAllowACL}

	a.record("User:alice", "10.0.0.1", "/strata.v1.Strata/Produce", acl.OpWrite, acl.ResourceTopic, "orders", allowed)
	if logs.Len() != 0 {
		t.Fatalf("an allowed decision was logged: %s", logs.String())
	}
	for range auditLinesPerSecond + 5 {
		a.record("User:bob", "10.0.0.2", "/strata.v1.Strata/Produce", acl.OpWrite, acl.ResourceTopic, "orders", deny)
	}
	if got := testutil.ToFloat64(a.decisions.WithLabelValues("grpc", "WRITE", "TOPIC", "denied")); got != auditLinesPerSecond+5 {
		t.Fatalf("denied decisions counted %v; want %d", got, auditLinesPerSecond+5)
	}
	if got := testutil.ToFloat64(a.decisions.WithLabelValues("grpc", "WRITE", "TOPIC", "allowed")); got != 1 {
		t.Fatalf("allowed decisions counted %v; want 1", got)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != auditLinesPerSecond {
		t.Fatalf("%d lines logged in one second; want %d", len(lines), auditLinesPerSecond)
	}
	for _, want := range []string{"component=audit", "principal=User:bob", "host=10.0.0.2", "operation=WRITE", "resource_type=TOPIC", "resource=orders", "outcome=denied", "level=INFO"} {
		if !strings.Contains(lines[0], want) {
			t.Fatalf("audit line %q lacks %s", lines[0], want)
		}
	}
	now = now.Add(time.Second)
	logs.Reset()
	a.record("User:bob", "10.0.0.2", "/strata.v1.Strata/Produce", acl.OpWrite, acl.ResourceTopic, "orders", deny)
	if !strings.Contains(logs.String(), "suppressed=5") {
		t.Fatalf("the line after the bound does not count the 5 left out: %s", logs.String())
	}
}
