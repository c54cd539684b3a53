package testenv_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

const (
	crashTopicPartitions = 3
	// inflight is how many produce requests each producer keeps outstanding:
	// enough that a kill usually finds some written but not yet acknowledged.
	inflight = 16
)

// startCrashTest starts a broker with a fresh topic, and a producer that
// records every acknowledgement in a ledger.
func startCrashTest(t *testing.T, topic string, acks stratav1.Acks) (*testenv.Dev, *producer, *ledger) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a broker; skipped with -short")
	}
	dev := testenv.StartDev(t, testenv.DevOptions{})
	c := testenvtest.Dial(t, dev.GRPCAddr)
	createTopic(t, c, topic, crashTopicPartitions, nil)
	led := newLedger(crashTopicPartitions)
	return dev, &producer{t: t, client: c, topic: topic, led: led, acks: acks}, led
}

// verifyAndContinue checks every acknowledged record after a restart, then
// that new records continue each partition densely.
func verifyAndContinue(t *testing.T, dev *testenv.Dev, topic string, led *ledger) {
	t.Helper()
	c := testenvtest.Dial(t, dev.GRPCAddr)
	ends := verifyTopic(t, c, topic, led)
	produceAfterRestart(t, c, topic, led, ends)
	verifyTopic(t, c, topic, led)
}

// TestCrashKeepsAcknowledgedRecords guards invariants 1 and 2 across a
// SIGKILL: every record acknowledged with acks=all before the kill is read
// back after a restart at the offset its acknowledgement gave, offsets stay
// dense, whatever was in flight is either absent or intact, and new records
// continue the log without a gap.
func TestCrashKeepsAcknowledgedRecords(t *testing.T) {
	const topic = "crash"
	dev, p, led := startCrashTest(t, topic, stratav1.Acks_ACKS_ALL)
	start := time.Now()
	p.produce(context.Background(), 100_000, inflight)
	if t.Failed() {
		t.FailNow()
	}
	if n := led.ackedCount(); n != 100_000 {
		t.Fatalf("%d of 100000 records acknowledged", n)
	}
	t.Logf("produced 100000 records in %v", time.Since(start).Round(time.Millisecond))

	p.produceUntilKilled(dev.Kill, 20, inflight)
	dev.Restart(t)

	verifyAndContinue(t, dev, topic, led)
}

// TestCrashKeepsLeaderAckedRecords is TestCrashKeepsAcknowledgedRecords with
// acks=1: a killed process loses nothing the kernel already has, whatever
// the flush policy, so recovery must keep every record the broker
// acknowledged after writing it, fsynced or not.
func TestCrashKeepsLeaderAckedRecords(t *testing.T) {
	const topic = "crash-acks1"
	dev, p, led := startCrashTest(t, topic, stratav1.Acks_ACKS_LEADER)
	p.produce(context.Background(), 20_000, inflight)
	p.produceUntilKilled(dev.Kill, 20, inflight)
	dev.Restart(t)

	verifyAndContinue(t, dev, topic, led)
}

// TestCrashTwice guards recovery of a log that was itself just recovered:
// kill in the middle of a stream, restart, kill again as soon as the broker is
// healthy, restart, stream and kill once more, restart; then every
// acknowledged record is still where it was acknowledged.
func TestCrashTwice(t *testing.T) {
	const topic = "crash-twice"
	dev, p, led := startCrashTest(t, topic, stratav1.Acks_ACKS_ALL)
	p.produce(context.Background(), 20_000, inflight)
	p.produceUntilKilled(dev.Kill, 10, inflight)

	dev.Restart(t)
	dev.Kill()
	dev.Restart(t)

	p.client = testenvtest.Dial(t, dev.GRPCAddr)
	p.produceUntilKilled(dev.Kill, 10, inflight)
	dev.Restart(t)

	verifyAndContinue(t, dev, topic, led)
}

// TestCorruptSealedSegment guards invariant 4 for stored data: a byte flipped
// in the middle of a sealed segment of a stopped broker does not stop the
// broker from starting; a fetch reaching the damaged batch gets a DataLoss
// error naming the damaged offsets rather than garbage; the records after
// the damage and the other partitions stay readable.
func TestCorruptSealedSegment(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker; skipped with -short")
	}
	dev := testenv.StartDev(t, testenv.DevOptions{})
	const topic = "corrupt"
	c := testenvtest.Dial(t, dev.GRPCAddr)
	createTopic(t, c, topic, crashTopicPartitions, map[string]string{"segment.bytes": "1048576"})

	led := newLedger(crashTopicPartitions)
	p := &producer{t: t, client: c, topic: topic, led: led, acks: stratav1.Acks_ACKS_ALL}
	// About 20,000 records of ~130 bytes per partition: 2.6 MB, three
	// segments of 1 MiB, so the first is sealed.
	p.produce(context.Background(), 60_000, inflight)
	if t.Failed() {
		t.FailNow()
	}
	ends := verifyTopic(t, c, topic, led)
	dev.Stop()

	dir := partitionDir(t, dev.DataDir, topic, 0)
	segs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(segs)
	if len(segs) < 2 {
		t.Fatalf("%s holds %d segments (%v); need a sealed one", dir, len(segs), segs)
	}
	if base := filepath.Base(segs[0]); base != "00000000000000000000.log" {
		t.Errorf("first segment of %s is %s, want 00000000000000000000.log", dir, base)
	}
	first, last := flipByteInMiddleBatch(t, segs[0])
	t.Logf("flipped a byte in %s, inside the batch of offsets %d-%d", segs[0], first, last)

	dev.Restart(t)
	c = testenvtest.Dial(t, dev.GRPCAddr)

	// Partition 0 from offset 0: the records before the damaged batch (if the
	// broker serves them), then an error, never the damaged records.
	f := fetchFrom(t, c, topic, 0, 0)
	if f.err == nil {
		t.Fatalf("fetch %s-0 from 0 read %d records to the high watermark %d without an error; offsets %d-%d are damaged",
			topic, len(f.records), f.hw, first, last)
	}
	t.Logf("fetch %s-0 from 0: %d records, then: %v", topic, len(f.records), f.err)
	if st, _ := status.FromError(f.err); st.Code() != codes.DataLoss {
		t.Errorf("fetch %s-0 over the damaged batch: %v; want code DataLoss", topic, f.err)
	} else if msg := st.Message(); !namesRange(msg, first, last) {
		t.Errorf("fetch %s-0 over the damaged batch: message %q does not name offsets %d-%d", topic, msg, first, last)
	}
	if n := int64(len(f.records)); n > first {
		t.Errorf("fetch %s-0 returned %d records, reaching into the damaged offsets %d-%d", topic, n, first, last)
	} else {
		checkPartition(t, led, 0, 0, n, f.records)
	}

	// After the damaged batch, partition 0 reads to its end.
	f = fetchFrom(t, c, topic, 0, last+1)
	if f.err != nil {
		t.Fatalf("fetch %s-0 from %d, after the damaged batch: %v", topic, last+1, f.err)
	}
	if f.hw != ends[0] {
		t.Errorf("partition 0: high watermark %d after the restart, %d before", f.hw, ends[0])
	}
	checkPartition(t, led, 0, last+1, f.hw, f.records)

	// The other partitions are whole.
	for part := int32(1); part < crashTopicPartitions; part++ {
		f := fetchFrom(t, c, topic, part, 0)
		if f.err != nil {
			t.Fatalf("fetch %s-%d: %v", topic, part, f.err)
		}
		if f.hw != ends[part] {
			t.Errorf("partition %d: high watermark %d after the restart, %d before", part, f.hw, ends[part])
		}
		checkPartition(t, led, part, 0, f.hw, f.records)
	}
}

// TestTornTailIsTruncated guards crash recovery of the active segment: a
// SIGKILL that cuts a write leaves half a batch at the end of the log, which a
// plain kill -9 rarely produces. After a kill, the test appends the first half
// of a copy of the last batch to partition 0's active segment; the restarted
// broker must drop it, keep every acknowledged record, and give the next
// record the offset the torn batch would have had.
func TestTornTailIsTruncated(t *testing.T) {
	const topic = "torn"
	dev, p, led := startCrashTest(t, topic, stratav1.Acks_ACKS_ALL)
	p.produce(context.Background(), 10_000, inflight)
	if t.Failed() {
		t.FailNow()
	}
	ends := verifyTopic(t, p.client, topic, led)
	dev.Kill()

	dir := partitionDir(t, dev.DataDir, topic, 0)
	segs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segments in %s (%v)", dir, err)
	}
	slices.Sort(segs)
	active := segs[len(segs)-1]
	n := appendTornBatch(t, active, ends[0])
	t.Logf("appended %d bytes of a torn batch at offset %d to %s", n, ends[0], active)

	dev.Restart(t)
	c := testenvtest.Dial(t, dev.GRPCAddr)
	if got := verifyTopic(t, c, topic, led); !slices.Equal(got, ends) {
		t.Errorf("log ends %v after recovering a torn tail, %v before", got, ends)
	}
	produceAfterRestart(t, c, topic, led, ends)
	verifyTopic(t, c, topic, led)
}

// appendTornBatch appends the first half of a copy of the last batch in the
// segment file at path, restamped with base offset next, as a write cut short
// by a crash would leave it. It returns the number of bytes appended.
func appendTornBatch(t testing.TB, path string, next int64) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var last []byte
	it := record.NewBatches(data)
	for it.Next() {
		last = it.Bytes()
	}
	if last == nil {
		t.Fatalf("%s: no batch to copy (%v)", path, it.Err())
	}
	torn := slices.Clone(last)
	record.SetBaseOffset(torn, next)
	torn = torn[:len(torn)/2]
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(torn); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	return len(torn)
}

// namesRange reports whether msg names the offsets first to last: first,
// and last or (for a half-open range) last+1.
func namesRange(msg string, first, last int64) bool {
	has := func(n int64) bool {
		return regexp.MustCompile(`(^|[^0-9])` + strconv.FormatInt(n, 10) + `([^0-9]|$)`).MatchString(msg)
	}
	return has(first) && (has(last) || has(last+1))
}

// partitionDir finds the directory of topic's partition under dataDir: it is
// documented as <data-dir>/<topic>-<partition>/, and found by name anywhere
// below dataDir so a nested layout does not break the test.
func partitionDir(t testing.TB, dataDir, topic string, partition int32) string {
	t.Helper()
	name := topic + "-" + strconv.Itoa(int(partition))
	var found []string
	err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == name {
			found = append(found, path)
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dataDir, err)
	}
	if len(found) != 1 {
		t.Fatalf("want one directory %s under %s, found %v", name, dataDir, found)
	}
	if want := filepath.Join(dataDir, name); found[0] != want {
		t.Logf("partition directory is %s, not %s", found[0], want)
	}
	return found[0]
}

// flipByteInMiddleBatch inverts one byte in the records of the batch that
// holds the middle of the segment file at path, leaving every length field
// intact, and returns the batch's first and last offsets.
func flipByteInMiddleBatch(t testing.TB, path string) (first, last int64) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	mid := len(data) / 2
	it := record.NewBatches(data)
	for it.Next() {
		end := it.Position()
		h := it.Header()
		start := end - h.Size()
		if end <= mid {
			continue
		}
		if _, err := record.Validate(it.Bytes()); err != nil {
			t.Fatalf("%s: batch at offset %d (byte %d) is already invalid: %v", path, h.BaseOffset, start, err)
		}
		pos := start + record.HeaderSize + (h.Size()-record.HeaderSize)/2
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt([]byte{data[pos] ^ 0xff}, int64(pos)); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		return h.BaseOffset, h.LastOffset()
	}
	t.Fatalf("%s: no batch holds byte %d of %d (iteration stopped: %v)", path, mid, len(data), it.Err())
	return 0, 0
}
