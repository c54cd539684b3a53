package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-broker/strata/api/client"
)

// printOptions select the fields consume prints before each value, in
// Kafka's console consumer order: timestamp, partition, offset, key.
type printOptions struct {
	timestamp, partition, offset, key bool
	sep                               string
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
	if o.key {
		writeNullable(w, r.Key)
		w.WriteString(o.sep)
	}
	writeNullable(w, r.Value)
	w.WriteByte('\n')
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
	print         printOptions
	keySep        string
}

// consumerOptions turns the flags into options for topic.
func (f *consumeFlags) consumerOptions(topic string) (client.ConsumerOptions, error) {
	opts := client.ConsumerOptions{Topic: topic, Follow: !f.exitAtEnd, Start: client.StartLatest}
	if f.fromBeginning {
		opts.Start = client.StartEarliest
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
--exit-at-end stops at the end of the partitions instead.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sep, err := unescape(f.keySep)
			if err != nil {
				return fmt.Errorf("--key-separator: %w", err)
			}
			f.print.sep = sep
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
	fs.BoolVar(&f.print.key, "print-key", false, "print each record's key before its value")
	fs.BoolVar(&f.print.offset, "print-offset", false, "print each record's offset")
	fs.BoolVar(&f.print.partition, "print-partition", false, "print each record's partition")
	fs.BoolVar(&f.print.timestamp, "print-timestamp", false, "print each record's timestamp")
	fs.StringVar(&f.keySep, "key-separator", `\t`, "separator between printed fields (escapes like \\t are interpreted)")
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
