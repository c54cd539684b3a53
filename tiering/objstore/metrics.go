package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Operation label values.
const (
	opPut      = "put"
	opGet      = "get"
	opGetRange = "get_range"
	opList     = "list"
	opDelete   = "delete"
	opExists   = "exists"
)

// Outcome label values. A missing object and a cancelled call are outcomes
// of their own, not errors: neither says anything about the store's health.
const (
	outcomeSuccess  = "success"
	outcomeNotFound = "not_found"
	outcomeCanceled = "canceled"
	outcomeError    = "error"
)

var (
	allOps      = []string{opPut, opGet, opGetRange, opList, opDelete, opExists}
	allOutcomes = []string{outcomeSuccess, outcomeNotFound, outcomeCanceled, outcomeError}
)

type metrics struct {
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_objstore_requests_total",
			Help: "Object store calls, by operation and outcome (success, not_found, canceled, error).",
		}, []string{"op", "outcome"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "strata_objstore_request_seconds",
			Help: "Duration of object store calls, retries included, by operation. For get and get_range, the time until the body starts.",
			// 1 ms to about 65 s.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 17),
		}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_objstore_errors_total",
			Help: "Object store calls that failed (not counting missing objects and cancelled calls), and failed reads of a returned body, by operation.",
		}, []string{"op"}),
	}
	if reg != nil {
		var errs [3]error
		m.requests, errs[0] = register(reg, m.requests)
		m.seconds, errs[1] = register(reg, m.seconds)
		m.errors, errs[2] = register(reg, m.errors)
		if err := errors.Join(errs[:]...); err != nil {
			return nil, fmt.Errorf("objstore: register metrics: %w", err)
		}
	}
	// Create every series, so dashboards show zeros instead of gaps.
	for _, op := range allOps {
		m.seconds.WithLabelValues(op)
		m.errors.WithLabelValues(op)
		for _, outcome := range allOutcomes {
			m.requests.WithLabelValues(op, outcome)
		}
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// its name: several stores on one registry share the series.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var dup prometheus.AlreadyRegisteredError
		if errors.As(err, &dup) {
			if existing, ok := dup.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

func (m *metrics) done(op string, start time.Time, err error) {
	m.seconds.WithLabelValues(op).Observe(time.Since(start).Seconds())
	outcome := outcomeSuccess
	switch {
	case err == nil:
	case errors.Is(err, ErrNotFound):
		outcome = outcomeNotFound
	case errors.Is(err, context.Canceled):
		outcome = outcomeCanceled
	default:
		outcome = outcomeError
		m.errors.WithLabelValues(op).Inc()
	}
	m.requests.WithLabelValues(op, outcome).Inc()
}

// measured is a Store that measures every call of the one it wraps, so
// every implementation has the same metrics.
type measured struct {
	s Store
	m *metrics
}

func withMetrics(s Store, reg prometheus.Registerer) (Store, error) {
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &measured{s: s, m: m}, nil
}

func (w *measured) Put(ctx context.Context, key string, body io.Reader, size int64) error {
	start := time.Now()
	err := w.s.Put(ctx, key, body, size)
	w.m.done(opPut, start, err)
	return err
}

func (w *measured) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := w.s.Get(ctx, key)
	w.m.done(opGet, start, err)
	if err != nil {
		return nil, err
	}
	return &measuredBody{ReadCloser: rc, errs: w.m.errors.WithLabelValues(opGet)}, nil
}

func (w *measured) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := w.s.GetRange(ctx, key, off, n)
	w.m.done(opGetRange, start, err)
	if err != nil {
		return nil, err
	}
	return &measuredBody{ReadCloser: rc, errs: w.m.errors.WithLabelValues(opGetRange)}, nil
}

func (w *measured) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	start := time.Now()
	infos, err := w.s.List(ctx, prefix)
	w.m.done(opList, start, err)
	return infos, err
}

func (w *measured) Delete(ctx context.Context, keys ...string) error {
	start := time.Now()
	err := w.s.Delete(ctx, keys...)
	w.m.done(opDelete, start, err)
	return err
}

func (w *measured) Exists(ctx context.Context, key string) (ObjectInfo, bool, error) {
	start := time.Now()
	info, ok, err := w.s.Exists(ctx, key)
	w.m.done(opExists, start, err)
	return info, ok, err
}

func (w *measured) String() string { return w.s.String() }

// measuredBody counts the first failed read of a body (a connection cut
// mid-object) as an error of the call that returned it.
type measuredBody struct {
	io.ReadCloser
	errs   prometheus.Counter
	failed bool
}

func (b *measuredBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && !b.failed && !errors.Is(err, context.Canceled) {
		b.failed = true
		b.errs.Inc()
	}
	return n, err
}
