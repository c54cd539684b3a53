package tiering

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestManifestKeysSortByEpochThenSequence(t *testing.T) {
	l := Layout{Topic: "orders/eu", TopicID: "id"}
	keys := []string{l.ManifestKey(0, 2, 11), l.ManifestKey(0, 10, 0), l.ManifestKey(0, 2, 9)}
	for i, k := range keys {
		e, s, ok := ParseManifestKey(k)
		if !ok {
			t.Fatalf("key %q does not parse", k)
		}
		t.Logf("%d: %s → epoch %d seq %d", i, k, e, s)
	}
	if !(keys[2] < keys[0] && keys[0] < keys[1]) {
		t.Fatalf("keys do not sort by (epoch, seq): %q", keys)
	}
	if !strings.HasPrefix(l.TopicPrefix(), "topics/orders%2Feu/") {
		t.Fatalf("topic name not escaped: %s", l.TopicPrefix())
	}
	if _, _, ok := ParseManifestKey("topics/x/id/0/manifests/junk.json"); ok {
		t.Fatal("a foreign key parsed as a manifest key")
	}
}

func TestSegmentForAndValidate(t *testing.T) {
	m := PartitionManifest{Version: ManifestVersion, LogStartOffset: 10, Segments: []SegmentMeta{
		{BaseOffset: 10, NextOffset: 20, Key: "a", IndexKey: "ai"},
		{BaseOffset: 15, NextOffset: 30, Key: "b", IndexKey: "bi"}, // overlaps: a new leader's boundaries
		{BaseOffset: 40, NextOffset: 50, Key: "c", IndexKey: "ci"}, // a gap (compacted away)
	}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		offset int64
		want   int
	}{{5, -1}, {10, 0}, {19, 0}, {20, 1}, {29, 1}, {30, 2}, {45, 2}, {50, -1}} {
		if got := m.SegmentFor(c.offset); got != c.want {
			t.Errorf("SegmentFor(%d) = %d, want %d", c.offset, got, c.want)
		}
	}
	if m.EndOffset() != 50 {
		t.Fatalf("end offset %d", m.EndOffset())
	}
	bad := m
	bad.Segments = append(bad.Segments[:0:0], m.Segments...)
	bad.Segments[2].NextOffset = 25 // ends before the one before it
	if err := bad.Validate(); err == nil {
		t.Fatal("a segment ending before its predecessor passed validation")
	}
	raw, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeManifest(raw)
	if err != nil || len(back.Segments) != 3 || back.Segments[1].Key != "b" {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	if _, err := DecodeManifest([]byte(`{"version": 1, "segments": [{"base": 5, "next": 3}]}`)); err == nil {
		t.Fatal("a corrupt manifest decoded")
	}
}

// A manifest naming a transaction index is written at the version older
// brokers refuse (they would drop the field and collect the index
// objects); one naming none stays at the version they read. Both versions
// are read back whole, and a version-1 manifest naming an index (written
// before the bump) still reads.
func TestManifestVersionFollowsTransactionIndexes(t *testing.T) {
	plain := PartitionManifest{LogStartOffset: 0, Segments: []SegmentMeta{
		{BaseOffset: 0, NextOffset: 10, Key: "a", IndexKey: "ai"},
	}}
	withTxn := PartitionManifest{LogStartOffset: 0, Segments: []SegmentMeta{
		{BaseOffset: 0, NextOffset: 10, Key: "a", IndexKey: "ai"},
		{BaseOffset: 10, NextOffset: 20, Key: "b", IndexKey: "bi", TxnIndexKey: "bt"},
	}}
	for _, c := range []struct {
		name    string
		m       PartitionManifest
		version int
	}{{"no transaction index", plain, ManifestVersion}, {"a transaction index", withTxn, ManifestVersionTxn}} {
		raw, err := c.m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		var head struct {
			Version int `json:"version"`
		}
		if err := json.Unmarshal(raw, &head); err != nil || head.Version != c.version {
			t.Fatalf("%s: stored version %d (%v), want %d", c.name, head.Version, err, c.version)
		}
		back, err := DecodeManifest(raw)
		if err != nil || !reflect.DeepEqual(back.Segments, c.m.Segments) || back.Version != c.version {
			t.Fatalf("%s: round trip %+v, %v", c.name, back, err)
		}
	}
	old := []byte(`{"version": 1, "segments": [{"base": 0, "next": 10, "key": "a", "index_key": "ai", "txn_index_key": "at"}]}`)
	if m, err := DecodeManifest(old); err != nil || m.Segments[0].TxnIndexKey != "at" {
		t.Fatalf("a version-1 manifest naming an index: %+v, %v", m, err)
	}
	if _, err := DecodeManifest([]byte(`{"version": 3, "segments": []}`)); err == nil {
		t.Fatal("a manifest of an unknown version decoded")
	}
}
