package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/spf13/cobra"

	"github.com/strata-broker/strata/api/client"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/tiering/objstore"
)

// arrowBatchRows is how many records go into one Arrow record batch: large
// enough for columnar readers to work well, small enough to stream.
const arrowBatchRows = 10_000

type replayFlags struct {
	objectStore string
	topic       string
	partition   int32
	fromOffset  int64
	fromTime    string
	toOffset    int64
	format      string
	output      string
	// isolationLevel: read_committed (the default) or read_uncommitted.
	isolationLevel string
	// client reaches a broker of the topic's cluster, asked only when
	// --bootstrap-server or its variable names one: the summary then says
	// how far each partition's log goes beyond the bucket.
	client clientFlags
}

// options checks the flags and turns them into replay options; empty is
// true when the range asked for holds no offset (--to-offset equal to the
// start).
func (f *replayFlags) options(changed func(string) bool) (opts tiering.ReplayOptions, empty bool, err error) {
	if f.format != "jsonl" && f.format != "arrow" {
		return opts, false, fmt.Errorf("--format %q: want jsonl or arrow", f.format)
	}
	switch f.isolationLevel {
	case "", "read_committed":
	case "read_uncommitted":
		opts.ReadUncommitted = true
	default:
		return opts, false, fmt.Errorf("--isolation-level %q: want read_committed or read_uncommitted", f.isolationLevel)
	}
	if f.partition < -1 {
		return opts, false, fmt.Errorf("--partition %d: want a partition number >= 0", f.partition)
	}
	if f.partition >= 0 {
		opts.Partitions = []int32{f.partition}
	}
	if changed("from-offset") && changed("from-time") {
		return opts, false, errors.New("--from-offset and --from-time exclude each other")
	}
	if f.fromOffset < 0 {
		return opts, false, fmt.Errorf("--from-offset %d: want an offset >= 0", f.fromOffset)
	}
	opts.From = f.fromOffset
	if changed("from-time") {
		if opts.FromTime, err = parseReplayTime(f.fromTime); err != nil {
			return opts, false, err
		}
	}
	if changed("to-offset") {
		switch {
		case f.toOffset < 0:
			return opts, false, fmt.Errorf("--to-offset %d: want an offset >= 0", f.toOffset)
		case f.toOffset < f.fromOffset:
			return opts, false, fmt.Errorf("--to-offset %d is below --from-offset %d", f.toOffset, f.fromOffset)
		case f.toOffset == f.fromOffset:
			return opts, true, nil
		}
		opts.To = f.toOffset
	}
	return opts, false, nil
}

// parseReplayTime parses --from-time: RFC 3339 (2026-03-01T12:00:00Z) or
// milliseconds since the epoch, as Kafka's timestamps are.
func parseReplayTime(s string) (time.Time, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil && ms >= 0 {
		return time.UnixMilli(ms), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--from-time %q: want an RFC 3339 time (2026-03-01T12:00:00Z) or milliseconds since the epoch", s)
	}
	return t, nil
}

func newReplayCmd() *cobra.Command {
	var f replayFlags
	cmd := &cobra.Command{
		Use:   "replay --object-store URL --topic TOPIC",
		Short: "Read a tiered topic's records straight from the object store, with no broker",
		Long: `Read the records of a tiered topic (remote.storage.enable=true) straight from
its object store, with no broker running: from the newest incarnation of the
topic in the bucket, every partition in turn (or --partition), each in offset
order, as far as the partition's newest manifest reaches. Records still only
on a broker's disk are not in the bucket and not read.

Every segment object is checked against the CRC-32C its manifest recorded; a
damaged one stops the replay with an error naming its key, and none of its
records are written. Transaction markers are never written. By default only
committed records are (and those written outside transactions): the records
of aborted transactions are left out, by the aborted-transaction index each
segment carries, and a partition stops before the first transaction whose
outcome is not in the bucket yet (its marker is still only on a broker's
disk). --isolation-level read_uncommitted writes every record.

--from-time starts each partition at its first record whose timestamp is at
or after the time (as Kafka's offsets-for-times does); all records after it
follow, whatever their timestamps.

Output (stdout, or --output FILE, written whole or not at all):
  jsonl  one JSON object per line:
         {"partition":0,"offset":12,"timestamp":"2026-03-01T12:00:00.123Z",
          "key":"k","value":"v","headers":[{"key":"h","value":"x"}]}
         The timestamp is RFC 3339 in UTC. A key, value or header that is
         valid UTF-8 is a string; otherwise it is base64 in a field named
         with a _base64 suffix instead ("key_base64", "value_base64"). A null
         key or value is null.
  arrow  an Arrow IPC stream with the columns partition int32, offset int64,
         timestamp timestamp[ms, UTC], key binary, value binary (null for a
         null key or value) and headers list<struct<key: utf8, value:
         binary>>, in record batches of 10000 rows.

On a terminal, a progress bar on stderr counts records and bytes against the
manifests' totals for the range. At the end, stderr gives each partition's
last offset in the bucket (or that nothing of it is there yet: only sealed
segments are uploaded). With --bootstrap-server (or $STRATA_BOOTSTRAP_SERVER)
it also asks that cluster's broker for each partition's high watermark and
says how far the log goes beyond the bucket, if the cluster's topic is the
bucket's incarnation; no broker is asked otherwise.

The object store URL is as for 'strata broker --object-store':
s3://BUCKET/PREFIX?endpoint=URL&region=R with credentials from the AWS
environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...), or
file:///DIR.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReplay(cmd, &f)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.objectStore, "object-store", "", "the bucket: s3://BUCKET/PREFIX?endpoint=URL&region=R or file:///DIR (required)")
	fs.StringVar(&f.topic, "topic", "", "the topic to read (required)")
	fs.Int32Var(&f.partition, "partition", -1, "read only this partition (-1: all, one after the other)")
	fs.Int64Var(&f.fromOffset, "from-offset", 0, "first offset to read in each partition")
	fs.StringVar(&f.fromTime, "from-time", "", "start each partition at its first record at or after this time: RFC 3339 or milliseconds since the epoch")
	fs.Int64Var(&f.toOffset, "to-offset", -1, "stop before this offset in each partition (-1: the end of the bucket's log)")
	fs.StringVar(&f.format, "format", "jsonl", "output format: jsonl (keys, values and headers as UTF-8 strings, or base64 in key_base64/value_base64 when not UTF-8) or arrow (an Arrow IPC stream)")
	fs.StringVar(&f.output, "output", "", "write to this file instead of stdout")
	fs.StringVar(&f.isolationLevel, "isolation-level", "read_committed", "read_committed: only records of committed transactions (and those outside any); read_uncommitted: every record")
	f.client.register(fs)
	fs.Lookup("bootstrap-server").Usage = "also ask a broker of the topic's cluster (gRPC HOST:PORT, default $" + bootstrapEnv + ") how far each partition's log goes beyond the bucket; no broker is asked without it"
	cmd.MarkFlagRequired("object-store")
	cmd.MarkFlagRequired("topic")
	return cmd
}

func runReplay(cmd *cobra.Command, f *replayFlags) error {
	opts, empty, err := f.options(cmd.Flags().Changed)
	if err != nil {
		return err
	}
	if f.topic == "" {
		return errors.New("--topic must not be empty")
	}
	ctx := cmd.Context()
	if err := checkLocalStoreExists(f.objectStore); err != nil {
		return err
	}
	st, err := objstore.Open(ctx, f.objectStore, objstore.Options{})
	if err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()
	var bar *progressBar
	opts.OnSegment = func(_ int32, seg tiering.SegmentMeta) {
		if bar != nil {
			bar.segmentDone(seg.Size)
		}
	}
	plan, err := tiering.PlanReplay(ctx, st, f.topic, opts)
	if errors.Is(err, tiering.ErrNoTopic) {
		// Not "not found": a topic just created is not in the bucket yet
		// either, and that is the first thing a user trying tiering meets.
		return fmt.Errorf("nothing of topic %s in %s yet: a broker records a tiered topic (remote.storage.enable=true) there within remote.log.manager.task.interval.ms, and uploads its segments once they are sealed (segment.bytes, segment.ms)", f.topic, st)
	}
	if err != nil {
		return err
	}
	if empty {
		plan.Partitions = nil
	}

	out, commit, abort, err := openReplayOutput(cmd, f)
	if err != nil {
		return err
	}
	defer abort()
	var sink recordSink
	if f.format == "arrow" {
		sink = newArrowSink(out)
	} else {
		sink = newJSONLSink(out)
	}
	if isTerminal(stderr) {
		bar = newProgressBar(stderr, plan.Offsets(), plan.Bytes())
	}
	var n int64
	err = plan.Run(ctx, st, func(p int32, r *record.Record) error {
		n++
		if bar != nil {
			bar.recordDone()
		}
		return sink.write(p, r)
	})
	if bar != nil {
		bar.finish()
	}
	if err != nil {
		return err
	}
	if err := sink.close(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if err := commit(); err != nil {
		return err
	}
	segments := 0
	for _, pr := range plan.Partitions {
		segments += len(pr.Segments)
	}
	fmt.Fprintf(stderr, "Replayed %d records of topic %s (id %s) from %d segments\n", n, plan.Topic.Name, plan.Topic.ID, segments)
	var logEnds map[int32]int64
	if len(plan.Partitions) > 0 && (cmd.Flags().Changed("bootstrap-server") || os.Getenv(bootstrapEnv) != "") {
		var note string
		logEnds, note = f.brokerLogEnds(ctx, plan)
		if note != "" {
			fmt.Fprintln(stderr, note)
		}
	}
	writeReplaySummary(stderr, plan, logEnds)
	return nil
}

// brokerAskTimeout bounds the summary's question to the broker: the
// records are written by then, and a broker that does not answer must not
// hold the command.
const brokerAskTimeout = 10 * time.Second

// brokerLogEnds asks the broker for the high watermark of each partition
// of the plan. When it cannot, or its topic of that name is another
// incarnation than the bucket's, it returns no offsets and a note saying
// why: the replay itself succeeded.
func (f *replayFlags) brokerLogEnds(ctx context.Context, plan *tiering.ReplayPlan) (map[int32]int64, string) {
	ctx, cancel := context.WithTimeout(ctx, brokerAskTimeout)
	defer cancel()
	addr := f.client.addr()
	c, err := f.client.dial(ctx)
	if err != nil {
		return nil, fmt.Sprintf("The broker at %s was not asked how far its log goes: %s", addr, plainError(err))
	}
	defer c.Close()
	desc, err := c.DescribeTopic(ctx, plan.Topic.Name)
	if err != nil {
		return nil, fmt.Sprintf("The broker at %s did not describe topic %s: %s", addr, plan.Topic.Name, plainError(err))
	}
	if desc.GetTopicId() != plan.Topic.ID {
		return nil, fmt.Sprintf("The cluster at %s has another topic %s (id %s), not the bucket's: its log is not compared", addr, plan.Topic.Name, desc.GetTopicId())
	}
	parts := make([]int32, 0, len(plan.Partitions))
	for _, pr := range plan.Partitions {
		parts = append(parts, pr.Partition)
	}
	ends, err := c.ListOffsets(ctx, plan.Topic.Name, parts, client.OffsetLatest)
	if err != nil {
		return nil, fmt.Sprintf("The broker at %s did not give the log end offsets of %s: %s", addr, plan.Topic.Name, plainError(err))
	}
	return ends, ""
}

// writeReplaySummary gives each partition's last offset in the bucket and,
// with the broker's high watermarks, how far its log goes beyond it: what
// is still only on the brokers' disks, which replay cannot read.
func writeReplaySummary(w io.Writer, plan *tiering.ReplayPlan, logEnds map[int32]int64) {
	for _, pr := range plan.Partitions {
		last, ok := pr.LastOffset()
		end, known := logEnds[pr.Partition]
		switch {
		case !ok && known:
			fmt.Fprintf(w, "  partition %d: nothing in the bucket yet; the broker's high watermark is %d\n", pr.Partition, end)
		case !ok:
			fmt.Fprintf(w, "  partition %d: nothing in the bucket yet (only sealed segments are uploaded)\n", pr.Partition)
		case known:
			fmt.Fprintf(w, "  partition %d: last offset in the bucket %d; the broker's log goes %d offsets beyond it (high watermark %d)\n",
				pr.Partition, last, max(0, end-last-1), end)
		default:
			fmt.Fprintf(w, "  partition %d: last offset in the bucket %d\n", pr.Partition, last)
		}
	}
}

// checkLocalStoreExists refuses a file:// store whose directory does not
// exist: opening one would create it, and a reader should not.
func checkLocalStoreExists(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "file" || u.Path == "" {
		return nil // objstore.Open says what is wrong
	}
	if _, err := os.Stat(u.Path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("object store %s: no such directory", u.Redacted())
	}
	return nil
}

// openReplayOutput returns where the records go: stdout, or with --output a
// temporary file beside FILE that commit renames into place and abort
// removes, so FILE is complete or untouched.
func openReplayOutput(cmd *cobra.Command, f *replayFlags) (w io.Writer, commit func() error, abort func(), err error) {
	if f.output == "" || f.output == "-" {
		stdout := cmd.OutOrStdout()
		if f.format == "arrow" && isTerminal(stdout) {
			return nil, nil, nil, errors.New("not writing an Arrow stream to a terminal: use --output FILE or a pipe")
		}
		return stdout, func() error { return nil }, func() {}, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.output), "."+filepath.Base(f.output)+".tmp-*")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--output: %w", err)
	}
	done := false
	commit = func() error {
		done = true
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			return fmt.Errorf("--output: %w", err)
		}
		if err := tmp.Close(); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("--output: %w", err)
		}
		if err := os.Rename(tmp.Name(), f.output); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("--output: %w", err)
		}
		return nil
	}
	abort = func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}
	return tmp, commit, abort, nil
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// recordSink writes replayed records in one output format.
type recordSink interface {
	write(partition int32, r *record.Record) error
	// close writes what is buffered and ends the output.
	close() error
}

// jsonlSink writes one JSON object per line.
type jsonlSink struct {
	w   *bufio.Writer
	buf []byte
}

func newJSONLSink(w io.Writer) *jsonlSink { return &jsonlSink{w: bufio.NewWriterSize(w, 256<<10)} }

func (s *jsonlSink) write(partition int32, r *record.Record) error {
	s.buf = appendJSONRecord(s.buf[:0], partition, r)
	_, err := s.w.Write(s.buf)
	return err
}

func (s *jsonlSink) close() error { return s.w.Flush() }

// appendJSONRecord appends one record's JSON line to b.
func appendJSONRecord(b []byte, partition int32, r *record.Record) []byte {
	b = append(b, `{"partition":`...)
	b = strconv.AppendInt(b, int64(partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, r.Offset, 10)
	b = append(b, `,"timestamp":"`...)
	b = time.UnixMilli(r.Timestamp).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"', ',')
	b = appendJSONBytes(b, "key", r.Key)
	b = append(b, ',')
	b = appendJSONBytes(b, "value", r.Value)
	b = append(b, `,"headers":[`...)
	for i, h := range r.Headers {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		b = appendJSONBytes(b, "key", []byte(h.Key))
		b = append(b, ',')
		b = appendJSONBytes(b, "value", h.Value)
		b = append(b, '}')
	}
	return append(b, ']', '}', '\n')
}

// appendJSONBytes appends the field name:v, v as a string when it is valid
// UTF-8, else as base64 under name_base64; nil is null.
func appendJSONBytes(b []byte, name string, v []byte) []byte {
	switch {
	case v == nil:
		b = appendJSONString(b, name)
		return append(b, ":null"...)
	case utf8.Valid(v):
		b = appendJSONString(b, name)
		b = append(b, ':')
		return appendJSONString(b, v)
	default:
		b = appendJSONString(b, name+"_base64")
		b = append(b, ':', '"')
		b = base64.StdEncoding.AppendEncode(b, v)
		return append(b, '"')
	}
}

// appendJSONString appends s, valid UTF-8, as a JSON string.
func appendJSONString[S string | []byte](b []byte, s S) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c >= 0x20:
			b = append(b, c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
	}
	return append(b, '"')
}

// replayArrowSchema is the schema of `strata replay --format arrow`.
var replayArrowSchema = arrow.NewSchema([]arrow.Field{
	{Name: "partition", Type: arrow.PrimitiveTypes.Int32},
	{Name: "offset", Type: arrow.PrimitiveTypes.Int64},
	{Name: "timestamp", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
	{Name: "key", Type: arrow.BinaryTypes.Binary, Nullable: true},
	{Name: "value", Type: arrow.BinaryTypes.Binary, Nullable: true},
	{Name: "headers", Type: arrow.ListOf(arrow.StructOf(
		arrow.Field{Name: "key", Type: arrow.BinaryTypes.String},
		arrow.Field{Name: "value", Type: arrow.BinaryTypes.Binary, Nullable: true},
	))},
}, nil)

// arrowSink writes an Arrow IPC stream, arrowBatchRows records a batch.
type arrowSink struct {
	w    *ipc.Writer
	b    *array.RecordBuilder
	rows int

	partition *array.Int32Builder
	offset    *array.Int64Builder
	timestamp *array.TimestampBuilder
	key       *array.BinaryBuilder
	value     *array.BinaryBuilder
	headers   *array.ListBuilder
	header    *array.StructBuilder
	hKey      *array.StringBuilder
	hValue    *array.BinaryBuilder
}

func newArrowSink(w io.Writer) *arrowSink {
	mem := memory.NewGoAllocator()
	b := array.NewRecordBuilder(mem, replayArrowSchema)
	s := &arrowSink{
		w: ipc.NewWriter(w, ipc.WithSchema(replayArrowSchema), ipc.WithAllocator(mem)),
		b: b,

		partition: b.Field(0).(*array.Int32Builder),
		offset:    b.Field(1).(*array.Int64Builder),
		timestamp: b.Field(2).(*array.TimestampBuilder),
		key:       b.Field(3).(*array.BinaryBuilder),
		value:     b.Field(4).(*array.BinaryBuilder),
		headers:   b.Field(5).(*array.ListBuilder),
	}
	s.header = s.headers.ValueBuilder().(*array.StructBuilder)
	s.hKey = s.header.FieldBuilder(0).(*array.StringBuilder)
	s.hValue = s.header.FieldBuilder(1).(*array.BinaryBuilder)
	return s
}

func appendNullable(b *array.BinaryBuilder, v []byte) {
	if v == nil {
		b.AppendNull()
	} else {
		b.Append(v)
	}
}

func (s *arrowSink) write(partition int32, r *record.Record) error {
	s.partition.Append(partition)
	s.offset.Append(r.Offset)
	s.timestamp.Append(arrow.Timestamp(r.Timestamp))
	appendNullable(s.key, r.Key)
	appendNullable(s.value, r.Value)
	s.headers.Append(true)
	for _, h := range r.Headers {
		s.header.Append(true)
		s.hKey.Append(h.Key)
		appendNullable(s.hValue, h.Value)
	}
	if s.rows++; s.rows == arrowBatchRows {
		return s.flush()
	}
	return nil
}

func (s *arrowSink) flush() error {
	rec := s.b.NewRecord()
	defer rec.Release()
	s.rows = 0
	return s.w.Write(rec)
}

func (s *arrowSink) close() error {
	defer s.b.Release()
	if s.rows > 0 {
		if err := s.flush(); err != nil {
			return err
		}
	}
	return s.w.Close()
}

// progressBar draws records and bytes done against the plan's totals on
// one terminal line, at most ten times a second.
type progressBar struct {
	w                   io.Writer
	totalRecs, totalLen int64
	recs, bytes         int64
	start, last         time.Time
}

func newProgressBar(w io.Writer, totalRecords, totalBytes int64) *progressBar {
	p := &progressBar{w: w, totalRecs: totalRecords, totalLen: totalBytes, start: time.Now()}
	p.draw()
	return p
}

func (p *progressBar) recordDone() {
	if p.recs++; p.recs%1024 == 0 {
		p.maybeDraw()
	}
}

func (p *progressBar) segmentDone(size int64) {
	p.bytes += size
	p.maybeDraw()
}

func (p *progressBar) maybeDraw() {
	if time.Since(p.last) >= 100*time.Millisecond {
		p.draw()
	}
}

func (p *progressBar) draw() {
	p.last = time.Now()
	const width = 30
	frac := 1.0
	if p.totalLen > 0 {
		frac = min(1, float64(p.bytes)/float64(p.totalLen))
	}
	filled := int(frac * width)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	fmt.Fprintf(p.w, "\r[%s] %3.0f%%  %d/~%d records  %s/%s  %s\x1b[K", bar, frac*100,
		p.recs, p.totalRecs, replaySize(p.bytes), replaySize(p.totalLen), time.Since(p.start).Round(time.Second))
}

func (p *progressBar) finish() {
	p.draw()
	fmt.Fprintln(p.w)
}

// replaySize formats n in binary units, for the progress bar.
func replaySize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
