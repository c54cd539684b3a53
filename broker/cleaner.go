package broker

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"golang.org/x/time/rate"

	"github.com/strata-broker/strata/compaction"
)

// Kafka's log cleaner settings and defaults.
const (
	defaultCleanerBackoffMs  = 15_000    // log.cleaner.backoff.ms
	defaultDedupeBufferBytes = 128 << 20 // log.cleaner.dedupe.buffer.size
)

// cleanerWorker is the broker's compaction.CleanerWorker, which compacts
// the hosted partitions of topics whose cleanup.policy includes compact.
type cleanerWorker struct {
	*compaction.CleanerWorker
	b *Broker
	// mapBytes and limiter are the cleaner settings that remote compaction
	// (remotecompact.go) applies too; the limiter is shared, so both tiers
	// stay within log.cleaner.io.max.bytes.per.second together.
	mapBytes int
	limiter  *rate.Limiter // nil: unlimited
}

func newCleanerWorker(b *Broker) (*cleanerWorker, error) {
	s := b.cfg.Settings
	w := &cleanerWorker{b: b, mapBytes: defaultDedupeBufferBytes}
	enabled := true
	backoff, err := settingMs(s, "log.cleaner.backoff.ms", defaultCleanerBackoffMs)
	if err != nil {
		return nil, err
	}
	if v, ok := s["log.cleaner.enable"]; ok {
		if enabled, err = strconv.ParseBool(v); err != nil {
			return nil, fmt.Errorf("broker: setting log.cleaner.enable=%q: want true or false", v)
		}
	}
	if v, ok := s["log.cleaner.dedupe.buffer.size"]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1024 || n > math.MaxInt32 {
			return nil, fmt.Errorf("broker: setting log.cleaner.dedupe.buffer.size=%q: want bytes, 1024 to %d", v, math.MaxInt32)
		}
		w.mapBytes = int(n)
	}
	if v, ok := s["log.cleaner.io.max.bytes.per.second"]; ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return nil, fmt.Errorf("broker: setting log.cleaner.io.max.bytes.per.second=%q: want a positive number of bytes", v)
		}
		if f < math.MaxInt32 {
			// A burst of a quarter second, but at least one read chunk.
			w.limiter = rate.NewLimiter(rate.Limit(f), max(int(f/4), 1<<20))
		}
	}
	w.CleanerWorker, err = compaction.NewCleanerWorker(compaction.CleanerConfig{
		Disabled:    !enabled,
		Backoff:     backoff,
		MapBytes:    w.mapBytes,
		Limiter:     w.limiter,
		Partitions:  hostedReplicas[compaction.Replica](b),
		TopicConfig: b.hosted.TopicConfig,
		Now:         b.now,
		Logger:      b.logger,
		Registerer:  b.cfg.Registerer,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	return w, nil
}

// run runs the worker, on a goroutine of b's (see Broker.background).
func (w *cleanerWorker) run(ctx context.Context) {
	if err := w.Run(ctx); err != nil {
		w.b.logger.Error("log cleaner stopped", "err", err)
	}
}
