package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/tiering"
)

// tieringStatusOf returns the status of partition 0 of topic.
func tieringStatusOf(t *testing.T, b *Broker, topic string) PartitionTiering {
	t.Helper()
	parts, err := b.TieringStatus(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 1 || parts[0].Partition != 0 || parts[0].Topic != topic {
		t.Fatalf("tiering status of %s: %+v, want partition 0 alone", topic, parts)
	}
	return parts[0]
}

func TestTieringStatusAfterUploads(t *testing.T) {
	b, objects := startTieredBroker(t)
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "history", Partitions: 1, Configs: map[string]string{
		"remote.storage.enable": "true", "segment.bytes": "1024", "local.retention.bytes": "2048",
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "plain", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	produceValues(t, b, "history", 0, 200)
	produceValues(t, b, "plain", 0, 10)

	// Uploads and local retention run in the background: wait until every
	// sealed segment is in the bucket and local retention has run.
	var st PartitionTiering
	await.NoError(t, 20*time.Second, "the backlog uploaded and local retention run", func() error {
		st = tieringStatusOf(t, b, "history")
		if st.Backlog == 0 && st.RemoteSegments > 0 && st.LocalStart > 0 {
			return nil
		}
		return fmt.Errorf("status %+v", st)
	})
	p, _ := b.hosted.partition("history", 0)
	m, _, found, err := tiering.LatestManifest(ctx, objects, tiering.Layout{Topic: "history", TopicID: p.topicID}, 0)
	if err != nil || !found {
		t.Fatalf("manifest in the bucket: found %v, %v", found, err)
	}
	want := PartitionTiering{
		Topic: "history", Partition: 0, Leader: 1, LeaderEpoch: st.LeaderEpoch, RemoteEnabled: true,
		LocalStart: st.LocalStart, LocalEnd: 200, LocalBytes: st.LocalBytes,
		RemoteStart: 0, RemoteEnd: m.EndOffset(), RemoteBytes: m.Bytes(), RemoteSegments: int64(len(m.Segments)),
		Backlog: 0, HighWatermark: 200, LogStartOffset: 0,
	}
	if st != want {
		t.Errorf("status %+v\n want %+v", st, want)
	}
	if st.RemoteEnd < st.LocalStart {
		t.Errorf("remote end %d below local start %d: a gap between the bucket and the disk", st.RemoteEnd, st.LocalStart)
	}
	if st.LocalBytes <= 0 {
		t.Errorf("local bytes %d", st.LocalBytes)
	}

	// Without a cached manifest (as after a restart), the status reads it.
	p.setRemoteManifest(nil, -1)
	if again := tieringStatusOf(t, b, "history"); again.RemoteStart != 0 || again.RemoteEnd != want.RemoteEnd || again.RemoteSegments != want.RemoteSegments {
		t.Errorf("status without a cached manifest: %+v", again)
	}

	// A topic that is not tiered has local data only.
	plain := tieringStatusOf(t, b, "plain")
	if plain.RemoteEnabled || plain.RemoteStart != -1 || plain.RemoteEnd != -1 || plain.RemoteBytes != -1 ||
		plain.RemoteSegments != -1 || plain.Backlog != 0 || plain.LocalEnd != 10 || plain.LocalStart != 0 {
		t.Errorf("status of a topic that is not tiered: %+v", plain)
	}

	if _, err := b.TieringStatus(ctx, "nope"); Classify(err) != KindUnknownTopicOrPartition {
		t.Errorf("unknown topic: %v", err)
	}
}
