package record

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Header of a record (not of a batch): a key and an optional value.
type RecordHeader struct {
	Key   string
	Value []byte
}

// Record is one decoded record. A nil Key or Value is null (a nil Value is a
// tombstone); an empty non-nil slice is an empty value.
type Record struct {
	Offset    int64
	Timestamp int64 // milliseconds since the epoch
	Key       []byte
	Value     []byte
	Headers   []RecordHeader
}

// Builder encodes records into one uncompressed v2 batch. The zero value is
// not usable; call NewBuilder.
type Builder struct {
	buf          []byte
	count        int32
	baseTS       int64
	maxTS        int64
	producerID   int64
	producerEpoc int16
	baseSequence int32
	txn          bool
	scratch      []byte
}

// NewBuilder starts a batch whose first record has timestamp baseTimestamp.
// capacity is a hint for the encoded size.
func NewBuilder(baseTimestamp int64, capacity int) *Builder {
	b := &Builder{}
	b.Reset(baseTimestamp, capacity)
	return b
}

// Reset clears the builder for reuse, keeping its buffer.
func (b *Builder) Reset(baseTimestamp int64, capacity int) {
	if cap(b.buf) < HeaderSize+capacity {
		b.buf = make([]byte, HeaderSize, HeaderSize+capacity)
	}
	b.buf = b.buf[:HeaderSize]
	clear(b.buf)
	b.count = 0
	b.baseTS = baseTimestamp
	b.maxTS = baseTimestamp
	b.producerID = -1
	b.producerEpoc = -1
	b.baseSequence = -1
	b.txn = false
}

// SetProducer sets the idempotent-producer fields of the batch.
func (b *Builder) SetProducer(id int64, epoch int16, baseSequence int32) {
	b.producerID, b.producerEpoc, b.baseSequence = id, epoch, baseSequence
}

// SetTransactional marks the batch as part of its producer's transaction
// (the transactional attribute bit): a read_committed consumer sees its
// records only once the transaction commits.
func (b *Builder) SetTransactional(txn bool) { b.txn = txn }

// Len is the number of records appended.
func (b *Builder) Len() int { return int(b.count) }

// Size is the encoded size of the batch so far.
func (b *Builder) Size() int { return len(b.buf) }

// RecordSize is the number of bytes r adds to a batch, for callers that decide
// whether a record still fits before appending it.
func RecordSize(r *Record, tsDelta int64, offsetDelta int32) int {
	body := bodySize(r, tsDelta, offsetDelta)
	return varintSize(int64(body)) + body
}

func bodySize(r *Record, tsDelta int64, offsetDelta int32) int {
	n := 1 + varintSize(tsDelta) + varintSize(int64(offsetDelta))
	n += bytesFieldSize(r.Key) + bytesFieldSize(r.Value)
	n += varintSize(int64(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		n += varintSize(int64(len(h.Key))) + len(h.Key) + bytesFieldSize(h.Value)
	}
	return n
}

func bytesFieldSize(b []byte) int {
	if b == nil {
		return varintSize(-1)
	}
	return varintSize(int64(len(b))) + len(b)
}

// Append adds r to the batch. Its Offset is ignored: offsets are the order of
// appends. Its Timestamp, if zero, becomes the batch's base timestamp.
func (b *Builder) Append(r *Record) {
	ts := r.Timestamp
	if ts == 0 {
		ts = b.baseTS
	}
	if ts > b.maxTS {
		b.maxTS = ts
	}
	tsDelta := ts - b.baseTS
	body := bodySize(r, tsDelta, b.count)
	buf := b.buf
	buf = binary.AppendVarint(buf, int64(body))
	buf = append(buf, 0) // record attributes, unused
	buf = binary.AppendVarint(buf, tsDelta)
	buf = binary.AppendVarint(buf, int64(b.count))
	buf = appendBytesField(buf, r.Key)
	buf = appendBytesField(buf, r.Value)
	buf = binary.AppendVarint(buf, int64(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		buf = binary.AppendVarint(buf, int64(len(h.Key)))
		buf = append(buf, h.Key...)
		buf = appendBytesField(buf, h.Value)
	}
	b.buf = buf
	b.count++
}

func appendBytesField(buf, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(buf, -1)
	}
	buf = binary.AppendVarint(buf, int64(len(b)))
	return append(buf, b...)
}

// Build finishes the batch with base offset 0 and returns its bytes, which
// alias the builder's buffer until the next Reset. codec compresses the
// records section.
func (b *Builder) Build(codec Compression) ([]byte, error) {
	if b.count == 0 {
		return nil, fmt.Errorf("record batch: no records")
	}
	out := b.buf
	if codec != None {
		compressed, err := compress(codec, b.buf[HeaderSize:])
		if err != nil {
			return nil, err
		}
		out = append(b.buf[:HeaderSize:HeaderSize], compressed...)
	}
	if len(out)-LogOverhead > math.MaxInt32 {
		return nil, fmt.Errorf("record batch: %d bytes is too large", len(out))
	}
	attrs := int16(codec) & compressionMask
	if b.txn {
		attrs |= transactionalBit
	}
	putHeader(out, &Header{
		Length:               int32(len(out) - LogOverhead),
		PartitionLeaderEpoch: -1, // not yet stamped
		Attributes:           attrs,
		LastOffsetDelta:      b.count - 1,
		BaseTimestamp:        b.baseTS,
		MaxTimestamp:         b.maxTS,
		ProducerID:           b.producerID,
		ProducerEpoch:        b.producerEpoc,
		BaseSequence:         b.baseSequence,
		RecordCount:          b.count,
	})
	binary.BigEndian.PutUint32(out[offCRC:], Checksum(out))
	return out, nil
}

// Decode returns the records of one batch (as returned by Validate or the
// Batches iterator), decompressing them if needed. Key, value and header
// slices alias batch (or the decompressed copy) and must not be modified.
func Decode(batch []byte) ([]Record, error) {
	var out []Record
	err := ForEach(batch, func(r *Record) error {
		out = append(out, *r)
		return nil
	})
	return out, err
}

// ForEach calls fn for every record of one batch in offset order. The Record
// passed to fn is reused between calls.
func ForEach(batch []byte, fn func(*Record) error) error {
	var s Scratch
	return s.ForEach(batch, fn)
}

// Scratch keeps the buffers a loop over many batches reuses: records are
// decompressed into the same memory batch after batch instead of into a
// fresh buffer each time, which the runtime would allocate and clear. Not
// safe for concurrent use; the records a call hands out alias its buffers
// until the next call.
type Scratch struct {
	plain   []byte // decompressed records
	records []byte // records re-encoded by Retain
	packed  []byte // Retain's compressed output
}

// ForEach is the package's ForEach, decompressing into s.
func (s *Scratch) ForEach(batch []byte, fn func(*Record) error) error {
	h, err := ParseHeader(batch)
	if err != nil {
		return err
	}
	if len(batch) < h.Size() {
		return ErrShortBuffer
	}
	body := batch[HeaderSize:h.Size()]
	if c := h.Compression(); c != None {
		body, err = decompressInto(s.plain, c, body)
		if err != nil {
			return corrupt("decompress %s records: %v", c, err)
		}
		s.plain = body
	}
	var r Record
	d := decoder{buf: body}
	for i := int32(0); i < h.RecordCount; i++ {
		if err := d.record(&h, &r); err != nil {
			return fmt.Errorf("record %d of batch at offset %d: %w", i, h.BaseOffset, err)
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return nil
}

type decoder struct {
	buf []byte
	pos int
}

func (d *decoder) varint() (int64, error) {
	v, n := binary.Varint(d.buf[d.pos:])
	if n <= 0 {
		return 0, corrupt("bad varint at byte %d", d.pos)
	}
	d.pos += n
	return v, nil
}

func (d *decoder) bytes() ([]byte, error) {
	n, err := d.varint()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, nil
	}
	if n > int64(len(d.buf)-d.pos) {
		return nil, corrupt("field of %d bytes overruns record", n)
	}
	b := d.buf[d.pos : d.pos+int(n) : d.pos+int(n)]
	d.pos += int(n)
	return b, nil
}

func (d *decoder) record(h *Header, r *Record) error {
	length, err := d.varint()
	if err != nil {
		return err
	}
	if length < 0 || length > int64(len(d.buf)-d.pos) {
		return corrupt("record length %d overruns batch", length)
	}
	end := d.pos + int(length)
	sub := decoder{buf: d.buf[:end], pos: d.pos}
	d.pos = end
	if sub.pos >= end {
		return corrupt("empty record")
	}
	sub.pos++ // attributes
	tsDelta, err := sub.varint()
	if err != nil {
		return err
	}
	offDelta, err := sub.varint()
	if err != nil {
		return err
	}
	if offDelta < 0 || offDelta > int64(h.LastOffsetDelta) {
		return corrupt("offset delta %d outside 0..%d", offDelta, h.LastOffsetDelta)
	}
	if r.Key, err = sub.bytes(); err != nil {
		return err
	}
	if r.Value, err = sub.bytes(); err != nil {
		return err
	}
	nh, err := sub.varint()
	if err != nil {
		return err
	}
	if nh < 0 || nh > int64(end-sub.pos) {
		return corrupt("header count %d", nh)
	}
	r.Headers = r.Headers[:0]
	if nh > 0 {
		r.Headers = make([]RecordHeader, 0, nh)
	}
	for j := int64(0); j < nh; j++ {
		k, err := sub.bytes()
		if err != nil {
			return err
		}
		if k == nil {
			return corrupt("null header key")
		}
		v, err := sub.bytes()
		if err != nil {
			return err
		}
		r.Headers = append(r.Headers, RecordHeader{Key: string(k), Value: v})
	}
	r.Offset = h.BaseOffset + offDelta
	if h.LogAppendTime() {
		r.Timestamp = h.MaxTimestamp
	} else {
		r.Timestamp = h.BaseTimestamp + tsDelta
	}
	return nil
}

func varintSize(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}
