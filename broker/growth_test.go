package broker

import (
	"context"
	"errors"
	"strings"
	"testing"

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
