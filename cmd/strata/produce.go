package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/strata-broker/strata/api/client"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/record"
)

// consoleBatchBytes is the batch size of `strata produce`, Kafka's batch.size default.
const consoleBatchBytes = 16 << 10

// producerFlags are the batching flags shared by produce and bench produce.
type producerFlags struct {
	acks        string
	linger      time.Duration
	batchBytes  int
	maxInFlight int
	compression string
}

func (f *producerFlags) register(fs *pflag.FlagSet, defaultAcks string, defaultBatchBytes int) {
	fs.StringVar(&f.acks, "acks", defaultAcks, "replication to wait for: 0, 1 or all")
	fs.DurationVar(&f.linger, "linger", client.DefaultLinger, "how long a batch waits for more records (0: send at once)")
	fs.IntVar(&f.batchBytes, "batch-bytes", defaultBatchBytes, "maximum size of a record batch (unkeyed records move to another partition with each batch)")
	fs.IntVar(&f.maxInFlight, "max-in-flight", client.DefaultMaxInFlight, "produce requests outstanding at once")
	fs.StringVar(&f.compression, "compression", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
}

func (f *producerFlags) options() (client.ProducerOptions, error) {
	acks, err := client.ParseAcks(f.acks)
	if err != nil {
		return client.ProducerOptions{}, fmt.Errorf("--acks: %w", err)
	}
	codec, err := record.ParseCompression(f.compression)
	if err != nil {
		return client.ProducerOptions{}, fmt.Errorf("--compression: %w", err)
	}
	if f.batchBytes <= 0 {
		return client.ProducerOptions{}, fmt.Errorf("--batch-bytes must be positive")
	}
	if f.linger < 0 {
		return client.ProducerOptions{}, fmt.Errorf("--linger must not be negative")
	}
	linger := f.linger
	if linger == 0 {
		linger = client.NoLinger
	}
	return client.ProducerOptions{
		Acks:        acks,
		Linger:      linger,
		BatchBytes:  f.batchBytes,
		MaxInFlight: f.maxInFlight,
		Compression: codec,
	}, nil
}

func newProduceCmd() *cobra.Command {
	var (
		cf        clientFlags
		pf        producerFlags
		keySep    string
		partition int32
		headers   []string
	)
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Produce records read from stdin, one per line",
		Long: `Produce one record per line of stdin (the line without its "\n" or "\r\n").
With --key-separator, each line is KEY<SEP>VALUE, split at the first SEP; a
line without SEP stops the command with an error naming the line, as Kafka's
console producer does. Lines may be as long as the topic's max.message.bytes.
--header KEY=VALUE (repeatable) adds the same headers to every record.

Everything read is flushed at the end of input (or on SIGINT); the command
exits non-zero if any record failed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := pf.options()
			if err != nil {
				return err
			}
			sep, err := unescape(keySep)
			if err != nil {
				return fmt.Errorf("--key-separator: %w", err)
			}
			hdrs, err := parseHeaders(headers)
			if err != nil {
				return err
			}
			topic := args[0]
			ctx := cmd.Context()
			c, err := cf.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			// Describing first fails fast on an unknown topic, checks
			// --partition and gives the line length limit.
			actx, cancel := adminContext(cmd)
			d, err := c.DescribeTopic(actx, topic)
			cancel()
			if err != nil {
				return err
			}
			if n := int32(len(d.GetPartitions())); partition >= n {
				return fmt.Errorf("--partition %d: topic %s has %d partitions", partition, topic, n)
			}
			if partition < -1 {
				return fmt.Errorf("--partition %d: want a partition number, or -1 for the partitioner's choice", partition)
			}
			if partition < 0 {
				partition = client.AnyPartition
			}
			p := client.NewProducer(c, opts)
			lo := lineOptions{partition: partition, maxBytes: max(maxLineBytes(d)-headersBytes(hdrs), 1), errOut: cmd.ErrOrStderr(), headers: hdrs}
			if sep != "" {
				// Without a separator lines are unkeyed (null keys), not keyed by "".
				lo.keySep = []byte(sep)
			}
			return produceLines(ctx, p, topic, cmd.InOrStdin(), lo)
		},
	}
	cf.register(cmd.Flags())
	// Kafka's console producer default (batch.size=16384): unkeyed lines
	// spread over the partitions as they would from kafka-console-producer.
	pf.register(cmd.Flags(), "all", consoleBatchBytes)
	cmd.Flags().StringVar(&keySep, "key-separator", "", `split each line into key and value at the first occurrence of this string (escapes like \t are interpreted)`)
	cmd.Flags().Int32Var(&partition, "partition", -1, "partition to produce to (default: keyed records by key, others sticky)")
	cmd.Flags().StringArrayVar(&headers, "header", nil, "header KEY=VALUE added to every record (repeatable)")
	return cmd
}

// parseHeaders reads the --header flags, in order: Kafka keeps a record's
// headers ordered and allows a key more than once.
func parseHeaders(flags []string) ([]record.RecordHeader, error) {
	var out []record.RecordHeader
	for _, f := range flags {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--header %q: want KEY=VALUE", f)
		}
		out = append(out, record.RecordHeader{Key: k, Value: []byte(v)})
	}
	return out, nil
}

// headersBytes bounds what headers add to each record: the key and value
// bytes and their varint lengths.
func headersBytes(hs []record.RecordHeader) int {
	n := 0
	for _, h := range hs {
		n += len(h.Key) + len(h.Value) + 2*binary.MaxVarintLen32
	}
	return n
}

// unescape interprets the escapes a separator typed on the command line may
// need (\t, \n, \r, \\ and \xNN); every other character, quotes and lone
// backslashes included, stands for itself.
func unescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case '\\':
			b.WriteByte('\\')
		case 'x':
			if i+3 >= len(s) {
				return "", fmt.Errorf("%q: \\x needs two hex digits", s)
			}
			v, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
			if err != nil {
				return "", fmt.Errorf("%q: \\x needs two hex digits", s)
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			b.WriteByte(c)
			continue
		}
		i++
	}
	return b.String(), nil
}

// maxLineBytes is the longest line a record can be: the topic's
// max.message.bytes when the broker reports it, else what gRPC carries.
//
// max.message.bytes bounds a whole batch, so a one-record batch of a line
// must fit the batch header and the record's own framing too.
func maxLineBytes(d *stratav1.TopicDescription) int {
	limit := client.MaxMessageBytes
	for _, e := range d.GetConfigs() {
		if e.GetName() == "max.message.bytes" {
			if n, err := strconv.Atoi(e.GetValue()); err == nil && n > 0 {
				limit = n
			}
		}
	}
	return max(limit-record.HeaderSize-recordFramingBytes, 1)
}

// recordFramingBytes bounds what a record adds around its key and value:
// length, attributes, timestamp and offset deltas, key and value lengths and
// header count, all varints.
const recordFramingBytes = 32

type lineOptions struct {
	errOut    io.Writer // where failures are reported as they happen
	keySep    []byte    // nil: no keys
	partition int32
	maxBytes  int
	// headers go on every record; the records share the slice, which
	// nothing modifies.
	headers []record.RecordHeader
}

// produceStats counts outcomes; its callback is shared by every record, so
// producing allocates no closure per record.
type produceStats struct {
	mu       sync.Mutex
	ok       int64
	failed   int64
	firstErr error
	errOut   io.Writer
}

func (s *produceStats) callback(_ client.Result, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.ok++
		return
	}
	s.failed++
	if s.firstErr == nil {
		s.firstErr = err
	}
	// Report at once, as kafka-console-producer does: with `tail -f | strata
	// produce` there may be no end of input to report at.
	if s.failed <= maxReportedFailures && s.errOut != nil {
		fmt.Fprintf(s.errOut, "strata: record failed: %s\n", oneLine(plainError(err)))
		if s.failed == maxReportedFailures {
			fmt.Fprintln(s.errOut, "strata: further failures are counted, not printed")
		}
	}
}

// maxReportedFailures bounds the failures printed one by one.
const maxReportedFailures = 10

type lineItem struct {
	number int
	line   []byte
	err    error
}

// produceLines produces every line of in and closes p. It returns an error if
// reading failed, a line was malformed, or a record failed.
func produceLines(ctx context.Context, p *client.Producer, topic string, in io.Reader, o lineOptions) error {
	// Lines are read on their own goroutine so that SIGINT (ctx) is seen
	// while stdin blocks. On an early return the goroutine ends at its next
	// line (or at the process's exit, if stdin never delivers one).
	lines := make(chan lineItem, 64)
	quit := make(chan struct{})
	defer close(quit)
	go readLines(in, o.maxBytes, lines, quit)

	stats := produceStats{errOut: o.errOut}
	var inputErr error
read:
	for {
		select {
		case <-ctx.Done():
			break read
		case item := <-lines:
			if ctx.Err() != nil {
				// Both were ready and select picked the line: the interrupt wins.
				break read
			}
			if errors.Is(item.err, io.EOF) {
				break read
			}
			if item.err != nil {
				inputErr = fmt.Errorf("line %d: %w", item.number, item.err)
				break read
			}
			r := client.Record{Partition: o.partition, Value: item.line, Headers: o.headers}
			if o.keySep != nil {
				key, value, ok := bytes.Cut(item.line, o.keySep)
				if !ok {
					inputErr = fmt.Errorf("line %d: no key separator %q found", item.number, o.keySep)
					break read
				}
				r.Key, r.Value = key, value
			}
			// Not ctx: an interrupt stops reading, it does not fail the record
			// being handed over (Close flushes it).
			p.Produce(context.WithoutCancel(ctx), topic, r, stats.callback)
		}
	}
	if err := p.Close(); err != nil {
		return err
	}
	stats.mu.Lock()
	defer stats.mu.Unlock()
	switch {
	case stats.failed > 0 && inputErr != nil:
		return fmt.Errorf("%w; and %d of %d records failed: %v", inputErr, stats.failed, stats.failed+stats.ok, stats.firstErr)
	case stats.failed > 0:
		return fmt.Errorf("%d of %d records failed: %w", stats.failed, stats.failed+stats.ok, stats.firstErr)
	}
	return inputErr
}

// readLines sends the lines of in, numbered from 1, then an item with the
// error that ended input (io.EOF at the end).
func readLines(in io.Reader, maxBytes int, out chan<- lineItem, quit <-chan struct{}) {
	br := bufio.NewReaderSize(in, 1<<20)
	var buf []byte
	for n := 1; ; n++ {
		line, err := readLine(br, buf[:0], maxBytes)
		buf = line
		item := lineItem{number: n, err: err}
		if err == nil {
			item.line = bytes.Clone(line)
			if item.line == nil {
				item.line = []byte{} // an empty line is an empty value, not null
			}
		}
		select {
		case out <- item:
		case <-quit:
			return
		}
		if err != nil {
			return
		}
	}
}

// readLine reads the next line into buf, without its "\n" or "\r\n". A last
// line without a newline counts; io.EOF means no data was left. A line longer
// than maxBytes is an error.
func readLine(br *bufio.Reader, buf []byte, maxBytes int) ([]byte, error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > maxBytes+2 { // +2: the line ending
			return buf, fmt.Errorf("line longer than %d bytes (the topic's max.message.bytes)", maxBytes)
		}
		buf = append(buf, chunk...)
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(buf) == 0 {
				return buf, io.EOF
			}
			return buf, nil
		case err != nil:
			return buf, err
		}
		buf = buf[:len(buf)-1]
		if n := len(buf); n > 0 && buf[n-1] == '\r' {
			buf = buf[:n-1]
		}
		if len(buf) > maxBytes {
			return buf, fmt.Errorf("line longer than %d bytes (the topic's max.message.bytes)", maxBytes)
		}
		return buf, nil
	}
}
