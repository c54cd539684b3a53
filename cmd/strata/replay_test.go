package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/broker/server"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/tiering/objstore"
)

// replayRecord is a record as produced, and as replay must give it back.
type replayRecord struct {
	partition int32
	offset    int64
	ts        time.Time
	key       []byte // nil: null
	value     []byte // nil: null
	headers   []kgo.RecordHeader
}

// jsonField renders name:v as replay's jsonl does, with encoding/json doing
// the quoting.
func jsonField(name string, v []byte) string {
	if v == nil {
		return fmt.Sprintf("%q:null", name)
	}
	if utf8.Valid(v) {
		s, _ := json.Marshal(string(v))
		return fmt.Sprintf("%q:%s", name, s)
	}
	return fmt.Sprintf("%q:%q", name+"_base64", base64.StdEncoding.EncodeToString(v))
}

// jsonLine is the line replay writes for r.
func (r replayRecord) jsonLine() string {
	var hs []string
	for _, h := range r.headers {
		hs = append(hs, "{"+jsonField("key", []byte(h.Key))+","+jsonField("value", h.Value)+"}")
	}
	return fmt.Sprintf(`{"partition":%d,"offset":%d,"timestamp":%q,%s,%s,"headers":[%s]}`,
		r.partition, r.offset, r.ts.UTC().Format(time.RFC3339Nano), jsonField("key", r.key), jsonField("value", r.value), strings.Join(hs, ","))
}

func jsonLines(recs []replayRecord) string {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(r.jsonLine() + "\n")
	}
	return b.String()
}

// replayBase is the timestamp of the first produced record; each one after
// is a second later.
var replayBase = time.Now().Add(-time.Hour).Truncate(time.Second).Add(123 * time.Millisecond)

// testRecord is the i-th record produced to partition p: keyed, with
// headers, and among them null keys, null values, binary keys and values
// that JSON must escape.
func testRecord(p int32, i int) replayRecord {
	r := replayRecord{partition: p, offset: int64(i), ts: replayBase.Add(time.Duration(i) * time.Second),
		key:     fmt.Appendf(nil, "key-%d-%d", p, i),
		value:   fmt.Appendf(nil, "value %d/%d %s", p, i, strings.Repeat("x", 80)),
		headers: []kgo.RecordHeader{{Key: "seq", Value: fmt.Appendf(nil, "%d", i)}}}
	switch {
	case i%10 == 3:
		r.value = nil // a tombstone
	case i%10 == 5:
		r.key = nil
	case i%10 == 7:
		r.key = []byte{0xff, 0xfe, byte(i)}
		r.value = []byte("\"quoted\"\nand\ttabbed é \x01")
		r.headers = append(r.headers, kgo.RecordHeader{Key: "bin", Value: []byte{0x80, 0x81}}, kgo.RecordHeader{Key: "nil"})
	case i%10 == 9:
		r.headers = nil
	}
	return r
}

// tieredBucket runs a broker with a file:// object store, produces to a
// tiered topic "orders" of two partitions, waits until the bucket holds
// most of it, stops the broker and returns the store's URL and, per
// partition, the records the bucket holds.
func tieredBucket(t *testing.T) (string, [][]replayRecord) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a broker with embedded etcd")
	}
	dir := t.TempDir()
	storeURL := "file://" + filepath.Join(dir, "objects")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan server.Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Config{
			NodeID: 1, DataDir: filepath.Join(dir, "data"), GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", KafkaAddr: "127.0.0.1:0",
			EmbedEtcd: true, EtcdClientAddr: "127.0.0.1:0", ObjectStoreURL: storeURL,
			Settings: map[string]string{"remote.log.manager.task.interval.ms": "50", "log.segment.min.bytes": "1024"},
		}, func(a server.Addrs) { ready <- a })
	}()
	var addrs server.Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("broker exited before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("broker not ready after 60s")
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("broker: %v", err)
			}
		}
	}
	defer stop()

	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs.Kafka.String()), kgo.DefaultProduceTopic("orders"), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cfg := func(v string) *string { return &v }
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, map[string]*string{
		"remote.storage.enable": cfg("true"), "segment.bytes": cfg("1024"), "local.retention.bytes": cfg("1024"),
	}, "orders"); err != nil {
		t.Fatal(err)
	}
	const n = 80
	produced := make([][]replayRecord, 2)
	for i := 0; i < n; i += 8 {
		var recs []*kgo.Record
		for p := range int32(2) {
			for j := i; j < i+8; j++ {
				r := testRecord(p, j)
				produced[p] = append(produced[p], r)
				recs = append(recs, &kgo.Record{Partition: p, Timestamp: r.ts, Key: r.key, Value: r.value, Headers: r.headers})
			}
		}
		res := cl.ProduceSync(ctx, recs...)
		if err := res.FirstErr(); err != nil {
			t.Fatal(err)
		}
		for _, pr := range res {
			if want := int64(testRecordIndex(pr.Record)); pr.Record.Offset != want {
				t.Fatalf("record %d of partition %d has offset %d", want, pr.Record.Partition, pr.Record.Offset)
			}
		}
	}

	objects, err := objstore.Open(ctx, storeURL, objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The topic's manifest is written by partition 0's leader in a tiering
	// round, which may come after the last produce.
	var tm tiering.TopicManifest
	await.NoError(t, 30*time.Second, "the topic in the bucket", func() error {
		tm, err = tiering.FindTopic(ctx, objects, "orders")
		return err
	})
	l := tiering.Layout{Topic: tm.Name, TopicID: tm.ID}
	await.NoError(t, 30*time.Second, "the bucket to hold both partitions", func() error {
		for p := range int32(2) {
			m, _, _, err := tiering.LatestManifest(ctx, objects, l, p)
			if err != nil {
				t.Fatal(err)
			}
			if m.EndOffset() < n-24 {
				return fmt.Errorf("partition %d: the bucket ends at %d", p, m.EndOffset())
			}
		}
		return nil
	})
	cl.Close()
	stop()

	// What the bucket holds, now that nothing writes to it.
	for p := range int32(2) {
		m, _, _, err := tiering.LatestManifest(context.Background(), objects, l, p)
		if err != nil {
			t.Fatal(err)
		}
		if m.LogStartOffset != 0 || len(m.Segments) < 3 {
			t.Fatalf("partition %d: manifest %+v: want several segments from offset 0", p, m)
		}
		produced[p] = produced[p][:m.EndOffset()]
	}
	return storeURL, produced
}

// testRecordIndex recovers i from the "seq" header or the value.
func testRecordIndex(r *kgo.Record) int {
	var p, i int
	if _, err := fmt.Sscanf(string(r.Value), "value %d/%d", &p, &i); err == nil {
		return i
	}
	for _, h := range r.Headers {
		if h.Key == "seq" {
			fmt.Sscanf(string(h.Value), "%d", &i)
		}
	}
	return i
}

func TestReplayReadsTheBucketWithNoBroker(t *testing.T) {
	storeURL, produced := tieredBucket(t)
	all := slices.Concat(produced...)
	store := "--object-store=" + storeURL

	t.Logf("the bucket holds %d and %d records", len(produced[0]), len(produced[1]))
	t.Run("jsonl", func(t *testing.T) {
		code, out, errOut := strata(t, "", "replay", store, "--topic", "orders")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if want := jsonLines(all); out != want {
			t.Fatalf("output:\n%s\nwant:\n%s", out, want)
		}
		for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			if !json.Valid([]byte(line)) {
				t.Fatalf("not JSON: %s", line)
			}
		}
		if !strings.HasPrefix(errOut, fmt.Sprintf("Replayed %d records of topic orders", len(all))) || strings.Contains(errOut, "\r") {
			t.Errorf("stderr %q: want the summary alone (no progress bar on a pipe)", errOut)
		}
	})

	t.Run("ranges", func(t *testing.T) {
		p0, p1 := produced[0], produced[1]
		at := func(p, i int) string { return produced[p][i].ts.Add(-time.Millisecond).Format(time.RFC3339Nano) }
		for _, c := range []struct {
			args []string
			want []replayRecord
		}{
			{[]string{"--partition", "1"}, p1},
			{[]string{"--partition", "1", "--from-offset", "5", "--to-offset", "17"}, p1[5:17]},
			{[]string{"--from-offset", "30"}, slices.Concat(p0[30:], p1[30:])},
			{[]string{"--to-offset", "4"}, slices.Concat(p0[:4], p1[:4])},
			{[]string{"--to-offset", "0"}, nil},
			{[]string{"--partition", "0", "--from-offset", "9", "--to-offset", "9"}, nil},
			{[]string{"--partition", "0", "--from-time", at(0, 12)}, p0[12:]},
			{[]string{"--from-time", at(1, 20), "--to-offset", "25"}, slices.Concat(p0[20:25], p1[20:25])},
			{[]string{"--partition", "1", "--from-time", fmt.Sprint(produced[1][7].ts.UnixMilli())}, p1[7:]},
			{[]string{"--from-time", time.Now().Format(time.RFC3339)}, nil},
		} {
			args := append([]string{"replay", store, "--topic", "orders"}, c.args...)
			if got := mustStrata(t, "", args...); got != jsonLines(c.want) {
				t.Errorf("%s:\n%s\nwant:\n%s", strings.Join(c.args, " "), got, jsonLines(c.want))
			}
		}
	})

	t.Run("arrow", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "orders.arrow")
		mustStrata(t, "", "replay", store, "--topic", "orders", "--format", "arrow", "--output", file)
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		got := readArrowReplay(t, f)
		if len(got) != len(all) {
			t.Fatalf("%d rows, want %d", len(got), len(all))
		}
		for i := range all {
			if g, w := got[i].jsonLine(), all[i].jsonLine(); g != w {
				t.Fatalf("row %d: %s, want %s", i, g, w)
			}
		}
		// Empty ranges still give a stream with the schema.
		out := mustStrata(t, "", "replay", store, "--topic", "orders", "--format", "arrow", "--to-offset", "0")
		if rows := readArrowReplay(t, strings.NewReader(out)); len(rows) != 0 {
			t.Fatalf("%d rows for an empty range", len(rows))
		}
	})

	t.Run("refusals", func(t *testing.T) {
		dir := strings.TrimPrefix(storeURL, "file://")
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"--topic", "nope"}, "strata: nothing of topic nope in file://" + dir + " yet: a broker records a tiered topic (remote.storage.enable=true) there within remote.log.manager.task.interval.ms, and uploads its segments once they are sealed (segment.bytes, segment.ms)\n"},
			{[]string{"--topic", "orders", "--from-offset", "1", "--from-time", "0"}, "strata: --from-offset and --from-time exclude each other\n"},
			{[]string{"--topic", "orders", "--from-offset", "10", "--to-offset", "9"}, "strata: --to-offset 9 is below --from-offset 10\n"},
			{[]string{"--topic", "orders", "--partition", "2"}, "strata: topic orders has no partition 2 (it has 2)\n"},
			{[]string{"--topic", "orders", "--format", "csv"}, "strata: --format \"csv\": want jsonl or arrow\n"},
			{[]string{"--topic", "orders", "--from-time", "yesterday"}, "strata: --from-time \"yesterday\": want an RFC 3339 time (2026-03-01T12:00:00Z) or milliseconds since the epoch\n"},
		} {
			code, out, errOut := strata(t, "", append([]string{"replay", store}, c.args...)...)
			if code != 1 || out != "" || errOut != c.want {
				t.Errorf("%s: exit %d, stdout %q, stderr %q; want %q", strings.Join(c.args, " "), code, out, errOut, c.want)
			}
		}
		code, _, errOut := strata(t, "", "replay", "--object-store", "ftp://host/x", "--topic", "orders")
		if code != 1 || !strings.Contains(errOut, `unsupported scheme "ftp"`) {
			t.Errorf("bad URL: exit %d, stderr %q", code, errOut)
		}
		missing := filepath.Join(t.TempDir(), "missing")
		code, _, errOut = strata(t, "", "replay", "--object-store", "file://"+missing, "--topic", "orders")
		if _, err := os.Stat(missing); code != 1 || !strings.Contains(errOut, "no such directory") || err == nil {
			t.Errorf("missing directory: exit %d, stderr %q, created: %v", code, errOut, err == nil)
		}
		if code, _, errOut := strata(t, "", "replay", store); code != 1 || !strings.Contains(errOut, `"topic" not set`) {
			t.Errorf("no --topic: exit %d, stderr %q", code, errOut)
		}
	})

	// Last: it damages the bucket.
	t.Run("corrupt segment", func(t *testing.T) {
		ctx := context.Background()
		objects, err := objstore.Open(ctx, storeURL, objstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		tm, err := tiering.FindTopic(ctx, objects, "orders")
		if err != nil {
			t.Fatal(err)
		}
		m, _, _, err := tiering.LatestManifest(ctx, objects, tiering.Layout{Topic: tm.Name, TopicID: tm.ID}, 1)
		if err != nil {
			t.Fatal(err)
		}
		seg := m.Segments[1]
		file := filepath.Join(strings.TrimPrefix(storeURL, "file://"), filepath.FromSlash(seg.Key))
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		raw[len(raw)/2] ^= 0x10
		if err := os.WriteFile(file, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "out.jsonl")
		code, _, errOut := strata(t, "", "replay", store, "--topic", "orders", "--output", out)
		if code != 1 || !strings.Contains(errOut, seg.Key) || !strings.Contains(errOut, "corrupt") {
			t.Fatalf("exit %d, stderr %q: want an error naming %s", code, errOut, seg.Key)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("a failed replay left %s behind", out)
		}
		if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "*")); len(leftovers) != 0 {
			t.Errorf("temporary files left: %v", leftovers)
		}
		// Partition 0 is intact and still replays.
		if got := mustStrata(t, "", "replay", store, "--topic", "orders", "--partition", "0"); got != jsonLines(produced[0]) {
			t.Errorf("partition 0 after damage to partition 1:\n%s", got)
		}
	})
}

// readArrowReplay reads replay's Arrow stream back into records.
func readArrowReplay(t *testing.T, r io.Reader) []replayRecord {
	t.Helper()
	rd, err := ipc.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Release()
	if !rd.Schema().Equal(replayArrowSchema) {
		t.Fatalf("schema %s, want %s", rd.Schema(), replayArrowSchema)
	}
	bin := func(a *array.Binary, i int) []byte {
		if a.IsNull(i) {
			return nil
		}
		return slices.Clone(a.Value(i))
	}
	var out []replayRecord
	for rd.Next() {
		rec := rd.Record()
		if rec.NumRows() > arrowBatchRows {
			t.Fatalf("a batch of %d rows", rec.NumRows())
		}
		parts := rec.Column(0).(*array.Int32)
		offs := rec.Column(1).(*array.Int64)
		tss := rec.Column(2).(*array.Timestamp)
		keys := rec.Column(3).(*array.Binary)
		vals := rec.Column(4).(*array.Binary)
		hdrs := rec.Column(5).(*array.List)
		hstruct := hdrs.ListValues().(*array.Struct)
		hk, hv := hstruct.Field(0).(*array.String), hstruct.Field(1).(*array.Binary)
		for i := range int(rec.NumRows()) {
			r := replayRecord{partition: parts.Value(i), offset: offs.Value(i),
				ts: tss.Value(i).ToTime(arrow.Millisecond), key: bin(keys, i), value: bin(vals, i)}
			start, end := hdrs.ValueOffsets(i)
			for j := int(start); j < int(end); j++ {
				r.headers = append(r.headers, kgo.RecordHeader{Key: hk.Value(j), Value: bin(hv, j)})
			}
			out = append(out, r)
		}
	}
	if err := rd.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The progress bar redraws one line in place and ends it when done.
func TestReplayProgressBar(t *testing.T) {
	var buf strings.Builder
	bar := newProgressBar(&buf, 3000, 4<<20)
	for range 3000 {
		bar.recordDone()
	}
	bar.segmentDone(1 << 20)
	bar.last = time.Time{} // a redraw is due
	bar.segmentDone(3 << 20)
	bar.finish()
	out := buf.String()
	lines := strings.Split(out, "\r")
	if len(lines) < 3 || lines[0] != "" || !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("output %q: want lines redrawn with \\r and one newline at the end", out)
	}
	last := lines[len(lines)-1]
	if !strings.Contains(last, "[==============================] 100%") || !strings.Contains(last, "3000/~3000 records") || !strings.Contains(last, "4.0 MiB/4.0 MiB") {
		t.Fatalf("final line %q", last)
	}
}
