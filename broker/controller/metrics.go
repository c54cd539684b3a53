package controller

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the controller's. A broker makes them once and hands them to
// every term it serves as controller (WithMetrics); a broker that is not
// the controller reports zeros, as Kafka's do.
type Metrics struct {
	// imbalance is Kafka's PreferredReplicaImbalanceCount.
	imbalance prometheus.Gauge
	// preferredElections counts the leader balance check's elections.
	preferredElections prometheus.Counter
	// active is Kafka's ActiveControllerCount: 1 while this broker is
	// the controller, so that the sum over brokers is 1 in a healthy
	// cluster.
	active prometheus.Gauge
	// offline is Kafka's OfflinePartitionsCount: partitions without a
	// live leader.
	offline prometheus.Gauge
}

// NewMetrics makes the controller's metrics and registers them with reg,
// if not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		imbalance: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "strata_controller_preferred_replica_imbalance",
			Help: "Partitions led by a broker other than their preferred replica (the first of their replicas), as the controller sees them; 0 on brokers that are not the controller.",
		}),
		preferredElections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_controller_preferred_leader_elections_total",
			Help: "Preferred replicas elected leader by the controller's leader balance check (auto.leader.rebalance.enable).",
		}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "strata_controller_active",
			Help: "1 on the broker acting as controller, else 0; summed over the cluster it should be 1 (Kafka's ActiveControllerCount).",
		}),
		offline: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "strata_controller_offline_partitions",
			Help: "Partitions with no leader or a leader that is not alive, as the controller sees them (Kafka's OfflinePartitionsCount); 0 on brokers that are not the controller.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.imbalance, m.preferredElections, m.active, m.offline)
	}
	return m
}

// WithMetrics makes Run report to m; without it the metrics are discarded.
func WithMetrics(m *Metrics) Option {
	return func(c *controller) { c.metrics = m }
}
