package broker

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/topicconfig"
)

// A topic's partitions open several at a time
// (num.recovery.threads.per.data.dir): every one is hosted and writable,
// and one that cannot open (a partition.metadata it cannot read) fails
// alone, named, while the others open; one whose creation a crash cut short
// (unreadable metadata, no records) is made again. Closed several at a time
// too, they open again with what was written.
func TestPartitionsOpenInParallelAndFailAlone(t *testing.T) {
	store, dir := startMetastore(t)
	dataDir := filepath.Join(dir, "data")
	bad := filepath.Join(dataDir, "many-5")
	if err := os.MkdirAll(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, partitionMetaFile), []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	// It holds records: they may be this topic's, so it is never taken.
	if err := os.WriteFile(filepath.Join(bad, "00000000000000000000.log"), []byte("some bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A creation a crash cut short before its files were synced: metadata
	// empty, no records. It is made again.
	torn := filepath.Join(dataDir, "many-7")
	if err := os.MkdirAll(torn, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{partitionMetaFile, "00000000000000000000.log", "recovery-point.checkpoint"} {
		if err := os.WriteFile(filepath.Join(torn, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := New(Config{NodeID: 1, DataDir: dataDir, Settings: map[string]string{topicconfig.RecoveryThreadsKey: "4"}}, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if b.hosted.openWorkers != 4 {
		t.Fatalf("open workers %d, want the setting's 4", b.hosted.openWorkers)
	}
	const n = 64
	// The topic is created; this broker says which of its partitions it
	// could not open.
	if _, err := b.CreateTopic(context.Background(), TopicSpec{Name: "many", Partitions: n}); err == nil || !strings.Contains(err.Error(), "many-5") {
		t.Fatalf("create topic: %v, want an error naming many-5", err)
	}
	await.True(t, 10*time.Second, "the topic's partitions hosted", func() bool {
		_, err := b.hosted.partition("many", n-1)
		return err == nil
	})
	for p := range int32(n) {
		_, err := b.hosted.partition("many", p)
		if p == 5 {
			if err == nil {
				t.Errorf("partition 5, whose partition.metadata is unreadable, is hosted")
			}
			continue
		}
		if err != nil {
			t.Errorf("partition %d: %v", p, err)
		}
	}

	// One record in each; closed several at a time and opened again, every
	// log has it.
	bld := record.NewBuilder(time.Now().UnixMilli(), 0)
	bld.Append(&record.Record{Value: []byte("v")})
	batch, err := bld.Build(record.None)
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(n) {
		if p == 5 {
			continue
		}
		res, err := b.Produce(context.Background(), "many", AcksAll, []PartitionBatches{{Partition: p, Batches: append([]byte(nil), batch...)}})
		if err != nil || res[0].Err != nil {
			t.Fatalf("produce to partition %d: %v %v", p, err, res[0].Err)
		}
	}
	b2 := reopenBroker(t, b)
	await.True(t, 10*time.Second, "the topic's partitions hosted again", func() bool {
		_, err := b2.hosted.partition("many", n-1)
		return err == nil
	})
	for p := range int32(n) {
		if p == 5 {
			continue
		}
		part, err := b2.hosted.partition("many", p)
		if err != nil {
			t.Fatalf("partition %d after the restart: %v", p, err)
		}
		if end := part.LogEndOffset(); end != 1 {
			t.Errorf("partition %d after the restart: log end %d, want 1", p, end)
		}
	}
}

func TestRecoveryThreadsSetting(t *testing.T) {
	for _, bad := range []string{"0", "-1", "x", "100000"} {
		if _, err := New(Config{NodeID: 1, DataDir: t.TempDir(), Settings: map[string]string{topicconfig.RecoveryThreadsKey: bad}}, nil); err == nil {
			t.Errorf("%s=%s accepted", topicconfig.RecoveryThreadsKey, bad)
		}
	}
}

// Each hosted partition keeps a file open: a broker whose partitions, the
// sealed segments' cache and a reserve may outgrow the process's open file
// limit says so once, when an apply crosses it.
func TestFileLimitWarning(t *testing.T) {
	var logs syncBuffer
	b, _ := startBrokerWith(t, Config{
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
		Settings: map[string]string{topicconfig.SegmentOpenFilesMaxKey: "10"},
	})
	// Room for 6 partitions beside 10 sealed segment files and the reserve.
	b.hosted.fileLimit = func() (uint64, bool) { return 10 + fileReserve + 6, true }
	const warning = "may need more open files than this process may open"
	if _, err := b.CreateTopic(context.Background(), TopicSpec{Name: "a", Partitions: 6}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), warning) {
		t.Fatalf("warned with 6 partitions, which fit:\n%s", logs.String())
	}
	for _, name := range []string{"b", "c"} {
		if _, err := b.CreateTopic(context.Background(), TopicSpec{Name: name, Partitions: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), warning); n != 1 {
		t.Fatalf("%d warnings after crossing the limit, want one:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "partitions=7 ") {
		t.Fatalf("the warning does not come with the 7th partition:\n%s", logs.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
