package broker

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/broker/txn"
)

type metrics struct {
	produceBytes   *prometheus.CounterVec
	produceRecords *prometheus.CounterVec
	produceErrors  *prometheus.CounterVec
	produceLatency prometheus.Histogram
	fetchBytes     *prometheus.CounterVec
	consumerBytes  *prometheus.CounterVec
	corruptReads   *prometheus.CounterVec
	isr            *isrCounters
}

func newMetrics(b *Broker, reg prometheus.Registerer) *metrics {
	m := &metrics{
		produceBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_produce_bytes_total", Help: "Record-batch bytes appended to partition logs.",
		}, []string{"topic"}),
		produceRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_produce_records_total", Help: "Records appended to partition logs.",
		}, []string{"topic"}),
		produceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_produce_errors_total", Help: "Partition appends that failed.",
		}, []string{"topic"}),
		produceLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "strata_produce_duration_seconds",
			Help:    "Time to append one produce request's batches.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		fetchBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_fetch_bytes_total", Help: "Record-batch bytes returned by fetches.",
		}, []string{"topic"}),
		consumerBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_consumer_fetch_bytes_total",
			Help: "Record-batch bytes this broker returned to consumers (leader or follower), by the consumer's rack against this broker's: same, other (cross-rack traffic), or unknown (either names no rack).",
		}, []string{"rack"}),
		corruptReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_log_corrupt_reads_total", Help: "Reads that met a batch failing its checksum on disk.",
		}, []string{"topic"}),
		isr: newISRCounters(),
	}
	for _, r := range []string{rackSame, rackOther, rackUnknown} {
		m.consumerBytes.WithLabelValues(r) // dashboards show zeros, not gaps
	}
	if reg != nil {
		reg.MustRegister(m.produceBytes, m.produceRecords, m.produceErrors, m.produceLatency,
			m.fetchBytes, m.consumerBytes, m.corruptReads, &logCollector{b: b},
			m.isr.shrinks, m.isr.expands, &replicationCollector{b: b}, newBuildInfo())
	}
	return m
}

// logCollector reports per-partition log state at scrape time, so the
// produce path keeps no gauges up to date.
type logCollector struct{ b *Broker }

var (
	logEndDesc = prometheus.NewDesc("strata_log_end_offset",
		"Offset the next record appended to the partition receives.", []string{"topic", "partition"}, nil)
	logStartDesc = prometheus.NewDesc("strata_log_start_offset",
		"First offset still in the partition's log.", []string{"topic", "partition"}, nil)
	logSizeDesc = prometheus.NewDesc("strata_log_size_bytes",
		"Bytes of the partition's segment files on local disk.", []string{"topic", "partition"}, nil)
	logSegmentsDesc = prometheus.NewDesc("strata_log_segments",
		"Segments of the partition's log on local disk.", []string{"topic", "partition"}, nil)
	lsoLagDesc = prometheus.NewDesc("strata_partition_last_stable_offset_lag",
		"High watermark minus last stable offset of a partition this broker leads: records held back from read_committed consumers by an open transaction. Exported only where it is not zero.",
		[]string{"topic", "partition"}, nil)
)

func (c *logCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- logEndDesc
	ch <- logStartDesc
	ch <- logSizeDesc
	ch <- logSegmentsDesc
	ch <- lsoLagDesc
}

func (c *logCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.b.hosted.allPartitions() {
		labels := []string{p.Topic, strconv.Itoa(int(p.Index))}
		ch <- prometheus.MustNewConstMetric(logEndDesc, prometheus.GaugeValue, float64(p.LogEndOffset()), labels...)
		ch <- prometheus.MustNewConstMetric(logStartDesc, prometheus.GaugeValue, float64(p.LogStartOffset()), labels...)
		ch <- prometheus.MustNewConstMetric(logSizeDesc, prometheus.GaugeValue, float64(p.log.Size()), labels...)
		ch <- prometheus.MustNewConstMetric(logSegmentsDesc, prometheus.GaugeValue, float64(len(p.log.Segments())), labels...)
		// Only leaders: a follower's high watermark trails the leader's,
		// so its lag says little. Zero is left out, so that the series
		// count follows the partitions with a transaction open rather
		// than every partition.
		if _, r := p.State(); r == roleLeader {
			if lag := p.HighWatermark() - p.LastStableOffset(); lag > 0 {
				ch <- prometheus.MustNewConstMetric(lsoLagDesc, prometheus.GaugeValue, float64(lag), labels...)
			}
		}
	}
}

// txnMetrics counts the transaction coordinator's outcomes; it is the
// coordinator's txn.Metrics.
type txnMetrics struct {
	completed *prometheus.CounterVec
	timedOut  prometheus.Counter
}

// Outcome label values of strata_transactions_completed_total.
const (
	outcomeCommit = "commit"
	outcomeAbort  = "abort"
)

func newTxnMetrics() *txnMetrics {
	m := &txnMetrics{
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_transactions_completed_total",
			Help: "Transactions this broker completed as their coordinator (CompleteCommit or CompleteAbort stored), by outcome; aborts include those of timed-out transactions and of producers fenced by a new one.",
		}, []string{"outcome"}),
		timedOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_transactions_timed_out_total",
			Help: "Transactions this broker, as their coordinator, aborted for being open longer than their transaction.timeout.ms.",
		}),
	}
	m.completed.WithLabelValues(outcomeCommit) // dashboards show zeros, not gaps
	m.completed.WithLabelValues(outcomeAbort)
	return m
}

// register exports m and the number of c's open transactions to reg (nil:
// nothing is exported).
func (m *txnMetrics) register(reg prometheus.Registerer, c *txn.Coordinator) {
	if reg == nil {
		return
	}
	reg.MustRegister(m.completed, m.timedOut, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strata_transactions_open",
		Help: "Transactional ids this broker coordinates whose transaction is open (Ongoing) or being completed (PrepareCommit, PrepareAbort).",
	}, func() float64 { return float64(c.OpenTransactions()) }))
}

func (m *txnMetrics) TransactionCompleted(commit bool) {
	if commit {
		m.completed.WithLabelValues(outcomeCommit).Inc()
	} else {
		m.completed.WithLabelValues(outcomeAbort).Inc()
	}
}

func (m *txnMetrics) TransactionTimedOut() { m.timedOut.Inc() }
