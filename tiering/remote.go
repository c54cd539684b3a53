package tiering

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/strata-broker/strata/tiering/objstore"
)

// Store is the object store as the tiering code uses it; objstore.Store
// implements it.
type Store interface {
	Put(ctx context.Context, key string, body io.Reader, size int64) error
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)
	List(ctx context.Context, prefix string) ([]objstore.ObjectInfo, error)
	Delete(ctx context.Context, keys ...string) error
}

// maxManifestBytes bounds a manifest read: a manifest lists segments of a
// few hundred bytes each, so this allows millions.
const maxManifestBytes = 1 << 30

// readAll reads a whole object, bounded.
func readAll(ctx context.Context, st Store, key string, limit int64) ([]byte, error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("read %s: larger than %d bytes", key, limit)
	}
	return raw, nil
}

// LatestManifest reads a partition's newest manifest; found is false when
// the partition has none.
func LatestManifest(ctx context.Context, st Store, l Layout, p int32) (m PartitionManifest, key string, found bool, err error) {
	keys, err := manifestKeys(ctx, st, l, p)
	if err != nil || len(keys) == 0 {
		return PartitionManifest{}, "", false, err
	}
	key = keys[len(keys)-1]
	raw, err := readAll(ctx, st, key, maxManifestBytes)
	if err != nil {
		return PartitionManifest{}, "", false, fmt.Errorf("latest manifest of %s-%d: %w", l.Topic, p, err)
	}
	m, err = DecodeManifest(raw)
	if err != nil {
		return PartitionManifest{}, "", false, fmt.Errorf("%s: %w: %v", key, ErrCorrupt, err)
	}
	return m, key, true, nil
}

// manifestKeys lists a partition's manifest keys, oldest first.
func manifestKeys(ctx context.Context, st Store, l Layout, p int32) ([]string, error) {
	objs, err := st.List(ctx, l.ManifestsPrefix(p))
	if err != nil {
		return nil, fmt.Errorf("list manifests of %s-%d: %w", l.Topic, p, err)
	}
	var keys []string
	for _, o := range objs {
		if _, _, ok := ParseManifestKey(o.Key); ok {
			keys = append(keys, o.Key)
		}
	}
	slices.Sort(keys) // zero-padded (epoch, seq): lexical order is theirs
	return keys, nil
}

// WriteManifest stores m under its epoch and sequence, stamped as written
// at now (the writer's clock).
func WriteManifest(ctx context.Context, st Store, l Layout, m *PartitionManifest, now time.Time) (string, error) {
	m.WrittenAt = now.UTC()
	raw, err := m.Encode()
	if err != nil {
		return "", err
	}
	key := l.ManifestKey(m.Partition, m.LeaderEpoch, m.Seq)
	if err := st.Put(ctx, key, bytes.NewReader(raw), int64(len(raw))); err != nil {
		return "", fmt.Errorf("write manifest %s: %w", key, err)
	}
	return key, nil
}

// keepManifests is how many of a partition's newest manifests are kept: a
// reader that listed just before a new one was written can still read the
// one it saw.
const keepManifests = 3

// PruneManifests deletes all but the newest manifests of a partition.
func PruneManifests(ctx context.Context, st Store, l Layout, p int32) error {
	keys, err := manifestKeys(ctx, st, l, p)
	if err != nil || len(keys) <= keepManifests {
		return err
	}
	return st.Delete(ctx, keys[:len(keys)-keepManifests]...)
}

// Garbage returns the segment objects of a partition that manifest m does
// not name and that are older than grace: uploads a crash or a deposed
// leader left behind, and segments dropped by retention after the manifest
// that dropped them was written. Recent objects are spared, as they may
// belong to an upload whose manifest is not written yet.
func Garbage(ctx context.Context, st Store, l Layout, p int32, m *PartitionManifest, now time.Time, grace time.Duration) ([]string, error) {
	objs, err := st.List(ctx, l.SegmentsPrefix(p))
	if err != nil {
		return nil, fmt.Errorf("list segments of %s-%d: %w", l.Topic, p, err)
	}
	named := map[string]bool{}
	for _, s := range m.Segments {
		for _, k := range s.ObjectKeys() {
			named[k] = true
		}
	}
	var out []string
	for _, o := range objs {
		if !named[o.Key] && now.Sub(o.LastModified) > grace {
			out = append(out, o.Key)
		}
	}
	return out, nil
}

// WriteTopicManifest stores the topic's description, stamped as written at
// now (the writer's clock): FindTopic takes the newest incarnation by it.
func WriteTopicManifest(ctx context.Context, st Store, tm TopicManifest, now time.Time) error {
	tm.Version, tm.WrittenAt = ManifestVersion, now.UTC()
	raw, err := jsonIndent(tm)
	if err != nil {
		return err
	}
	key := Layout{Topic: tm.Name, TopicID: tm.ID}.TopicManifestKey()
	if err := st.Put(ctx, key, bytes.NewReader(raw), int64(len(raw))); err != nil {
		return fmt.Errorf("write topic manifest %s: %w", key, err)
	}
	return nil
}

// FindTopic returns the newest incarnation of a topic in the bucket (a
// topic deleted and created again has several): the one whose topic
// manifest was written last.
func FindTopic(ctx context.Context, st Store, topic string) (TopicManifest, error) {
	objs, err := st.List(ctx, TopicsPrefix(topic))
	if err != nil {
		return TopicManifest{}, fmt.Errorf("list topic %q: %w", topic, err)
	}
	var best TopicManifest
	found := false
	for _, o := range objs {
		if !bytes.HasSuffix([]byte(o.Key), []byte("/topic.json")) {
			continue
		}
		raw, err := readAll(ctx, st, o.Key, 16<<20)
		if err != nil {
			return TopicManifest{}, err
		}
		tm, err := decodeTopicManifest(raw)
		if err != nil {
			return TopicManifest{}, fmt.Errorf("%s: %w", o.Key, err)
		}
		if !found || tm.WrittenAt.After(best.WrittenAt) {
			best, found = tm, true
		}
	}
	if !found {
		return TopicManifest{}, fmt.Errorf("topic %q: %w", topic, ErrNoTopic)
	}
	return best, nil
}

// ErrNoTopic: the bucket holds no manifest of the topic.
var ErrNoTopic = errors.New("no such topic in the bucket")
