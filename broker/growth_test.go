package broker

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/metastore/metastoretest"
)

// A client may not give a topic segment.bytes below Kafka's 1 MiB, at
// creation or by altering it, unless the broker's log.segment.min.bytes
// lowers the minimum.
func TestSegmentBytesBelowTheMinimumIsRefused(t *testing.T) {
	b, _ := startBroker(t)
	ctx := context.Background()
	for _, validateOnly := range []bool{true, false} {
		_, err := b.CreateTopic(ctx, TopicSpec{Name: "tiny", Partitions: 1, ValidateOnly: validateOnly,
			Configs: map[string]string{"segment.bytes": "1048575"}})
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "segment.bytes") {
			t.Fatalf("create with segment.bytes=1048575 (validate only %v): %v, want an invalid config naming segment.bytes", validateOnly, err)
		}
	}
	if topics, _ := b.ListTopics(ctx); len(topics) != 0 {
		t.Fatalf("refused topic created: %v", topics)
	}
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "small", Partitions: 1,
		Configs: map[string]string{"segment.bytes": "1048576"}}); err != nil {
		t.Fatal(err)
	}
	for _, validateOnly := range []bool{true, false} {
		_, err := b.AlterTopicConfigs(ctx, "small", map[string]string{"segment.bytes": "1024"}, nil, validateOnly)
		if !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("alter segment.bytes to 1024 (validate only %v): %v, want an invalid config", validateOnly, err)
		}
	}
	cfg, err := b.TopicConfig("small")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SegmentBytes != 1<<20 {
		t.Fatalf("segment.bytes %d after refused alters", cfg.SegmentBytes)
	}

	lowered, _ := startBrokerWith(t, Config{Settings: map[string]string{"log.segment.min.bytes": "4096"}})
	if _, err := lowered.CreateTopic(ctx, TopicSpec{Name: "tiny", Partitions: 1,
		Configs: map[string]string{"segment.bytes": "4096"}}); err != nil {
		t.Fatalf("segment.bytes=4096 with log.segment.min.bytes=4096: %v", err)
	}
	_, err = lowered.CreateTopic(ctx, TopicSpec{Name: "tinier", Partitions: 1, Configs: map[string]string{"segment.bytes": "4095"}})
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "log.segment.min.bytes") {
		t.Fatalf("segment.bytes=4095 with log.segment.min.bytes=4096: %v, want an invalid config naming the setting", err)
	}
}

// A broker does not start with a segment minimum it cannot honour, or with
// a default segment.bytes (log.segment.bytes) below its minimum.
func TestSegmentSettingsAreChecked(t *testing.T) {
	for _, settings := range []map[string]string{
		{"log.segment.min.bytes": "1023"},
		{"log.segment.min.bytes": "lots"},
		{"log.segment.bytes": "1048575"},
		{"log.segment.min.bytes": "4096", "log.segment.bytes": "2048"},
	} {
		_, err := New(Config{NodeID: 1, DataDir: t.TempDir(), Settings: settings}, metastoretest.New())
		if err == nil {
			t.Errorf("New with %v: no error", settings)
			continue
		}
		named := false
		for k := range settings {
			named = named || strings.Contains(err.Error(), k)
		}
		if !named {
			t.Errorf("New with %v: %v does not name the setting", settings, err)
		}
	}
	if _, err := New(Config{NodeID: 1, DataDir: t.TempDir(),
		Settings: map[string]string{"log.segment.min.bytes": "1024", "log.segment.bytes": "1024"}}, metastoretest.New()); err != nil {
		t.Errorf("New with segment.bytes lowered to 1024: %v", err)
	}
}

// A broker keeps at most log.segment.open.files.max sealed-segment files
// open, across every log it hosts, and says so in its metrics.
func TestSegmentFilesOpenAreBounded(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	b, _ := startBrokerWith(t, Config{Registerer: reg, Settings: smallSegments(map[string]string{"log.segment.open.files.max": "3"})})
	ctx := context.Background()
	for _, name := range []string{"a", "b"} {
		if _, err := b.CreateTopic(ctx, TopicSpec{Name: name, Partitions: 2, Configs: map[string]string{"segment.bytes": "1024"}}); err != nil {
			t.Fatal(err)
		}
		for p := range int32(2) {
			appendRecords(t, b, name, p, 200)
		}
	}
	for _, name := range []string{"a", "b"} {
		for p := range int32(2) {
			pt, err := b.hosted.partition(name, p)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(pt.log.Segments()); n < 10 {
				t.Fatalf("%s-%d has %d segments; the test needs many", name, p, n)
			}
			for off := int64(0); off < pt.LogEndOffset(); {
				res, err := b.Fetch(ctx, []FetchPartition{{Topic: name, Partition: p, Offset: off, MaxBytes: 1 << 20}}, FetchOptions{})
				if err != nil || res[0].Err != nil || res[0].NextOffset <= off {
					t.Fatalf("fetch %s-%d at %d: %v, %+v", name, p, off, err, res)
				}
				off = res[0].NextOffset
			}
		}
	}
	if open := metricValue(t, reg, "strata_log_segment_files_open"); open > 3 || open < 1 {
		t.Fatalf("%v sealed-segment files open, bound 3", open)
	}
	if ev := metricValue(t, reg, "strata_log_segment_file_evictions_total"); ev == 0 {
		t.Fatal("no file was evicted reading every segment of four partitions with a bound of 3")
	}
}

// Topics and partitions that would take the cluster past max.partitions
// are refused with a policy violation naming the setting, validate-only
// requests included, and nothing is created.
func TestMaxPartitions(t *testing.T) {
	b, store := startBrokerWith(t, Config{Settings: map[string]string{"max.partitions": "10"}})
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "a", Partitions: 6}); err != nil {
		t.Fatal(err)
	}
	for _, validateOnly := range []bool{true, false} {
		_, err := b.CreateTopic(ctx, TopicSpec{Name: "b", Partitions: 5, ValidateOnly: validateOnly})
		if !errors.Is(err, ErrPolicyViolation) || !strings.Contains(err.Error(), "max.partitions (10)") {
			t.Fatalf("a topic of 5 partitions with 6 of 10 used (validate only %v): %v", validateOnly, err)
		}
		err = b.CreatePartitions(ctx, "a", 11, nil, validateOnly)
		if !errors.Is(err, ErrPolicyViolation) || !strings.Contains(err.Error(), "max.partitions") {
			t.Fatalf("growing to 11 partitions with 6 of 10 used (validate only %v): %v", validateOnly, err)
		}
	}
	if _, err := store.GetTopic(ctx, "b"); err == nil {
		t.Fatal("the refused topic was created")
	}
	if n, _ := b.PartitionCount("a"); n != 6 {
		t.Fatalf("a has %d partitions after refused growth", n)
	}
	if err := b.CreatePartitions(ctx, "a", 8, nil, false); err != nil {
		t.Fatalf("growing within the limit: %v", err)
	}
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "b", Partitions: 2}); err != nil {
		t.Fatalf("a topic filling the cluster to its limit: %v", err)
	}
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "c", Partitions: 1}); !errors.Is(err, ErrPolicyViolation) {
		t.Fatalf("a topic past a full cluster's limit: %v", err)
	}
	if err := b.DeleteTopic(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "c", Partitions: 2}); err != nil {
		t.Fatalf("a topic in the room a deleted one left: %v", err)
	}

	if _, err := New(Config{NodeID: 1, DataDir: t.TempDir(), Settings: map[string]string{"max.partitions": "0"}}, metastoretest.New()); err == nil ||
		!strings.Contains(err.Error(), "max.partitions") {
		t.Fatalf("New with max.partitions=0: %v, want an error naming it", err)
	}
}
