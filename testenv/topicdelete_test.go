package testenv_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// A tiered topic deleted through Kafka's DeleteTopics leaves MinIO (listed
// with minio-go, not through the broker), while the topic created again
// under its name, with a new id, keeps every object and reads back whole
// from offset 0.
func TestDeletedTopicLeavesTheBucket(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster with MinIO")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 2, MinIO: true,
		BrokerSettings: map[string]string{"log.segment.min.bytes": "1024", "remote.log.manager.task.interval.ms": "300"}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl, adm, seeds := testenvtest.KafkaClient(t, c, kgo.DefaultProduceTopic("doomed"), kgo.ProducerBatchCompression(kgo.NoCompression()))
	configs := map[string]string{
		"remote.storage.enable": "true", "segment.bytes": "16384", "local.retention.bytes": "32768",
	}

	s3 := c.MinIO().S3()
	mc := s3Client(t, s3)
	// objects lists the bucket under the topic's prefix, by topic id.
	topicPrefix := testenv.ObjectStorePrefix + "/topics/doomed/"
	objects := func() map[string][]string {
		byID := map[string][]string{}
		for o := range mc.ListObjects(ctx, s3.Bucket, minio.ListObjectsOptions{Prefix: topicPrefix, Recursive: true}) {
			if o.Err != nil {
				t.Fatalf("list %s: %v", topicPrefix, o.Err)
			}
			id, _, _ := strings.Cut(strings.TrimPrefix(o.Key, topicPrefix), "/")
			byID[id] = append(byID[id], o.Key)
		}
		return byID
	}
	segments := func(keys []string) int {
		n := 0
		for _, k := range keys {
			if strings.HasSuffix(k, ".log") {
				n++
			}
		}
		return n
	}
	produce := func(cl *kgo.Client, n int, tag string) {
		t.Helper()
		for i := 0; i < n; i += 100 {
			recs := make([]*kgo.Record, 0, 100)
			for j := i; j < i+100 && j < n; j++ {
				recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", j), Value: fmt.Appendf(nil, "%s-%06d-%0100d", tag, j, j)})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}

	testenvtest.CreateKafkaTopic(ctx, t, adm, "doomed", 2, configs)
	produce(cl, 2000, "old")
	var oldID string
	await.True(t, time.Minute, "the first incarnation's segments in MinIO", func() bool {
		for id, keys := range objects() {
			oldID = id
			return segments(keys) >= 5 && slices.Contains(keys, topicPrefix+id+"/topic.json")
		}
		return false
	})

	resp, err := adm.DeleteTopics(ctx, "doomed")
	if err == nil {
		var r kadm.DeleteTopicResponse
		r, err = resp.On("doomed", nil)
		if err == nil {
			err = r.Err
		}
	}
	if err != nil {
		t.Fatalf("DeleteTopics: %v", err)
	}

	// The name again: a new incarnation, uploading while the old one is
	// being deleted.
	await.True(t, 30*time.Second, "the topic to be created again", func() bool {
		r, err := adm.CreateTopic(ctx, 1, 2, ptrs(configs), "doomed")
		return err == nil && r.Err == nil
	})
	// A new producer for the new incarnation: a Kafka client never adopts a
	// new id for a topic it knew, and fails what it buffered for it with
	// UNKNOWN_TOPIC_ID once metadata shows the new one. Nor may the new
	// client meet the old id on a broker that has not applied the change
	// yet, so every broker must serve the new id first.
	await.NoError(t, 30*time.Second, "every broker to serve the new incarnation", func() error {
		ids := map[[16]byte]bool{}
		for _, b := range c.Brokers() {
			req := kmsg.NewPtrMetadataRequest()
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr("doomed")
			req.Topics = append(req.Topics, rt)
			resp, err := req.RequestWith(ctx, cl.Broker(int(b.ID())))
			if err != nil {
				return err
			}
			if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
				return fmt.Errorf("broker %d: %+v", b.ID(), resp.Topics)
			}
			ids[resp.Topics[0].TopicID] = true
		}
		if len(ids) != 1 {
			return fmt.Errorf("the brokers serve %d ids", len(ids))
		}
		for id := range ids {
			if fmt.Sprintf("%x", id) == strings.ReplaceAll(oldID, "-", "") {
				return fmt.Errorf("the brokers still serve the old id")
			}
		}
		return nil
	})
	newCl, _, _ := testenvtest.KafkaClient(t, c, kgo.DefaultProduceTopic("doomed"), kgo.ProducerBatchCompression(kgo.NoCompression()))
	produce(newCl, 1500, "new")
	var newID string
	var newKeys []string
	await.True(t, time.Minute, "the second incarnation's segments in MinIO", func() bool {
		for id, keys := range objects() {
			if id != oldID {
				newID, newKeys = id, keys
			}
		}
		return newID != "" && segments(newKeys) >= 4
	})

	deleted := time.Now()
	await.True(t, time.Minute, "the deleted incarnation's objects to leave MinIO", func() bool { _, ok := objects()[oldID]; return !ok })
	t.Logf("deleted incarnation %s gone from MinIO %v after the new one uploaded", oldID, time.Since(deleted).Round(time.Millisecond))

	now := objects()[newID]
	for _, k := range newKeys {
		if strings.HasSuffix(k, ".log") && !slices.Contains(now, k) {
			t.Errorf("segment %s of the new incarnation %s is gone", k, newID)
		}
	}
	// Every record of the new incarnation reads back, the oldest from MinIO.
	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics("doomed"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	next := 0
	for next < 1500 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of 1500 records of the new incarnation", next)
		}
		if err := fs.Err(); err != nil {
			t.Fatalf("consume: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if want := fmt.Sprintf("new-%06d-%0100d", next, next); string(r.Value) != want || r.Offset != int64(next) {
				t.Fatalf("offset %d: %q, want offset %d %q", r.Offset, r.Value, next, want)
			}
			next++
		})
	}
}

func ptrs(m map[string]string) map[string]*string {
	out := make(map[string]*string, len(m))
	for k, v := range m {
		out[k] = &v
	}
	return out
}
