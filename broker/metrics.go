package broker

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	produceBytes   *prometheus.CounterVec
	produceRecords *prometheus.CounterVec
	produceErrors  *prometheus.CounterVec
	produceLatency prometheus.Histogram
	fetchBytes     *prometheus.CounterVec
	consumerBytes  *prometheus.CounterVec
	corruptReads   *prometheus.CounterVec
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
	}
	for _, r := range []string{rackSame, rackOther, rackUnknown} {
		m.consumerBytes.WithLabelValues(r) // dashboards show zeros, not gaps
	}
	if reg != nil {
		reg.MustRegister(m.produceBytes, m.produceRecords, m.produceErrors, m.produceLatency,
			m.fetchBytes, m.consumerBytes, m.corruptReads, &logCollector{b: b})
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
)

func (c *logCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- logEndDesc
	ch <- logStartDesc
	ch <- logSizeDesc
	ch <- logSegmentsDesc
}

func (c *logCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.b.hosted.allPartitions() {
		labels := []string{p.Topic, strconv.Itoa(int(p.Index))}
		ch <- prometheus.MustNewConstMetric(logEndDesc, prometheus.GaugeValue, float64(p.LogEndOffset()), labels...)
		ch <- prometheus.MustNewConstMetric(logStartDesc, prometheus.GaugeValue, float64(p.LogStartOffset()), labels...)
		ch <- prometheus.MustNewConstMetric(logSizeDesc, prometheus.GaugeValue, float64(p.log.Size()), labels...)
		ch <- prometheus.MustNewConstMetric(logSegmentsDesc, prometheus.GaugeValue, float64(len(p.log.Segments())), labels...)
	}
}
