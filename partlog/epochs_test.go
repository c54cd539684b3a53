package partlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/strata-broker/strata/record"
)

// replicaBatch builds a batch as a leader wrote it: base offset and epoch set.
func replicaBatch(t *testing.T, base int64, epoch int32, n int) []byte {
	t.Helper()
	b := record.NewBuilder(1000, 64)
	for i := 0; i < n; i++ {
		b.Append(&record.Record{Key: []byte("k"), Value: []byte("v"), Timestamp: 1000})
	}
	out, err := b.Build(record.None)
	if err != nil {
		t.Fatal(err)
	}
	record.SetBaseOffset(out, base)
	record.SetPartitionLeaderEpoch(out, epoch)
	return out
}

func openTestLog(t *testing.T, dir string) *Log {
	t.Helper()
	l, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestEpochsFollowAppends(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir)
	if got := l.LatestEpoch(); got != UndefinedEpoch {
		t.Fatalf("empty log epoch = %d", got)
	}
	if e, end := l.EndOffsetForEpoch(3); e != UndefinedEpoch || end != 0 {
		t.Fatalf("empty log EndOffsetForEpoch = %d,%d", e, end)
	}
	mustAppend := func(epoch int32, n int) {
		t.Helper()
		if _, err := l.Append(replicaBatch(t, 0, 0, n), epoch); err != nil {
			t.Fatal(err)
		}
	}
	mustAppend(1, 3) // 0..2
	mustAppend(1, 2) // 3..4
	mustAppend(4, 5) // 5..9
	want := []EpochEntry{{1, 0}, {4, 5}}
	if got := l.Epochs(); !slices.Equal(got, want) {
		t.Fatalf("epochs = %v, want %v", got, want)
	}
	for _, c := range []struct {
		ask       int32
		epoch     int32
		endOffset int64
	}{
		{0, 0, 0},  // before every epoch: the first epoch's start
		{1, 1, 5},  // ends where epoch 4 starts
		{2, 1, 5},  // unknown epoch: the largest below it
		{4, 4, 10}, // latest: the log end
		{9, 4, 10},
	} {
		if e, end := l.EndOffsetForEpoch(c.ask); e != c.epoch || end != c.endOffset {
			t.Errorf("EndOffsetForEpoch(%d) = %d,%d; want %d,%d", c.ask, e, end, c.epoch, c.endOffset)
		}
	}

	// Truncation forgets epochs that start at or after the new end.
	if err := l.TruncateTo(5); err != nil {
		t.Fatal(err)
	}
	if got := l.Epochs(); !slices.Equal(got, want[:1]) {
		t.Fatalf("after truncate epochs = %v", got)
	}
	mustAppend(6, 1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// The cache survives a restart.
	l = openTestLog(t, dir)
	defer l.Close()
	if got, want := l.Epochs(), []EpochEntry{{1, 0}, {6, 5}}; !slices.Equal(got, want) {
		t.Fatalf("after reopen epochs = %v, want %v", got, want)
	}
}

func TestEpochCheckpointRebuiltFromBatches(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir)
	for _, e := range []int32{2, 2, 5, 7} {
		if _, err := l.Append(replicaBatch(t, 0, 0, 2), e); err != nil {
			t.Fatal(err)
		}
	}
	want := l.Epochs()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, damage := range []func(path string) error{
		os.Remove,
		func(p string) error { return os.WriteFile(p, []byte("0\n7\n1 x\n"), 0o644) },
	} {
		if err := damage(filepath.Join(dir, leaderEpochFile)); err != nil {
			t.Fatal(err)
		}
		l = openTestLog(t, dir)
		if got := l.Epochs(); !slices.Equal(got, want) {
			t.Fatalf("rebuilt epochs = %v, want %v", got, want)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEpochCheckpointAheadOfLogIsTrimmed(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir)
	if _, err := l.Append(replicaBatch(t, 0, 0, 2), 3); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// As if a crash came after the epoch was recorded but before its batch.
	if err := os.WriteFile(filepath.Join(dir, leaderEpochFile), encodeEpochs([]EpochEntry{{3, 0}, {4, 2}}), 0o644); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir)
	defer l.Close()
	if got, want := l.Epochs(), []EpochEntry{{3, 0}}; !slices.Equal(got, want) {
		t.Fatalf("epochs = %v, want %v", got, want)
	}
}

func TestAppendReplicated(t *testing.T) {
	l := openTestLog(t, t.TempDir())
	defer l.Close()
	if _, err := l.AppendReplicated(replicaBatch(t, 0, 2, 3)); err != nil {
		t.Fatal(err)
	}
	// Offsets must continue the log exactly.
	for _, base := range []int64{2, 4} {
		if _, err := l.AppendReplicated(replicaBatch(t, base, 2, 1)); !errors.Is(err, ErrOffsetMismatch) {
			t.Fatalf("base %d: err = %v, want ErrOffsetMismatch", base, err)
		}
	}
	two := append(replicaBatch(t, 3, 2, 2), replicaBatch(t, 5, 5, 1)...)
	res, err := l.AppendReplicated(two)
	if err != nil {
		t.Fatal(err)
	}
	if res.FirstOffset != 3 || res.LastOffset != 5 || l.LogEndOffset() != 6 {
		t.Fatalf("result %+v, log end %d", res, l.LogEndOffset())
	}
	if got, want := l.Epochs(), []EpochEntry{{2, 0}, {5, 5}}; !slices.Equal(got, want) {
		t.Fatalf("epochs = %v, want %v", got, want)
	}
	// The batches are stored as sent: epochs and offsets intact.
	rr, err := l.Read(0, 1<<20, l.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	var epochs []int32
	it := record.NewBatches(rr.Data)
	for it.Next() {
		epochs = append(epochs, it.Header().PartitionLeaderEpoch)
	}
	if !slices.Equal(epochs, []int32{2, 2, 5}) {
		t.Fatalf("stored epochs %v", epochs)
	}
}

// After a crash the checkpoint may lag the log: epochs past the recovery
// point are read back from the batches, and epochs below it come from the
// checkpoint written before the recovery point moved.
func TestEpochsRecoveredAfterCrash(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir)
	for _, e := range []int32{1, 1, 3} {
		if _, err := l.Append(replicaBatch(t, 0, 0, 2), e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Flush(); err != nil { // recovery point 6; epochs {1,0},{3,4} on disk
		t.Fatal(err)
	}
	for _, e := range []int32{3, 5, 8} {
		if _, err := l.Append(replicaBatch(t, 0, 0, 2), e); err != nil {
			t.Fatal(err)
		}
	}
	want := []EpochEntry{{1, 0}, {3, 4}, {5, 8}, {8, 10}}
	if got := l.Epochs(); !slices.Equal(got, want) {
		t.Fatalf("epochs = %v, want %v", got, want)
	}
	// A crash: the files as they are now, without Close.
	crashed := t.TempDir()
	copyDir(t, dir, crashed)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if raw, err := os.ReadFile(filepath.Join(crashed, leaderEpochFile)); err != nil || !slices.Equal(mustDecodeEpochs(t, raw), want[:2]) {
		t.Fatalf("checkpoint at the crash = %q, %v; want the epochs below the recovery point only", raw, err)
	}
	l = openTestLog(t, crashed)
	defer l.Close()
	if got := l.Epochs(); !slices.Equal(got, want) {
		t.Fatalf("recovered epochs = %v, want %v", got, want)
	}
}

func mustDecodeEpochs(t *testing.T, raw []byte) []EpochEntry {
	t.Helper()
	e, err := decodeEpochs(raw)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The recovery point an open moves to the log end vouches for the leader
// epoch checkpoint below it: a crash right after it is written, opened
// alone or with a SyncBatch, must not lose the epochs recovery read back
// from the batches past the old recovery point.
func TestEpochsSurviveACrashAfterOpenMovesTheRecoveryPoint(t *testing.T) {
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) {
			e := newEnv(t, Config{MaxMessageBytes: 2 * keepRecoveryPointBytes})
			l := e.open()
			// A record larger than what a recovery may leave behind the
			// recovery point it keeps: this open moves it.
			if _, err := l.Append(buildBatch(t, 0, 1, keepRecoveryPointBytes+1), 1); err != nil {
				t.Fatal(err)
			}
			for _, ep := range []int32{1, 1, 3} {
				if _, err := l.Append(replicaBatch(t, 0, 0, 2), ep); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Flush(); err != nil { // recovery point 7; epochs {1,0},{3,5} on disk
				t.Fatal(err)
			}
			for _, ep := range []int32{3, 5, 8} {
				if _, err := l.Append(replicaBatch(t, 0, 0, 2), ep); err != nil {
					t.Fatal(err)
				}
			}
			want := []EpochEntry{{1, 0}, {3, 5}, {5, 9}, {8, 11}}
			crashed := e.crash(l)
			crashed.crashAt = func(step string) bool { return step == "open-after-recovery-point" }
			var batch *SyncBatch
			if batched {
				batch = NewSyncBatch()
			}
			if _, err := Open(Options{Dir: crashed.dir, Now: crashed.clock.Now, Files: crashed.files, CrashAt: crashed.crashAt, Sync: batch}); !errors.Is(err, errCrashed) {
				t.Fatalf("Open = %v, want the simulated crash after the recovery point", err)
			}
			if rp, err := readCheckpoint(crashed.dir, recoveryPointFile); err != nil || rp != 13 {
				t.Fatalf("recovery point at the crash = %d, %v; want 13", rp, err)
			}
			crashed.crashAt = nil
			if got := crashed.open().Epochs(); !slices.Equal(got, want) {
				t.Fatalf("epochs after the crash = %v, want %v", got, want)
			}
		})
	}
}
