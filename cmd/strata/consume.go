package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-broker/strata/api/client"
	"github.com/strata-broker/strata/record"
)

// printOptions select the fields consume prints before each value, in
// Kafka's console consumer order: timestamp, partition, offset, headers, key.
type printOptions struct {
	timestamp, partition, offset, headers, key bool
	sep                                        string
}

// writeRecord prints one record as Kafka's console consumer does, fields
// separated by sep; null keys and values print as "null".
func writeRecord(w *bufio.Writer, r *client.Record, o printOptions) {
	if o.timestamp {
		w.WriteString("CreateTime:")
		w.WriteString(strconv.FormatInt(r.Timestamp.UnixMilli(), 10))
		w.WriteString(o.sep)
	}
	if o.partition {
		w.WriteString("Partition:")
		w.WriteString(strconv.FormatInt(int64(r.Partition), 10))
		w.WriteString(o.sep)
	}
	if o.offset {
		w.WriteString("Offset:")
		w.WriteString(strconv.FormatInt(r.Offset, 10))
		w.WriteString(o.sep)
	}
	if o.headers {
		writeHeaders(w, r.Headers)
		w.WriteString(o.sep)
	}
	if o.key {
		writeNullable(w, r.Key)
		w.WriteString(o.sep)
	}
	writeNullable(w, r.Value)
	w.WriteByte('\n')
}

// writeHeaders prints headers as Kafka's console consumer does by default:
// KEY:VALUE pairs separated by commas, NO_HEADERS when there are none.
func writeHeaders(w *bufio.Writer, hs []record.RecordHeader) {
	if len(hs) == 0 {
		w.WriteString("NO_HEADERS")
		return
	}
	for i, h := range hs {
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteString(h.Key)
		w.WriteByte(':')
		writeNullable(w, h.Value)
	}
}

func writeNullable(w *bufio.Writer, b []byte) {
	if b == nil {
		w.WriteString("null")
		return
	}
	w.Write(b)
}

// parseOffset parses --offset: earliest, latest or a non-negative number.
func parseOffset(s string) (int64, error) {
	switch strings.ToLower(s) {
	case "earliest", "beginning":
		return client.OffsetEarliest, nil
	case "latest", "end":
		return client.OffsetLatest, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("--offset %q: want earliest, latest or an offset >= 0", s)
	}
	return n, nil
}

type consumeFlags struct {
	fromBeginning bool
	partition     int32
	offset        string
	maxMessages   int64
	exitAtEnd     bool
	// clientRack is Kafka's client.rack: read from a replica in this rack.
	clientRack string
	// isolationLevel is Kafka's console consumer's --isolation-level:
	// read_uncommitted (the default, as Kafka's) or read_committed.
	isolationLevel string
	print          printOptions
	keySep         string
	// Consumer group: --group, --commit-interval (0: commit on exit only),
	// --no-commit.
	group          string
	commitInterval time.Duration
	noCommit       bool
}

// readCommitted parses --isolation-level.
func (f *consumeFlags) readCommitted() (bool, error) {
	switch f.isolationLevel {
	case "", "read_uncommitted":
		return false, nil
	case "read_committed":
		return true, nil
	}
	return false, fmt.Errorf("--isolation-level %q: want read_uncommitted or read_committed", f.isolationLevel)
}

// groupOptions turns the flags into options of a group consumer of topic.
func (f *consumeFlags) groupOptions(topic string) (client.GroupConsumerOptions, error) {
	opts := client.GroupConsumerOptions{Group: f.group, Topic: topic, ClientID: "strata-consume", Start: client.StartLatest}
	if f.fromBeginning {
		opts.Start = client.StartEarliest
	}
	var err error
	if opts.ReadCommitted, err = f.readCommitted(); err != nil {
		return opts, err
	}
	switch {
	case f.partition >= 0 || f.offset != "":
		return opts, errors.New("--group assigns the partitions: --partition and --offset exclude it")
	case f.exitAtEnd:
		return opts, errors.New("--exit-at-end and --group exclude each other")
	case f.clientRack != "":
		return opts, errors.New("--client-rack is not supported with --group yet: a group member reads from the leaders")
	case f.maxMessages < 0:
		return opts, errors.New("--max-messages must not be negative")
	case f.commitInterval < 0:
		return opts, errors.New("--commit-interval must not be negative")
	}
	opts.AutoCommitInterval = f.commitInterval
	if f.noCommit || f.commitInterval == 0 {
		opts.AutoCommitInterval = -1 // committed at exit, or never
	}
	return opts, nil
}

// consumerOptions turns the flags into options for topic.
func (f *consumeFlags) consumerOptions(topic string) (client.ConsumerOptions, error) {
	opts := client.ConsumerOptions{Topic: topic, Follow: !f.exitAtEnd, Start: client.StartLatest, Rack: f.clientRack}
	if f.fromBeginning {
		opts.Start = client.StartEarliest
	}
	var err error
	if opts.ReadCommitted, err = f.readCommitted(); err != nil {
		return opts, err
	}
	if f.partition >= 0 {
		opts.Partitions = []int32{f.partition}
	}
	if f.offset != "" {
		if f.partition < 0 {
			return opts, errors.New("--offset needs --partition")
		}
		if f.fromBeginning {
			return opts, errors.New("--offset and --from-beginning exclude each other")
		}
		off, err := parseOffset(f.offset)
		if err != nil {
			return opts, err
		}
		opts.Offsets = map[int32]int64{f.partition: off}
	}
	if f.maxMessages < 0 {
		return opts, errors.New("--max-messages must not be negative")
	}
	return opts, nil
}

func newConsumeCmd() *cobra.Command {
	var (
		cf clientFlags
		f  consumeFlags
	)
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print records of a topic, one value per line",
		Long: `Print the records of a topic, one per line, as Kafka's console consumer does.
It starts at the end of each partition (only new records) unless
--from-beginning or --partition with --offset says otherwise, and follows the
topic until --max-messages records were printed or it is interrupted (SIGINT);
--exit-at-end stops at the end of the partitions instead.

With --group it consumes as a member of that consumer group: the broker
assigns it a share of the partitions, it resumes each from the group's
committed offset (--from-beginning applies to partitions without one), and it
commits what it printed every --commit-interval and on exit (0: on exit only;
--no-commit: never).

--isolation-level read_committed reads only committed records: each partition
up to its last stable offset (no record of a transaction still open), without
the records of aborted transactions. The default, read_uncommitted, reads
everything replicated, as Kafka's console consumer.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sep, err := unescape(f.keySep)
			if err != nil {
				return fmt.Errorf("--key-separator: %w", err)
			}
			f.print.sep = sep
			if f.group != "" {
				return consumeGroup(cmd, &cf, &f, args[0])
			}
			opts, err := f.consumerOptions(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := cf.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			cons, err := client.NewConsumer(c, opts)
			if err != nil {
				return err
			}
			defer cons.Close()
			n, err := consumeRecords(ctx, cons, cmd.OutOrStdout(), f.maxMessages, f.print)
			fmt.Fprintf(cmd.ErrOrStderr(), "Processed a total of %d messages\n", n)
			return err
		},
	}
	fs := cmd.Flags()
	cf.register(fs)
	fs.BoolVar(&f.fromBeginning, "from-beginning", false, "start at the earliest offset instead of the latest")
	fs.Int32Var(&f.partition, "partition", -1, "consume only this partition (default: all)")
	fs.StringVar(&f.offset, "offset", "", "start offset in --partition: earliest, latest or a number")
	fs.Int64Var(&f.maxMessages, "max-messages", 0, "stop after printing this many records (0: no limit)")
	fs.BoolVar(&f.exitAtEnd, "exit-at-end", false, "stop at the end of the partitions instead of following them")
	fs.StringVar(&f.clientRack, "client-rack", "", "read each partition from an in-sync replica in this rack (broker.rack) where there is one, as Kafka's client.rack")
	fs.StringVar(&f.isolationLevel, "isolation-level", "read_uncommitted", "read_committed: only records of committed transactions (and none outside any), up to the last stable offset; read_uncommitted: everything")
	fs.BoolVar(&f.print.headers, "print-headers", false, "print each record's headers (KEY:VALUE,...; NO_HEADERS when none)")
	fs.BoolVar(&f.print.key, "print-key", false, "print each record's key before its value")
	fs.BoolVar(&f.print.offset, "print-offset", false, "print each record's offset")
	fs.BoolVar(&f.print.partition, "print-partition", false, "print each record's partition")
	fs.BoolVar(&f.print.timestamp, "print-timestamp", false, "print each record's timestamp")
	fs.StringVar(&f.keySep, "key-separator", `\t`, "separator between printed fields (escapes like \\t are interpreted)")
	fs.StringVar(&f.group, "group", "", "consume as a member of this consumer group, from its committed offsets")
	fs.DurationVar(&f.commitInterval, "commit-interval", client.DefaultAutoCommitInterval, "with --group: how often to commit the printed records' offsets (0: only on exit)")
	fs.BoolVar(&f.noCommit, "no-commit", false, "with --group: never commit offsets")
	return cmd
}

// consumeRecords prints records until max (0: no limit), the end of the
// partitions (without Follow) or ctx ends, which is a clean stop. It returns
// how many records it printed.
func consumeRecords(ctx context.Context, cons *client.Consumer, out io.Writer, max int64, o printOptions) (int64, error) {
	w := bufio.NewWriterSize(out, 256<<10)
	defer w.Flush()
	var n int64
	for max == 0 || n < max {
		recs, err := cons.Poll(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return n, nil
			}
			return n, err
		}
		for i := range recs {
			if max > 0 && n == max {
				break
			}
			writeRecord(w, &recs[i], o)
			n++
		}
		if err := w.Flush(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// consumeGroup runs consume with --group.
func consumeGroup(cmd *cobra.Command, cf *clientFlags, f *consumeFlags, topic string) error {
	opts, err := f.groupOptions(topic)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	gc, err := client.NewGroupConsumer(c, opts)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(cmd.OutOrStdout(), 256<<10)
	var n int64
	for f.maxMessages == 0 || n < f.maxMessages {
		limit := 0
		if f.maxMessages > 0 {
			limit = int(f.maxMessages - n)
		}
		recs, perr := gc.PollRecords(ctx, limit)
		if perr != nil {
			if ctx.Err() == nil {
				err = perr
			}
			break
		}
		for i := range recs {
			writeRecord(w, &recs[i], f.print)
			n++
		}
		if err = w.Flush(); err != nil {
			break
		}
	}
	if werr := w.Flush(); err == nil {
		err = werr
	}
	if f.commitInterval == 0 && !f.noCommit && err == nil {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = gc.Commit(cctx)
		cancel()
	}
	if cerr := gc.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("commit on exit: %w", cerr)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Processed a total of %d messages\n", n)
	return err
}
