package record

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Retain rewrites one batch keeping only the records keep accepts, for log
// compaction. The new batch spans the offsets [base, last], which must
// include every kept record's offset (base may be above the batch's own
// base when keep drops the records below it): a compacted log stays a dense run of
// batches, each batch absorbing the offsets of records dropped around it,
// so readers and replicas never meet a hole between batches. Records keep
// their offsets, timestamps, keys, values and headers; the batch keeps its
// codec, timestamp type and leader epoch. The producer fields survive only
// when the batch still spans exactly its original offsets (otherwise
// baseSequence + offset delta would no longer name the producer's
// sequences) and are cleared to -1 otherwise.
//
// It returns the new batch (appended to dst) and how many records it holds;
// with none kept it returns dst unchanged and 0.
func Retain(dst, batch []byte, base, last int64, keep func(*Record) bool) ([]byte, int, error) {
	var s Scratch
	return s.Retain(dst, batch, base, last, keep)
}

// Retain is the package's Retain, with its intermediate buffers in s.
func (s *Scratch) Retain(dst, batch []byte, base, last int64, keep func(*Record) bool) ([]byte, int, error) {
	h, err := ParseHeader(batch)
	if err != nil {
		return dst, 0, err
	}
	if len(batch) < h.Size() {
		return dst, 0, ErrShortBuffer
	}
	if last < base || last-base > math.MaxInt32 {
		return dst, 0, fmt.Errorf("record batch: cannot re-span offsets %d..%d as %d..%d", h.BaseOffset, h.LastOffset(), base, last)
	}
	body := batch[HeaderSize:h.Size()]
	if c := h.Compression(); c != None {
		if body, err = decompressInto(s.plain, c, body); err != nil {
			return dst, 0, corrupt("decompress %s records: %v", c, err)
		}
		s.plain = body
	}
	var (
		records = s.records[:0]
		kept    int32
		maxTS   = int64(math.MinInt64)
		r       Record
	)
	d := decoder{buf: body}
	for i := int32(0); i < h.RecordCount; i++ {
		start := d.pos
		if err := d.record(&h, &r); err != nil {
			return dst, 0, fmt.Errorf("record %d of batch at offset %d: %w", i, h.BaseOffset, err)
		}
		if !keep(&r) {
			continue
		}
		if r.Offset < base || r.Offset > last {
			return dst, 0, fmt.Errorf("record batch: kept record at offset %d outside %d..%d", r.Offset, base, last)
		}
		kept++
		maxTS = max(maxTS, r.Timestamp)
		records, err = appendRebased(records, body[start:d.pos], r.Offset-base)
		if err != nil {
			return dst, 0, fmt.Errorf("record %d of batch at offset %d: %w", i, h.BaseOffset, err)
		}
	}
	s.records = records
	if kept == 0 {
		return dst, 0, nil
	}
	if c := h.Compression(); c != None {
		if records, err = compressInto(s.packed[:0], c, records); err != nil {
			return dst, 0, fmt.Errorf("record batch: compress %s: %w", c, err)
		}
		s.packed = records
	}
	if h.LogAppendTime() {
		maxTS = h.MaxTimestamp // the broker's time, which records report
	}
	out := h
	out.BaseOffset = base
	out.LastOffsetDelta = int32(last - base)
	out.MaxTimestamp = maxTS
	out.RecordCount = kept
	if base != h.BaseOffset || last != h.LastOffset() {
		out.ProducerID, out.ProducerEpoch, out.BaseSequence = -1, -1, -1
	}
	dst, err = appendBatch(dst, &out, records)
	if err != nil {
		return dst, 0, err
	}
	return dst, int(kept), nil
}

// appendRebased re-encodes one raw record (its length varint included) with
// offset delta delta; everything after the offset delta is copied as is.
func appendRebased(dst, raw []byte, delta int64) ([]byte, error) {
	d := decoder{buf: raw}
	if _, err := d.varint(); err != nil { // length
		return dst, err
	}
	attrPos := d.pos
	d.pos++
	if _, err := d.varint(); err != nil { // timestamp delta
		return dst, err
	}
	tsEnd := d.pos
	if _, err := d.varint(); err != nil { // old offset delta
		return dst, err
	}
	rest := raw[d.pos:]
	head := raw[attrPos:tsEnd] // attributes and timestamp delta
	bodyLen := len(head) + varintSize(delta) + len(rest)
	dst = binary.AppendVarint(dst, int64(bodyLen))
	dst = append(dst, head...)
	dst = binary.AppendVarint(dst, delta)
	return append(dst, rest...), nil
}

// Respan stretches a batch to end at offset last (which must not be before
// its last record) and recomputes its CRC. Its producer fields are cleared:
// they no longer describe its offsets.
func Respan(batch []byte, last int64) {
	base := int64(binary.BigEndian.Uint64(batch[offBaseOffset:]))
	binary.BigEndian.PutUint32(batch[offLastOffsetDelta:], uint32(last-base))
	binary.BigEndian.PutUint64(batch[offProducerID:], math.MaxUint64)
	binary.BigEndian.PutUint16(batch[offProducerEpoch:], math.MaxUint16)
	binary.BigEndian.PutUint32(batch[offBaseSequence:], math.MaxUint32)
	binary.BigEndian.PutUint32(batch[offCRC:], Checksum(batch))
}

// EmptyBatch returns a batch with no records spanning the offsets [base,
// last]: what compaction leaves where every record of a run of batches was
// dropped and no kept batch can absorb the offsets. Kafka's own compaction
// leaves such batches too, so consumers step over them by their last offset.
func EmptyBatch(dst []byte, base, last int64, leaderEpoch int32, baseTS, maxTS int64) ([]byte, error) {
	if last < base || last-base > math.MaxInt32 {
		return dst, fmt.Errorf("record batch: cannot span offsets %d..%d", base, last)
	}
	h := Header{
		BaseOffset: base, PartitionLeaderEpoch: leaderEpoch, Magic: 2,
		LastOffsetDelta: int32(last - base), BaseTimestamp: baseTS, MaxTimestamp: maxTS,
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
	}
	return appendBatch(dst, &h, nil)
}

// appendBatch encodes h (its Length and CRC computed here) and records.
func appendBatch(dst []byte, h *Header, records []byte) ([]byte, error) {
	size := HeaderSize + len(records)
	if size-LogOverhead > MaxBatchSize {
		return dst, fmt.Errorf("record batch: %d bytes is too large", size)
	}
	at := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	h.Length = int32(size - LogOverhead)
	putHeader(dst[at:], h)
	dst = append(dst, records...)
	b := dst[at:]
	binary.BigEndian.PutUint32(b[offCRC:], Checksum(b))
	return dst, nil
}

// putHeader writes h, magic 2, into the first HeaderSize bytes of b; the
// CRC is left for the caller, once the records follow.
func putHeader(b []byte, h *Header) {
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(h.BaseOffset))
	binary.BigEndian.PutUint32(b[offLength:], uint32(h.Length))
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(h.PartitionLeaderEpoch))
	b[offMagic] = 2
	binary.BigEndian.PutUint16(b[offAttributes:], uint16(h.Attributes))
	binary.BigEndian.PutUint32(b[offLastOffsetDelta:], uint32(h.LastOffsetDelta))
	binary.BigEndian.PutUint64(b[offBaseTimestamp:], uint64(h.BaseTimestamp))
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(h.MaxTimestamp))
	binary.BigEndian.PutUint64(b[offProducerID:], uint64(h.ProducerID))
	binary.BigEndian.PutUint16(b[offProducerEpoch:], uint16(h.ProducerEpoch))
	binary.BigEndian.PutUint32(b[offBaseSequence:], uint32(h.BaseSequence))
	binary.BigEndian.PutUint32(b[offRecordCount:], uint32(h.RecordCount))
}
