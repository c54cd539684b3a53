package partlog

import (
	"errors"
	"fmt"

	"github.com/strata-broker/strata/record"
)

// ErrLogClosed is returned by every method called after Close.
var ErrLogClosed = errors.New("log: closed")

// ErrLogFailed is returned (wrapped, with the original *StorageError) by
// reads and writes after a write, fsync or read failed. The log keeps the
// first failure and refuses further reads and writes: after a failed fsync
// the kernel may have dropped dirty pages, so carrying on could acknowledge,
// or serve, data that is already lost. Recover (or reopening the log)
// recovers from what is on disk.
var ErrLogFailed = errors.New("log: offline after an earlier I/O failure")

// StorageError is a failure of the storage under a log: the operating system
// refused a write, an fsync, a read or a file operation (the disk is full,
// the device failed, the filesystem went read-only, ...). Damaged data is
// not one (a *CorruptionError), nor is a request the log refuses. It is
// Kafka's KafkaStorageException: the first one takes the log offline (see
// ErrLogFailed), whatever the operation and the errno, since after any of
// them what is on disk is no longer known.
type StorageError struct {
	Dir string // partition directory
	Err error  // what failed, naming the file and the operation
}

func (e *StorageError) Error() string { return e.Err.Error() }

func (e *StorageError) Unwrap() error { return e.Err }

// IsStorageError reports whether err is, or comes from, a storage failure of
// a log: the first failure itself, or a refusal of a log it took offline.
func IsStorageError(err error) bool {
	var se *StorageError
	return errors.As(err, &se)
}

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
