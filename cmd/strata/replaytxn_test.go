package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/tiering/objstore"
)

// txnReplayBucket writes, as the broker would, a topic "txns" whose one
// segment holds a record outside any transaction, an aborted transaction
// and a committed one (with their markers), and returns the store URL.
func txnReplayBucket(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	url := "file://" + t.TempDir()
	st, err := objstore.Open(ctx, url, objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := partlog.Open(partlog.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ts := time.Now().UnixMilli()
	appendBatch := func(batch []byte) {
		if _, err := l.Append(batch, 1); err != nil {
			t.Fatal(err)
		}
	}
	data := func(pid int64, value string) {
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
		appendBatch(batch)
	}
	end := func(pid int64, commit bool) {
		appendBatch(record.BuildEndTxnMarker(record.EndTxnMarker{ProducerID: pid, Commit: commit}, ts))
	}
	data(-1, "plain")
	data(7, "aborted")
	data(8, "committed")
	end(7, false)
	end(8, true)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	seg, err := l.OpenSealed(0)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	layout := tiering.Layout{Topic: "txns", TopicID: "id-1"}
	meta, err := tiering.UploadSegment(ctx, st, layout, 0, seg, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := tiering.WriteTopicManifest(ctx, st, tiering.TopicManifest{Name: "txns", ID: "id-1", Partitions: 1, ReplicationFactor: 1}, time.Now()); err != nil {
		t.Fatal(err)
	}
	m := tiering.PartitionManifest{Topic: "txns", TopicID: "id-1", LeaderEpoch: 1, Seq: 1, Segments: []tiering.SegmentMeta{meta}}
	if _, err := tiering.WriteManifest(ctx, st, layout, &m, time.Now()); err != nil {
		t.Fatal(err)
	}
	return url
}

func replayedValues(t *testing.T, args ...string) []string {
	t.Helper()
	out := mustStrata(t, "", append([]string{"replay", "--topic", "txns"}, args...)...)
	var values []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r struct{ Value string }
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		values = append(values, r.Value)
	}
	return values
}

// strata replay writes committed records only, unless asked for
// read_uncommitted; markers never.
func TestReplayIsolationLevel(t *testing.T) {
	store := "--object-store=" + txnReplayBucket(t)
	if got, want := replayedValues(t, store), []string{"plain", "committed"}; !slices.Equal(got, want) {
		t.Fatalf("replay: %q, want %q", got, want)
	}
	if got, want := replayedValues(t, store, "--isolation-level", "read_uncommitted"), []string{"plain", "aborted", "committed"}; !slices.Equal(got, want) {
		t.Fatalf("replay --isolation-level read_uncommitted: %q, want %q", got, want)
	}
	if code, _, errOut := strata(t, "", "replay", store, "--topic", "txns", "--isolation-level", "serializable"); code == 0 || !strings.Contains(errOut, "--isolation-level") {
		t.Fatalf("an unknown isolation level: exit %d, %q", code, errOut)
	}
}
