package grpcapi

import (
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/acl"
)

// auditLinesPerSecond bounds the denials logged per second: a client
// retrying a refused call in a loop must not flood the log. Denials over
// the bound are counted, and the next line logged says how many were left
// out; the metric counts every decision.
const auditLinesPerSecond = 20

// auditor records authorization decisions of the gRPC frontend: every
// decision in strata_authorization_decisions_total, denials also in the
// audit log (logger component=audit) at INFO.
type auditor struct {
	decisions *prometheus.CounterVec
	logger    *slog.Logger
	now       func() time.Time

	mu         sync.Mutex
	window     time.Time // the start of the second being counted
	logged     int       // lines logged in window
	suppressed int       // denials not logged since the last line
}

func newAuditor(logger *slog.Logger, reg prometheus.Registerer) *auditor {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &auditor{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_authorization_decisions_total",
			Help: "Authorization decisions, by frontend, ACL operation, resource type and outcome (allowed or denied).",
		}, []string{"frontend", "operation", "resource_type", "outcome"}),
		logger: logger.With("component", "audit"),
		now:    time.Now,
	}
	if reg != nil {
		reg.MustRegister(a.decisions)
	}
	return a
}

// record counts one decision and logs it if it is a denial.
func (a *auditor) record(principal, host, method string, op acl.Operation, rt acl.ResourceType, name string, d acl.Decision) {
	outcome := "allowed"
	if !d.Allowed {
		outcome = "denied"
	}
	a.decisions.WithLabelValues("grpc", op.String(), rt.String(), outcome).Inc()
	if d.Allowed {
		return
	}
	suppressed, ok := a.admit()
	if !ok {
		return
	}
	attrs := []any{
		"frontend", "grpc", "principal", principal, "host", host, "operation", op.String(),
		"resource_type", rt.String(), "resource", name, "outcome", outcome, "reason", d.Reason.String(), "method", method,
	}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	a.logger.Info("authorization denied", attrs...)
}

// admit reports whether a denial may be logged now, and how many were
// left out before it.
func (a *auditor) admit() (suppressed int, ok bool) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if now.Sub(a.window) >= time.Second {
		a.window, a.logged = now, 0
	}
	if a.logged >= auditLinesPerSecond {
		a.suppressed++
		return 0, false
	}
	a.logged++
	suppressed, a.suppressed = a.suppressed, 0
	return suppressed, true
}
