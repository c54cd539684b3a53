package tiering_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/tiering/objstore"
)

// Against MinIO: segments uploaded with their transaction indexes, an
// abort in the segment after its transaction's records, replayed committed
// and uncommitted, and the remote reader's search for a range's aborted
// transactions.
func TestTransactionIndexesInMinIO(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO")
	}
	m := testenv.NewTestMinIO(t, testenv.MinIOOptions{})
	env := m.S3()
	t.Setenv("AWS_ACCESS_KEY_ID", env.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", env.SecretKey)
	ctx := t.Context()
	st, err := objstore.Open(ctx, fmt.Sprintf("s3://%s/txn?endpoint=%s&region=%s", env.Bucket, env.Endpoint, env.Region), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}

	l, err := partlog.Open(partlog.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ts := time.Now().UnixMilli()
	appendBatch := func(batch []byte) int64 {
		res, err := l.Append(batch, 1)
		if err != nil {
			t.Fatal(err)
		}
		return res.FirstOffset
	}
	data := func(pid int64, value string) int64 {
		b := record.NewBuilder(ts, 0)
		if pid >= 0 {
			b.SetProducer(pid, 0, 0)
			b.SetTransactional(true)
		}
		b.Append(&record.Record{Value: []byte(value)})
		batch, err := b.Build(record.None)
		if err != nil {
			t.Fatal(err)
		}
		return appendBatch(batch)
	}
	first := data(7, "aborted-1")
	data(-1, "plain-1")
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	data(7, "aborted-2")
	marker := appendBatch(record.BuildEndTxnMarker(record.EndTxnMarker{ProducerID: 7}, ts))
	data(-1, "plain-2")
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	layout := tiering.Layout{Topic: "txns", TopicID: "id-1"}
	var segs []tiering.SegmentMeta
	for _, s := range l.Segments() {
		if !s.Sealed {
			continue
		}
		seg, err := l.OpenSealed(s.BaseOffset)
		if err != nil {
			t.Fatal(err)
		}
		meta, err := tiering.UploadSegment(ctx, st, layout, 0, seg, 1, time.Now())
		seg.Close()
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, meta)
	}
	if err := tiering.WriteTopicManifest(ctx, st, tiering.TopicManifest{Name: "txns", ID: "id-1", Partitions: 1, ReplicationFactor: 1}, time.Now()); err != nil {
		t.Fatal(err)
	}
	pm := tiering.PartitionManifest{Topic: "txns", TopicID: "id-1", LeaderEpoch: 1, Seq: 1, Segments: segs}
	if _, err := tiering.WriteManifest(ctx, st, layout, &pm, time.Now()); err != nil {
		t.Fatal(err)
	}

	replay := func(opts tiering.ReplayOptions) []string {
		var out []string
		if err := tiering.Replay(ctx, st, "txns", opts, func(_ int32, r *record.Record) error {
			out = append(out, string(r.Value))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got, want := replay(tiering.ReplayOptions{}), []string{"plain-1", "plain-2"}; !slices.Equal(got, want) {
		t.Fatalf("committed replay: %q, want %q", got, want)
	}
	if got, want := replay(tiering.ReplayOptions{ReadUncommitted: true}), []string{"aborted-1", "plain-1", "aborted-2", "plain-2"}; !slices.Equal(got, want) {
		t.Fatalf("uncommitted replay: %q, want %q", got, want)
	}

	r, err := tiering.NewReader(st, tiering.ReaderConfig{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// A read of the first segment only: the abort is in the second.
	found, err := r.AbortedTransactions(context.Background(), segs, 0, 0, segs[0].NextOffset)
	want := []partlog.AbortedTxn{{ProducerID: 7, FirstOffset: first, LastOffset: marker, LastStableOffset: marker + 1}}
	if err != nil || !slices.Equal(found.Aborted, want) || found.Open != nil {
		t.Fatalf("aborted transactions of the first segment: %+v, %v; want %+v, complete", found, err, want)
	}
}
