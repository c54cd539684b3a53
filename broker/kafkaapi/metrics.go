package kafkaapi

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	connections    prometheus.Gauge
	protocolErrors prometheus.Counter
	requests       *prometheus.HistogramVec
	rejected       *prometheus.CounterVec
	timedOut       *prometheus.CounterVec
	budgetWaits    prometheus.Counter
	// authentications counts SASL exchanges by mechanism and result.
	authentications *prometheus.CounterVec
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
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_kafka_connections_rejected_total",
			Help: "Kafka connections closed as soon as accepted, by the limit they were over.",
		}, []string{"limit"}),
		timedOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_kafka_connections_timed_out_total",
			Help: "Kafka connections closed for sending nothing for connections.max.idle.ms (idle) or a request too slowly for socket.request.timeout.ms (request).",
		}, []string{"reason"}),
		budgetWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_kafka_request_memory_waits_total",
			Help: "Kafka requests that waited for the request memory budget (queued.max.request.bytes) before being read.",
		}),
		authentications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_kafka_sasl_authentications_total",
			Help: "SASL authentications (and re-authentications) on Kafka connections, by mechanism and result (success, failure).",
		}, []string{"mechanism", "result"}),
	}
	// Created up front, so dashboards show zeros rather than gaps.
	m.rejected.WithLabelValues("max_connections_per_ip")
	m.timedOut.WithLabelValues("idle")
	m.timedOut.WithLabelValues("request")
	if reg != nil {
		reg.MustRegister(m.connections, m.protocolErrors, m.requests, m.rejected, m.timedOut, m.budgetWaits, m.authentications)
	}
	return m
}

func (m *metrics) observe(api string, d time.Duration) {
	m.requests.WithLabelValues(api).Observe(d.Seconds())
}
