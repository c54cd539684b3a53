// Package audit records authorization decisions, as Kafka's
// kafka.authorizer.logger does: every denial in the log at INFO, every
// allowed decision at DEBUG, each with the principal, the client's host,
// the operation, the resource and the API that asked; and every decision
// counted in strata_authorization_decisions_total. Both frontends (Kafka
// and gRPC) record through it, each with its own frontend label.
package audit

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/strata-broker/strata/acl"
)

// Denials are written at most burst at once and perSecond after: a client
// can send refused requests as fast as the network carries them, and the
// log must not become what it spends the broker's disk on. The next line
// written says how many were left out; the counter counts every one.
const (
	perSecond = 50
	burst     = 100
)

// Component is the value of the "component" attribute of the audit
// logger, which operators route on (to a file of its own, a SIEM).
const Component = "audit"

const (
	metricName = "strata_authorization_decisions_total"
	helpText   = "Authorization decisions, by frontend, operation, resource type and outcome."
)

// labelNames are the counter's labels, bounded: never a principal or a
// resource name.
func labelNames() []string { return []string{"frontend", "operation", "resource_type", "outcome"} }

// Outcome labels.
const (
	outcomeAllowed = "allowed"
	outcomeDenied  = "denied"
)

// Auditor records the decisions of one frontend. Its methods are safe for
// concurrent use.
type Auditor struct {
	logger   *slog.Logger
	limit    *rate.Limiter
	now      func() time.Time
	dropped  atomic.Int64
	frontend string
	vec      *prometheus.CounterVec
	// counts are the counter's children by operation, resource type and
	// outcome (allowed = 1), made once: labels are bounded (never a
	// principal or a resource name), so every child exists from the start
	// and a decision costs no label lookup.
	counts [numOps][numTypes][2]prometheus.Counter
}

// The operations and resource types counts has room for: Kafka's codes
// up to IdempotentWrite and TransactionalId. Others are counted through
// the vector.
const (
	numOps   = int(acl.OpIdempotentWrite) + 1
	numTypes = int(acl.ResourceTransactionalID) + 1
)

// Option changes how an Auditor is made.
type Option func(*Auditor)

// WithClock gives the rate limit a clock other than time.Now (tests).
func WithClock(now func() time.Time) Option { return func(a *Auditor) { a.now = now } }

// New returns the auditor of frontend ("kafka", "grpc"). Its log lines go
// to logger with component=audit added; nil logs nothing. The counter is
// registered with reg (nil registers nothing); a second frontend on the
// same registerer shares the counter rather than failing to register it.
func New(frontend string, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) *Auditor {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &Auditor{
		logger:   logger.With("component", Component),
		limit:    rate.NewLimiter(perSecond, burst),
		now:      time.Now,
		frontend: frontend,
	}
	for _, o := range opts {
		o(a)
	}
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricName, Help: helpText}, labelNames())
	if reg != nil {
		if err := reg.Register(vec); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
					vec = existing
				}
			}
		}
	}
	a.vec = vec
	for _, rt := range []acl.ResourceType{acl.ResourceTopic, acl.ResourceGroup, acl.ResourceCluster, acl.ResourceTransactionalID} {
		for op := acl.OpAll; op <= acl.OpIdempotentWrite; op++ {
			for i, allowed := range []bool{false, true} {
				a.counts[op][rt][i] = vec.WithLabelValues(frontend, op.String(), rt.String(), outcome(allowed))
			}
		}
	}
	return a
}

func outcome(allowed bool) string {
	if allowed {
		return outcomeAllowed
	}
	return outcomeDenied
}

func (a *Auditor) counter(op acl.Operation, rt acl.ResourceType, allowed bool) prometheus.Counter {
	if op < 0 || int(op) >= numOps || rt < 0 || int(rt) >= numTypes {
		return nil
	}
	i := 0
	if allowed {
		i = 1
	}
	return a.counts[op][rt][i]
}

// Decision is one authorization decision to record.
type Decision struct {
	Principal    string // "User:alice"
	Host         string // the client's address
	Operation    acl.Operation
	ResourceType acl.ResourceType
	ResourceName string
	Allowed      bool
	Reason       acl.Reason
	// Quiet marks a denial that does not refuse the request, only narrows
	// it (Kafka's logIfDenied=false: ListGroups without Describe on the
	// cluster lists the groups the principal may describe): it is logged
	// at DEBUG, as an allowed decision is.
	Quiet bool
	// API is what the client asked for: a Kafka API name (Produce) or a
	// gRPC method.
	API string
}

// Record counts d and logs it: a denial at INFO, within the rate limit;
// an allowed decision at DEBUG, only when the logger writes DEBUG.
func (a *Auditor) Record(ctx context.Context, d Decision) {
	if c := a.counter(d.Operation, d.ResourceType, d.Allowed); c != nil {
		c.Inc()
	} else {
		a.vec.WithLabelValues(a.frontend, d.Operation.String(), d.ResourceType.String(), outcome(d.Allowed)).Inc()
	}
	level := slog.LevelInfo
	if d.Allowed || d.Quiet {
		level = slog.LevelDebug
	}
	if !a.logger.Enabled(ctx, level) {
		return
	}
	if level == slog.LevelInfo && !a.limit.AllowN(a.now(), 1) {
		a.dropped.Add(1)
		return
	}
	attrs := []slog.Attr{
		slog.String("principal", d.Principal),
		slog.String("host", d.Host),
		slog.String("operation", d.Operation.String()),
		slog.String("resource_type", d.ResourceType.String()),
		slog.String("resource_name", d.ResourceName),
		slog.String("outcome", outcome(d.Allowed)),
		slog.String("reason", d.Reason.String()),
		slog.String("frontend", a.frontend),
		slog.String("api", d.API),
	}
	if level == slog.LevelInfo {
		if n := a.dropped.Swap(0); n > 0 {
			attrs = append(attrs, slog.Int64("suppressed_since_last", n))
		}
	}
	a.logger.LogAttrs(ctx, level, "authorization", attrs...)
}
