// Command txncopy copies a topic to another exactly once, with Kafka
// transactions, through any Kafka-compatible broker: each transaction
// holds the copied records and the consumer group's offsets of the
// records they came from, so a copy killed at any point and started again
// resumes where its last commit left it, and a read_committed consumer of
// the output sees every input record once. A record keeps its key, value,
// headers and partition number (the output topic needs at least as many
// partitions). It is the consume-transform-produce loop of Kafka Streams
// or Flink's exactly-once sinks, written with franz-go's
// GroupTransactSession.
//
// Usage:
//
//	txncopy --bootstrap-server localhost:9092 --from orders-raw --to orders \
//	    --group orders-copy --transactional-id orders-copy
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

type config struct {
	bootstrap, from, to, group, txnID string
	perTxn                            int
	idleExit, sessionTimeout          time.Duration
}

func main() {
	var cfg config
	flag.StringVar(&cfg.bootstrap, "bootstrap-server", "localhost:9092", "Kafka address of a broker")
	flag.StringVar(&cfg.from, "from", "", "topic to copy")
	flag.StringVar(&cfg.to, "to", "", "topic to copy to (at least as many partitions)")
	flag.StringVar(&cfg.group, "group", "", "consumer group holding the copy's position (default: txncopy-FROM-TO)")
	flag.StringVar(&cfg.txnID, "transactional-id", "", "transactional id; a copy started again with the same id fences the one before (default: the group)")
	flag.IntVar(&cfg.perTxn, "records-per-transaction", 500, "records copied per transaction at most")
	flag.DurationVar(&cfg.idleExit, "idle-exit", 0, "exit once nothing was copied for this long after partitions were assigned (0: copy until interrupted)")
	flag.DurationVar(&cfg.sessionTimeout, "session-timeout", 10*time.Second, "consumer group session timeout: how long a killed copy holds its partitions")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if cfg.from == "" || cfg.to == "" || cfg.perTxn < 1 {
		fmt.Fprintln(os.Stderr, "txncopy: --from and --to are required, --records-per-transaction must be positive")
		os.Exit(2)
	}
	if cfg.group == "" {
		cfg.group = "txncopy-" + cfg.from + "-" + cfg.to
	}
	if cfg.txnID == "" {
		cfg.txnID = cfg.group
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := run(ctx, cfg, logger)
	logger.Info("copy stopped", "records", n, "err", err)
	if err != nil && !errors.Is(err, context.Canceled) {
		os.Exit(1)
	}
}

// run copies until ctx ends or the copy is idle for cfg.idleExit, and
// returns how many records this run committed.
func run(ctx context.Context, cfg config, logger *slog.Logger) (int, error) {
	// The idle time counts from the assignment: a copy started again after
	// a kill waits for the killed one's session to expire first.
	var assignedAt atomic.Int64
	sess, err := kgo.NewGroupTransactSession(
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			assignedAt.Store(time.Now().UnixNano())
		}),
		kgo.SessionTimeout(cfg.sessionTimeout),
		kgo.SeedBrokers(cfg.bootstrap),
		kgo.TransactionalID(cfg.txnID),
		kgo.ConsumerGroup(cfg.group),
		kgo.ConsumeTopics(cfg.from),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Records of aborted transactions upstream are not copied.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
	if err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	defer sess.Close()
	// Take the transactional id over before consuming: that aborts what a
	// killed predecessor left open, and with it the offsets it committed
	// in its transaction, which the group's offset fetch (require_stable)
	// would otherwise wait on until that transaction timed out.
	if _, _, err := sess.Client().ProducerID(ctx); err != nil {
		return 0, fmt.Errorf("init producer id for %q: %w", cfg.txnID, err)
	}
	copied := 0
	var lastCopy time.Time
	// idleSince is when the copy last did something: its last commit, or
	// the assignment; zero before any assignment.
	idleSince := func() time.Time {
		at := time.Unix(0, assignedAt.Load())
		if assignedAt.Load() == 0 || lastCopy.After(at) {
			return lastCopy
		}
		return at
	}
	for {
		pollCtx := ctx
		cancel := func() {}
		if since := idleSince(); cfg.idleExit > 0 && !since.IsZero() {
			pollCtx, cancel = context.WithDeadline(ctx, since.Add(cfg.idleExit))
		} else if cfg.idleExit > 0 {
			// Not assigned yet: look again in a while.
			pollCtx, cancel = context.WithTimeout(ctx, cfg.idleExit)
		}
		fetches := sess.PollRecords(pollCtx, cfg.perTxn)
		cancel()
		if ctx.Err() != nil {
			return copied, ctx.Err()
		}
		if since := idleSince(); cfg.idleExit > 0 && !since.IsZero() && time.Since(since) >= cfg.idleExit {
			return copied, nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				logger.Warn("fetch", "topic", topic, "partition", p, "err", err)
			}
		})
		n := fetches.NumRecords()
		if n == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			return copied, fmt.Errorf("begin: %w", err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			out := &kgo.Record{Topic: cfg.to, Partition: r.Partition, Key: r.Key, Value: r.Value, Headers: r.Headers}
			sess.Produce(ctx, out, func(_ *kgo.Record, err error) {
				if err != nil {
					logger.Warn("produce", "partition", out.Partition, "err", err)
				}
			})
		})
		// A failed produce or a rebalance makes End abort: the records
		// are read again from the last committed offsets.
		committed, err := sess.End(ctx, kgo.TryCommit)
		if err != nil {
			return copied, fmt.Errorf("end transaction: %w", err)
		}
		if committed {
			copied += n
			lastCopy = time.Now()
			logger.Debug("committed", "records", n, "total", copied)
		}
	}
}
