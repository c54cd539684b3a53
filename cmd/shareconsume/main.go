// Command shareconsume reads topics as a member of a Kafka share group
// (queues for Kafka: any number of consumers share the records of every
// partition, each record is handed to one consumer at a time and
// acknowledged one by one), through any broker that serves share groups.
// It is shaped like Kafka's kafka-console-share-consumer: every record it
// prints is accepted, unless --release or --reject (or their per-key forms)
// say otherwise. It is written with franz-go's share-group consumer.
//
// Usage:
//
//	shareconsume --bootstrap-server localhost:9092 --group workers --topic jobs --from-beginning
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type config struct {
	bootstrap, group string
	topics           []string
	fromBeginning    bool
	release, reject  bool
	releaseKeys      *regexp.Regexp
	rejectKeys       *regexp.Regexp
	maxMessages      int
	timeout          time.Duration
	printOffsets     bool
	hold             bool
}

type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	var cfg config
	var topics stringsFlag
	var releaseKeys, rejectKeys string
	flag.StringVar(&cfg.bootstrap, "bootstrap-server", "localhost:9092", "Kafka address of a broker")
	flag.StringVar(&cfg.group, "group", "", "share group to join (required)")
	flag.Var(&topics, "topic", "topic to read (repeatable; required)")
	flag.BoolVar(&cfg.fromBeginning, "from-beginning", false, "set the group's share.auto.offset.reset to earliest before joining: a group that has not read a partition yet starts at its log start rather than its end")
	flag.BoolVar(&cfg.release, "release", false, "release every record instead of accepting it: it is delivered again, to this consumer or another, until share.delivery.count.limit archives it")
	flag.BoolVar(&cfg.reject, "reject", false, "reject every record instead of accepting it: it is archived and never delivered again")
	flag.StringVar(&releaseKeys, "release-keys", "", "release the records whose key matches this regular expression")
	flag.StringVar(&rejectKeys, "reject-keys", "", "reject the records whose key matches this regular expression")
	flag.IntVar(&cfg.maxMessages, "max-messages", 0, "exit after this many records (0: no limit)")
	flag.DurationVar(&cfg.timeout, "timeout", 0, "exit once no record arrived for this long (0: read until interrupted)")
	flag.BoolVar(&cfg.printOffsets, "print-offsets", false, "print each record as partition, offset, delivery count, key and value, tab-separated (default: the value only)")
	flag.BoolVar(&cfg.hold, "hold", false, "take the first records delivered and never acknowledge them, staying connected: a stuck consumer, whose records go to others once their acquisition lock (share.record.lock.duration.ms) expires")
	flag.Parse()
	cfg.topics = topics
	if cfg.group == "" || len(cfg.topics) == 0 {
		fmt.Fprintln(os.Stderr, "shareconsume: --group and --topic are required")
		os.Exit(2)
	}
	for _, re := range []struct {
		expr string
		dst  **regexp.Regexp
		name string
	}{{releaseKeys, &cfg.releaseKeys, "--release-keys"}, {rejectKeys, &cfg.rejectKeys, "--reject-keys"}} {
		if re.expr == "" {
			continue
		}
		compiled, err := regexp.Compile(re.expr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "shareconsume: %s: %v\n", re.name, err)
			os.Exit(2)
		}
		*re.dst = compiled
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := bufio.NewWriter(os.Stdout)
	n, err := run(ctx, cfg, out, logger)
	out.Flush()
	logger.Info("share consumer stopped", "records", n, "err", err)
	if err != nil && !errors.Is(err, context.Canceled) {
		os.Exit(1)
	}
}

// ack is what cfg says to do with a record.
func (cfg config) ack(r *kgo.Record) kgo.AckStatus {
	switch {
	case cfg.reject, cfg.rejectKeys != nil && cfg.rejectKeys.Match(r.Key):
		return kgo.AckReject
	case cfg.release, cfg.releaseKeys != nil && cfg.releaseKeys.Match(r.Key):
		return kgo.AckRelease
	}
	return kgo.AckAccept
}

// run reads until ctx ends, cfg.maxMessages records were printed or none
// came for cfg.timeout, and returns how many it printed. Every line is
// flushed before its record is acknowledged, so a consumer killed at any
// point has printed each record it acknowledged.
func run(ctx context.Context, cfg config, out *bufio.Writer, logger *slog.Logger) (int, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(cfg.bootstrap, ",")...),
		kgo.ShareGroup(cfg.group),
		kgo.ConsumeTopics(cfg.topics...),
		kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelWarn, nil)),
	)
	if err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	defer cl.Close()
	if cfg.fromBeginning {
		if err := setEarliest(ctx, cl, cfg.group); err != nil {
			return 0, err
		}
	}
	n := 0
	lastRecord := time.Now()
	for {
		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if cfg.timeout > 0 {
			pollCtx, cancel = context.WithDeadline(ctx, lastRecord.Add(cfg.timeout))
		}
		fetches := cl.PollRecords(pollCtx, 500)
		cancel()
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		var fatal error
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			logger.Warn("fetch error", "topic", topic, "partition", p, "err", err)
			if errors.Is(err, kgo.ErrClientClosed) {
				fatal = err
			}
		})
		if fatal != nil {
			return n, fatal
		}
		records := fetches.Records()
		if len(records) == 0 {
			if cfg.timeout > 0 && time.Since(lastRecord) >= cfg.timeout {
				return n, nil
			}
			continue
		}
		lastRecord = time.Now()
		for i, r := range records {
			if cfg.maxMessages > 0 && n == cfg.maxMessages {
				// Records beyond the limit go back for others at once.
				for _, rest := range records[i:] {
					rest.Ack(kgo.AckRelease)
				}
				break
			}
			printRecord(out, cfg, r)
			n++
			if !cfg.hold {
				r.Ack(cfg.ack(r))
			}
		}
		if err := out.Flush(); err != nil {
			return n, fmt.Errorf("stdout: %w", err)
		}
		if cfg.hold {
			<-ctx.Done()
			return n, ctx.Err()
		}
		if err := cl.FlushAcks(ctx); err != nil {
			return n, fmt.Errorf("acknowledge: %w", err)
		}
		if cfg.maxMessages > 0 && n >= cfg.maxMessages {
			return n, nil
		}
	}
}

func printRecord(w io.Writer, cfg config, r *kgo.Record) {
	if cfg.printOffsets {
		fmt.Fprintf(w, "%d\t%d\t%d\t%s\t%s\n", r.Partition, r.Offset, r.DeliveryCount(), r.Key, r.Value)
		return
	}
	fmt.Fprintf(w, "%s\n", r.Value)
}

// setEarliest sets the group's share.auto.offset.reset to earliest, as
// kafka-configs --entity-type groups would; it applies to the partitions the
// group has not read yet.
func setEarliest(ctx context.Context, cl *kgo.Client, group string) error {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceTypeGroupConfig
	res.ResourceName = group
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name = "share.auto.offset.reset"
	c.Op = kmsg.IncrementalAlterConfigOpSet
	c.Value = kmsg.StringPtr("earliest")
	res.Configs = append(res.Configs, c)
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("set share.auto.offset.reset of group %s: %w", group, err)
	}
	for _, r := range resp.Resources {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return fmt.Errorf("set share.auto.offset.reset of group %s: %w", group, err)
		}
	}
	return nil
}
