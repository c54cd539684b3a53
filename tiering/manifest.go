// Package tiering keeps sealed log segments in an object store and reads
// them back. The bucket describes itself: with the key layout below, a
// topic can be listed, replayed and restored from the bucket alone, and
// etcd holds no per-segment records.
//
// # Key layout (under the object store's prefix)
//
//	topics/<topic>/<topic-id>/topic.json
//	    TopicManifest: name, id, partition count, replication factor, configs.
//	topics/<topic>/<topic-id>/<partition>/manifests/<epoch>-<seq>.json
//	    PartitionManifest: the partition's remote segments, in offset order,
//	    and its remote log start. The newest is the one with the highest
//	    (leader epoch, sequence); both are zero-padded so keys sort that way.
//	topics/<topic>/<topic-id>/<partition>/segments/<base>-<epoch>-<nonce>.log
//	    a sealed segment, byte for byte the local .log file (record batches v2)
//	.../segments/<base>-<epoch>-<nonce>.index, .timeindex and .txnindex
//	    its offset, time and aborted-transaction indexes, as on local disk
//	    (with their CRC trailer); manifests written before transactions
//	    existed name no .txnindex
//
// Segment objects are never overwritten: their keys carry the uploading
// leader's epoch and a random nonce. A manifest is a new object each time,
// named by the writer's leader epoch and a sequence, so a deposed leader
// (lower epoch) can neither overwrite nor outrank its successor's
// manifests; objects it uploaded that no winning manifest names are
// garbage, found by listing and deleted.
//
// A deleted topic incarnation's prefix is deleted whole, topic.json last
// (a prefix half deleted is still recognisable), by the broker's topic
// deleter, from a record etcd keeps until it is done; never because etcd
// does not know the topic, so a bucket outliving its etcd can be restored.
package tiering

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Manifest format versions. A partition manifest naming a transaction
// index is written as ManifestVersionTxn, so that a broker reading only
// ManifestVersion refuses it: accepting it, that broker would drop the
// field on its next write and then garbage-collect the index objects as
// named by no manifest. Every other manifest, and every topic manifest,
// stays at ManifestVersion, which older brokers read. Both are read.
const (
	ManifestVersion    = 1
	ManifestVersionTxn = 2
)

// SegmentMeta is one remote segment.
type SegmentMeta struct {
	BaseOffset   int64 `json:"base"`
	NextOffset   int64 `json:"next"` // the offset after its last batch
	Size         int64 `json:"size"`
	MaxTimestamp int64 `json:"max_ts"`
	// LeaderEpoch is the epoch of the leader that uploaded it.
	LeaderEpoch int32 `json:"epoch"`
	// Epochs are the leader epochs whose records the segment holds, with the
	// first offset of each, for divergence checks after a restore.
	Epochs []EpochStart `json:"epochs,omitempty"`
	// Key, IndexKey and TimeIndexKey are object keys under the store.
	Key          string `json:"key"`
	IndexKey     string `json:"index_key"`
	TimeIndexKey string `json:"time_index_key"`
	// TxnIndexKey is the segment's aborted-transaction index, the local
	// .txnindex byte for byte (see partlog.DecodeTxnIndex). Empty for a
	// segment uploaded before transactions existed, or written by remote
	// compaction: read as having no aborted transaction and none open at
	// its ends, which is what such a segment holds.
	TxnIndexKey string `json:"txn_index_key,omitempty"`
	// CRC32C is of the whole .log object (Castagnoli), checked by readers of
	// whole segments; ranged reads check each batch's own CRC.
	CRC32C     uint32    `json:"crc32c"`
	UploadedAt time.Time `json:"uploaded_at"`
}

// EpochStart is a leader epoch and the first offset written in it.
type EpochStart struct {
	Epoch       int32 `json:"epoch"`
	StartOffset int64 `json:"start"`
}

// PartitionManifest lists a partition's remote segments.
type PartitionManifest struct {
	Version   int    `json:"version"`
	Topic     string `json:"topic"`
	TopicID   string `json:"topic_id"`
	Partition int32  `json:"partition"`
	// LeaderEpoch and Seq name the manifest: the writer's leader epoch and
	// its sequence within the epoch.
	LeaderEpoch int32 `json:"leader_epoch"`
	Seq         int64 `json:"seq"`
	// LogStartOffset is the first offset still served from the bucket;
	// segments wholly below it are deleted (the manifest first).
	LogStartOffset int64 `json:"log_start_offset"`
	// CompactedTo, for a compacted topic, is where the remote segments'
	// dirty section starts: below it they hold at most one record per key
	// (the remote cleaner offset).
	CompactedTo int64         `json:"compacted_to,omitempty"`
	Segments    []SegmentMeta `json:"segments"`
	WrittenAt   time.Time     `json:"written_at"`
}

// EndOffset is the offset after the last remote segment (the log start when
// there is none).
func (m *PartitionManifest) EndOffset() int64 {
	if len(m.Segments) == 0 {
		return m.LogStartOffset
	}
	return m.Segments[len(m.Segments)-1].NextOffset
}

// Bytes is the size of the remote segments.
func (m *PartitionManifest) Bytes() int64 {
	var n int64
	for _, s := range m.Segments {
		n += s.Size
	}
	return n
}

// SegmentFor returns the index of the segment holding offset, or -1.
func (m *PartitionManifest) SegmentFor(offset int64) int {
	if offset < m.LogStartOffset {
		return -1
	}
	lo, hi := 0, len(m.Segments)
	for lo < hi {
		mid := (lo + hi) / 2
		if m.Segments[mid].NextOffset <= offset {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < len(m.Segments) && m.Segments[lo].BaseOffset <= offset {
		return lo
	}
	// In a gap left by a compaction or an empty range: the next segment
	// holds the first offset at or after it.
	if lo < len(m.Segments) {
		return lo
	}
	return -1
}

// Validate checks the manifest's own consistency: segments in order, each
// ending after the one before, each with keys. Segments may overlap: a new
// leader's segment boundaries need not match its predecessor's, and its
// first upload can start below the remote end; a read of an offset both
// hold is served by the earlier one.
func (m *PartitionManifest) Validate() error {
	if m.Version != ManifestVersion && m.Version != ManifestVersionTxn {
		return fmt.Errorf("manifest version %d (this broker reads %d and %d)", m.Version, ManifestVersion, ManifestVersionTxn)
	}
	prev := int64(-1)
	for i, s := range m.Segments {
		switch {
		case s.NextOffset <= s.BaseOffset:
			return fmt.Errorf("segment %d: next offset %d not after base %d", i, s.NextOffset, s.BaseOffset)
		case s.NextOffset <= prev:
			return fmt.Errorf("segment %d (%d-%d) does not end after the one before (ends at %d)", i, s.BaseOffset, s.NextOffset, prev)
		case s.Key == "" || s.IndexKey == "":
			return fmt.Errorf("segment %d at %d has no object key", i, s.BaseOffset)
		}
		prev = s.NextOffset
	}
	return nil
}

// Encode is the manifest's stored form, at the lowest version that can
// carry it.
func (m *PartitionManifest) Encode() ([]byte, error) {
	m.Version = ManifestVersion
	if slices.ContainsFunc(m.Segments, func(s SegmentMeta) bool { return s.TxnIndexKey != "" }) {
		m.Version = ManifestVersionTxn
	}
	return json.MarshalIndent(m, "", " ")
}

// DecodeManifest parses and validates a stored manifest.
func DecodeManifest(raw []byte) (PartitionManifest, error) {
	var m PartitionManifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return PartitionManifest{}, fmt.Errorf("manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return PartitionManifest{}, fmt.Errorf("manifest of %s-%d: %w", m.Topic, m.Partition, err)
	}
	return m, nil
}

// TopicManifest is what a cluster needs to recreate a topic from the bucket.
type TopicManifest struct {
	Version           int               `json:"version"`
	Name              string            `json:"name"`
	ID                string            `json:"id"`
	Partitions        int32             `json:"partitions"`
	ReplicationFactor int32             `json:"replication_factor"`
	Configs           map[string]string `json:"configs"`
	WrittenAt         time.Time         `json:"written_at"`
}

// Layout names the objects of one topic incarnation.
type Layout struct {
	Topic, TopicID string
}

func escape(s string) string { return url.PathEscape(s) }

// TopicPrefix is the prefix of every object of the topic incarnation.
func (l Layout) TopicPrefix() string {
	return "topics/" + escape(l.Topic) + "/" + escape(l.TopicID) + "/"
}

// TopicsPrefix is the prefix of every incarnation of a topic name.
func TopicsPrefix(topic string) string { return "topics/" + escape(topic) + "/" }

// TopicManifestKey is the topic manifest's key.
func (l Layout) TopicManifestKey() string { return l.TopicPrefix() + "topic.json" }

// PartitionPrefix is the prefix of one partition's objects.
func (l Layout) PartitionPrefix(p int32) string {
	return l.TopicPrefix() + strconv.Itoa(int(p)) + "/"
}

// ManifestsPrefix is the prefix of a partition's manifests.
func (l Layout) ManifestsPrefix(p int32) string { return l.PartitionPrefix(p) + "manifests/" }

// ManifestKey names a manifest by its writer's epoch and sequence.
func (l Layout) ManifestKey(p int32, epoch int32, seq int64) string {
	return fmt.Sprintf("%s%010d-%020d.json", l.ManifestsPrefix(p), epoch, seq)
}

// ParseManifestKey returns the epoch and sequence a manifest key names.
func ParseManifestKey(key string) (epoch int32, seq int64, ok bool) {
	name := key[strings.LastIndexByte(key, '/')+1:]
	name, found := strings.CutSuffix(name, ".json")
	if !found {
		return 0, 0, false
	}
	e, s, found := strings.Cut(name, "-")
	if !found {
		return 0, 0, false
	}
	ev, err1 := strconv.ParseInt(e, 10, 32)
	sv, err2 := strconv.ParseInt(s, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return int32(ev), sv, true
}

// SegmentKeys names a new segment's objects: never the same twice.
func (l Layout) SegmentKeys(p int32, base int64, epoch int32) (log, index, timeIndex string) {
	var nonce [6]byte
	rand.Read(nonce[:])
	stem := fmt.Sprintf("%ssegments/%020d-%010d-%s", l.PartitionPrefix(p), base, epoch, hex.EncodeToString(nonce[:]))
	return stem + ".log", stem + ".index", stem + ".timeindex"
}

// TxnIndexKey names the aborted-transaction index uploaded with the
// segment whose .log object is logKey.
func TxnIndexKey(logKey string) string { return strings.TrimSuffix(logKey, ".log") + ".txnindex" }

// ObjectKeys are the keys of every object of the segment.
func (s *SegmentMeta) ObjectKeys() []string {
	keys := []string{s.Key, s.IndexKey, s.TimeIndexKey}
	if s.TxnIndexKey != "" {
		keys = append(keys, s.TxnIndexKey)
	}
	return keys
}

// SegmentsPrefix is the prefix of a partition's segment objects.
func (l Layout) SegmentsPrefix(p int32) string { return l.PartitionPrefix(p) + "segments/" }

// ErrCorrupt marks remote data that failed a check (a checksum, an
// offset that is not where the manifest says).
var ErrCorrupt = errors.New("remote data corrupt")

func jsonIndent(v any) ([]byte, error) { return json.MarshalIndent(v, "", " ") }

func decodeTopicManifest(raw []byte) (TopicManifest, error) {
	var tm TopicManifest
	if err := json.Unmarshal(raw, &tm); err != nil {
		return TopicManifest{}, fmt.Errorf("topic manifest: %w: %v", ErrCorrupt, err)
	}
	if tm.Version != ManifestVersion || tm.Name == "" || tm.Partitions < 1 {
		return TopicManifest{}, fmt.Errorf("topic manifest: %w: version %d, name %q, %d partitions", ErrCorrupt, tm.Version, tm.Name, tm.Partitions)
	}
	return tm, nil
}
