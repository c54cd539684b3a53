package partlog

import (
	"errors"
	"fmt"

	"github.com/strata-broker/strata/record"
)

// ErrLogClosed is returned by every method called after Close.
var ErrLogClosed = errors.New("log: closed")

// ErrLogFailed is returned (wrapped, with the original error) by writes after
// a write or fsync failed. The log keeps the first failure and refuses further
// writes: after a failed fsync the kernel may have dropped dirty pages, so
// carrying on could acknowledge data that is already lost. Reopening the log
// recovers from what is on disk.
var ErrLogFailed = errors.New("log: refusing writes after an earlier I/O failure")

// ErrOffsetMismatch rejects replicated batches that do not continue the log
// at its end: the follower's view of the leader's log is out of date.
var ErrOffsetMismatch = errors.New("log: batch does not continue the log")

// RecordTooLargeError rejects an Append whose batch exceeds max.message.bytes.
type RecordTooLargeError struct {
	Batch int // index of the batch within the Append call
	Size  int // bytes of the batch
	Max   int // max.message.bytes
}

func (e *RecordTooLargeError) Error() string {
	return fmt.Sprintf("log: append: batch %d is %d bytes, larger than max.message.bytes %d", e.Batch, e.Size, e.Max)
}

// OffsetOutOfRangeError is returned for an offset outside [Start, End].
type OffsetOutOfRangeError struct {
	Offset, Start, End int64
}

func (e *OffsetOutOfRangeError) Error() string {
	return fmt.Sprintf("log: offset %d out of range [%d, %d]", e.Offset, e.Start, e.End)
}

// CorruptionError reports a stored batch that failed its checks (header,
// CRC-32C, offset continuity) when read. Offsets [FirstOffset, NextOffset)
// cannot be served; a reader may continue at NextOffset.
type CorruptionError struct {
	Dir         string // partition directory
	Segment     int64  // base offset of the segment
	Position    int64  // byte position of the damaged batch in the segment file
	FirstOffset int64  // first offset of the damaged range
	NextOffset  int64  // first offset after the damaged range
	Err         error  // what was wrong (a *record.CorruptError or record.ErrShortBuffer)
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("log: corrupt data in %s segment %s at byte %d: offsets [%d, %d) unreadable: %v",
		e.Dir, segmentName(e.Segment, logSuffix), e.Position, e.FirstOffset, e.NextOffset, e.Err)
}

func (e *CorruptionError) Unwrap() error { return e.Err }

// isDamage tells damaged bytes (a batch that is cut short or does not check
// out) from I/O errors.
func isDamage(err error) bool {
	return errors.Is(err, record.ErrShortBuffer) || record.IsCorrupt(err)
}

func corruptf(format string, args ...any) error {
	return &record.CorruptError{Reason: fmt.Sprintf(format, args...)}
}
