// Package record reads and writes Kafka's record-batch format, version 2
// (magic 2). Strata stores batches exactly in this format, so this package is
// shared by the log (validation, offset stamping), the API frontends and the
// Go client (encoding).
//
// Layout of a batch (big endian):
//
//	offset  size  field
//	0       8     baseOffset
//	8       4     batchLength (bytes after this field)
//	12      4     partitionLeaderEpoch
//	16      1     magic (2)
//	17      4     crc (CRC-32C of bytes 21..end)
//	21      2     attributes
//	23      4     lastOffsetDelta
//	27      8     baseTimestamp
//	35      8     maxTimestamp
//	43      8     producerId
//	51      2     producerEpoch
//	53      4     baseSequence
//	57      4     recordCount
//	61      ...   records
//
// baseOffset and partitionLeaderEpoch sit outside the CRC on purpose: the
// broker stamps them without recomputing the checksum.
package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// HeaderSize is the size of a v2 batch header, up to and including the record count.
const HeaderSize = 61

// LogOverhead is the size of the baseOffset and batchLength fields, which are
// not counted in batchLength.
const LogOverhead = 12

// MaxBatchSize bounds the batch length a reader accepts before it allocates or
// scans: a length field beyond it is corruption, not a batch. Kafka's own
// limit is max.message.bytes (default about 1 MiB); 256 MiB leaves room for
// any sane setting.
const MaxBatchSize = 256 << 20

const (
	offBaseOffset      = 0
	offLength          = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57
)

// Attribute bits.
const (
	compressionMask        = 0x07
	timestampTypeBit       = 0x08
	transactionalBit       = 0x10
	controlBit             = 0x20
	deleteHorizonBit       = 0x40
	supportedAttributeBits = compressionMask | timestampTypeBit | transactionalBit | controlBit | deleteHorizonBit
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrShortBuffer means the bytes end before the batch does. At the end of a
// log file this is a torn write; inside a request it is a malformed request.
var ErrShortBuffer = errors.New("record batch truncated")

// CorruptError describes a batch whose bytes are not a valid v2 batch.
type CorruptError struct {
	Reason string
}

func (e *CorruptError) Error() string { return "corrupt record batch: " + e.Reason }

func corrupt(format string, args ...any) error {
	return &CorruptError{Reason: fmt.Sprintf(format, args...)}
}

// IsCorrupt reports whether err is (or wraps) a CorruptError.
func IsCorrupt(err error) bool {
	var ce *CorruptError
	return errors.As(err, &ce)
}

// Header is the fixed part of a v2 batch.
type Header struct {
	BaseOffset           int64
	Length               int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	RecordCount          int32
}

// Size is the number of bytes the whole batch occupies.
func (h *Header) Size() int { return LogOverhead + int(h.Length) }

// LastOffset is the offset of the batch's last record.
func (h *Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset is the offset following the batch.
func (h *Header) NextOffset() int64 { return h.LastOffset() + 1 }

// Compression is the codec that compresses the batch's records.
func (h *Header) Compression() Compression { return Compression(h.Attributes & compressionMask) }

// LogAppendTime reports whether the batch's timestamps were set by the broker.
func (h *Header) LogAppendTime() bool { return h.Attributes&timestampTypeBit != 0 }

// Transactional reports whether the batch belongs to a transaction.
func (h *Header) Transactional() bool { return h.Attributes&transactionalBit != 0 }

// Control reports whether the batch is a control batch (transaction markers).
func (h *Header) Control() bool { return h.Attributes&controlBit != 0 }

// ParseHeader decodes the header at the start of b. It checks only what the
// header itself can tell: enough bytes, magic 2 and a plausible length. It
// does not require the whole batch to be present and does not check the CRC.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		if len(b) > offMagic && b[offMagic] != 2 {
			return h, corrupt("magic %d, want 2", int8(b[offMagic]))
		}
		return h, ErrShortBuffer
	}
	h.BaseOffset = int64(binary.BigEndian.Uint64(b[offBaseOffset:]))
	h.Length = int32(binary.BigEndian.Uint32(b[offLength:]))
	h.PartitionLeaderEpoch = int32(binary.BigEndian.Uint32(b[offLeaderEpoch:]))
	h.Magic = int8(b[offMagic])
	h.CRC = binary.BigEndian.Uint32(b[offCRC:])
	h.Attributes = int16(binary.BigEndian.Uint16(b[offAttributes:]))
	h.LastOffsetDelta = int32(binary.BigEndian.Uint32(b[offLastOffsetDelta:]))
	h.BaseTimestamp = int64(binary.BigEndian.Uint64(b[offBaseTimestamp:]))
	h.MaxTimestamp = int64(binary.BigEndian.Uint64(b[offMaxTimestamp:]))
	h.ProducerID = int64(binary.BigEndian.Uint64(b[offProducerID:]))
	h.ProducerEpoch = int16(binary.BigEndian.Uint16(b[offProducerEpoch:]))
	h.BaseSequence = int32(binary.BigEndian.Uint32(b[offBaseSequence:]))
	h.RecordCount = int32(binary.BigEndian.Uint32(b[offRecordCount:]))
	if h.Magic != 2 {
		return h, corrupt("magic %d, want 2", h.Magic)
	}
	if h.Length < HeaderSize-LogOverhead || h.Length > MaxBatchSize {
		return h, corrupt("batch length %d out of range", h.Length)
	}
	if h.RecordCount < 0 || h.LastOffsetDelta < 0 {
		return h, corrupt("record count %d, last offset delta %d", h.RecordCount, h.LastOffsetDelta)
	}
	if h.Attributes&^supportedAttributeBits != 0 {
		return h, corrupt("unknown attribute bits %#x", h.Attributes)
	}
	if c := h.Compression(); c > ZSTD {
		return h, corrupt("unknown compression codec %d", c)
	}
	return h, nil
}

// Checksum computes the CRC-32C a batch should carry.
func Checksum(batch []byte) uint32 {
	return crc32.Checksum(batch[offAttributes:], castagnoli)
}

// Validate checks that b starts with one complete, uncorrupted batch and returns
// its header. The batch is b[:h.Size()].
func Validate(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	size := h.Size()
	if len(b) < size {
		return h, ErrShortBuffer
	}
	if got := Checksum(b[:size]); got != h.CRC {
		return h, corrupt("crc %#08x, computed %#08x", h.CRC, got)
	}
	return h, checkCount(h)
}

// ValidateFraming is Validate without the CRC: for a batch whose CRC was
// checked since it was received, and whose bytes were not changed since,
// so that a second pass over all of them is spared.
func ValidateFraming(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if len(b) < h.Size() {
		return h, ErrShortBuffer
	}
	return h, checkCount(h)
}

// ValidateParts is Validate for a batch held in consecutive parts (a read
// that spans buffers), without joining them: the parts, in order, must hold
// at least one whole batch, which is checked.
func ValidateParts(parts [][]byte) (Header, error) {
	var head [HeaderSize]byte
	n := 0
	for _, p := range parts {
		n += copy(head[n:], p)
		if n == HeaderSize {
			break
		}
	}
	h, err := ParseHeader(head[:n])
	if err != nil {
		return h, err
	}
	size := h.Size()
	crc, at := uint32(0), 0
	for _, p := range parts {
		if at >= size {
			break
		}
		from, to := max(offAttributes-at, 0), min(len(p), size-at)
		if from < to {
			crc = crc32.Update(crc, castagnoli, p[from:to])
		}
		at += len(p)
	}
	if at < size {
		return h, ErrShortBuffer
	}
	if crc != h.CRC {
		return h, corrupt("crc %#08x, computed %#08x", h.CRC, crc)
	}
	return h, checkCount(h)
}

func checkCount(h Header) error {
	// A batch without records is valid in a log: compaction leaves one
	// where it dropped every record of a run of batches. Producers may not
	// send one (checkProduced in the broker refuses it).
	if h.RecordCount > 0 && int64(h.LastOffsetDelta) < int64(h.RecordCount)-1 {
		// Compaction may leave gaps between offsets (delta larger than count-1),
		// but a delta smaller than count-1 cannot be.
		return corrupt("last offset delta %d with %d records", h.LastOffsetDelta, h.RecordCount)
	}
	return nil
}

// SetBaseOffset stamps the batch's base offset. It does not touch the CRC,
// which does not cover that field.
func SetBaseOffset(batch []byte, off int64) {
	binary.BigEndian.PutUint64(batch[offBaseOffset:], uint64(off))
}

// SetPartitionLeaderEpoch stamps the leader epoch (also outside the CRC).
func SetPartitionLeaderEpoch(batch []byte, epoch int32) {
	binary.BigEndian.PutUint32(batch[offLeaderEpoch:], uint32(epoch))
}

// SetLogAppendTime marks the batch's timestamps as broker time ts and
// recomputes the CRC, which covers both fields.
func SetLogAppendTime(batch []byte, ts int64) {
	attrs := binary.BigEndian.Uint16(batch[offAttributes:]) | timestampTypeBit
	binary.BigEndian.PutUint16(batch[offAttributes:], attrs)
	binary.BigEndian.PutUint64(batch[offMaxTimestamp:], uint64(ts))
	binary.BigEndian.PutUint32(batch[offCRC:], Checksum(batch))
}

// Batches iterates over concatenated batches in b without checking CRCs. It
// stops at the first incomplete or malformed batch; Err tells which.
type Batches struct {
	buf []byte
	pos int
	err error
	h   Header
}

// NewBatches returns an iterator over the batches in b.
func NewBatches(b []byte) *Batches { return &Batches{buf: b} }

// Next advances to the next batch and reports whether there is one.
func (it *Batches) Next() bool {
	if it.err != nil || it.pos >= len(it.buf) {
		return false
	}
	h, err := ParseHeader(it.buf[it.pos:])
	if err == nil && it.pos+h.Size() > len(it.buf) {
		err = ErrShortBuffer
	}
	if err != nil {
		it.err = err
		return false
	}
	it.h = h
	it.pos += h.Size()
	return true
}

// Header returns the current batch's header.
func (it *Batches) Header() Header { return it.h }

// Bytes returns the current batch's bytes.
func (it *Batches) Bytes() []byte { return it.buf[it.pos-it.h.Size() : it.pos] }

// Position is the byte position just after the current batch.
func (it *Batches) Position() int { return it.pos }

// Err returns the error that stopped iteration, or nil at a clean end.
func (it *Batches) Err() error { return it.err }
