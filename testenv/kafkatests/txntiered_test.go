package kafkatests_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// A tiered topic written by a transactional producer, every third
// transaction aborted, whose history is in MinIO and no longer on the
// broker's disk: a cold read_committed consumer reads exactly the
// committed records, from the bucket, and `strata replay` (no broker
// involved) prints exactly the committed records the bucket holds; with
// --isolation-level read_uncommitted it prints the aborted ones too.
func TestTieredTransactionsReadCommitted(t *testing.T) {
	testenvtest.SkipShort(t)
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 1, MinIO: true,
		BrokerSettings: map[string]string{"log.segment.min.bytes": "1024", "remote.log.manager.task.interval.ms": "100"}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := c.Brokers()[0]
	const topic = "ledger"
	_, adm, seeds := testenvtest.KafkaClient(t, c)
	testenvtest.CreateKafkaTopic(ctx, t, adm, topic, 1, map[string]string{
		"remote.storage.enable": "true", "segment.bytes": "4096", "local.retention.bytes": "4096",
	})
	p, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.TransactionalID("ledger-writer"), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const txns, perTxn = 30, 20
	var committed, all []string
	for tx := range txns {
		commit := tx%3 != 1
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range perTxn {
			kind := "committed"
			if !commit {
				kind = "aborted"
			}
			v := fmt.Sprintf("%s-%03d-%02d-%0120d", kind, tx, i, 0)
			if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			all = append(all, v)
			if commit {
				committed = append(committed, v)
			}
		}
		if err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}

	// Most of the history is in the bucket and gone from the disk.
	await.True(t, time.Minute, "the history in the bucket and off the broker's disk", func() bool {
		files, _ := filepath.Glob(filepath.Join(b.DataDir(), topic+"-0", "*.log"))
		return testenvtest.BucketEnd(t, c, topic, 0) > int64(txns*perTxn*3/4) && len(files) > 0 && !slices.Contains(files, filepath.Join(b.DataDir(), topic+"-0", "00000000000000000000.log"))
	})

	got := readAll(ctx, t, seeds, topic, kgo.ReadCommitted(), len(committed))
	if !slices.Equal(got, committed) {
		t.Fatalf("cold read_committed consumer read %d records, want the %d committed ones in order", len(got), len(committed))
	}

	s3 := c.MinIO().S3()
	replay := func(args ...string) []string {
		t.Helper()
		cmd := exec.CommandContext(ctx, testenv.Binary(t), append([]string{"replay", "--object-store", testenv.ObjectStoreURL(s3), "--topic", topic}, args...)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+s3.AccessKey, "AWS_SECRET_ACCESS_KEY="+s3.SecretKey, "AWS_REGION="+s3.Region)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("strata replay %v: %v\n%s", args, err, stderr.String())
		}
		// Uploads go on meanwhile; the bucket's end only grows.
		end := testenvtest.BucketEnd(t, c, topic, 0)
		var values []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			var rec struct {
				Offset int64  `json:"offset"`
				Value  string `json:"value"`
			}
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("replay line %q: %v", line, err)
			}
			if rec.Offset >= end {
				t.Fatalf("replay printed offset %d, past the bucket's end %d", rec.Offset, end)
			}
			values = append(values, rec.Value)
		}
		return values
	}
	// Replay stops at the bucket's end: it prints a prefix of each list.
	rc := replay()
	if len(rc) == 0 || !slices.Equal(rc, committed[:len(rc)]) || countPrefix(rc, "aborted-") != 0 {
		t.Fatalf("replay printed %d records (%d aborted), want a prefix of the %d committed", len(rc), countPrefix(rc, "aborted-"), len(committed))
	}
	ru := replay("--isolation-level", "read_uncommitted")
	if len(ru) <= len(rc) || !slices.Equal(ru, all[:len(ru)]) {
		t.Fatalf("replay read_uncommitted printed %d records, want a prefix of all %d, longer than the %d committed", len(ru), len(all), len(rc))
	}
	t.Logf("replay: %d committed records, %d with the aborted ones", len(rc), len(ru))
}
