package kafkaapi

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	connections    prometheus.Gauge
	protocolErrors prometheus.Counter
	requests       *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "strata_kafka_connections",
			Help: "Open Kafka protocol connections.",
		}),
		protocolErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_kafka_protocol_errors_total",
			Help: "Kafka connections closed for a malformed, unknown or oversized request.",
		}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "strata_kafka_request_seconds",
			Help:    "Time to handle a Kafka request, by API.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"api"}),
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.protocolErrors, m.requests)
	}
	return m
}

func (m *metrics) observe(api string, d time.Duration) {
	m.requests.WithLabelValues(api).Observe(d.Seconds())
}
