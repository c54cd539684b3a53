package record

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// A compressed batch of a few kilobytes can inflate to over a hundred
// megabytes, so a broker that decompressed a produced batch whole before
// looking at it gave any client that much memory per batch. Scan reads a
// batch's records from the decompressor as a stream instead: what it holds
// is the decoder's own state, bounded per codec below, whatever the batch
// inflates to, and it stops as soon as the records pass the caller's limit.

// DecoderMemory bounds the memory Scan's decompression of one batch holds.
// It is the largest of the codecs' needs: a zstd window (maxZstdWindow) with
// two blocks of room; two lz4 blocks of at most 4 MiB and the dictionary
// of dependent blocks (under 128 KiB); a snappy block, decoded whole
// (maxSnappyBlock). gzip needs under 100 KiB.
const DecoderMemory = 8<<20 + 512<<10

// maxZstdWindow is the largest zstd window Scan accepts. zstd's format lets
// a decoder refuse windows above 8 MiB, and every compression level up to
// 19 stays within it; only the "ultra" levels (20-22) of a producer that
// does not know its input's size declare more.
const maxZstdWindow = 8 << 20

// maxSnappyBlock bounds a snappy block, which has to be decoded whole (its
// copies may reach back to its start). librdkafka compresses a batch as one
// block of at most its batch.size (1 MB by default); snappy-java, Kafka's
// Java client, frames 32 KiB blocks.
const maxSnappyBlock = 8 << 20

// InflatedTooLargeError refuses a batch whose records take more than Limit
// bytes once decompressed.
type InflatedTooLargeError struct {
	Codec Compression
	Limit int
}

func (e *InflatedTooLargeError) Error() string {
	return fmt.Sprintf("record batch: %s records inflate to more than %d bytes", e.Codec, e.Limit)
}

// DecoderLimitError refuses a batch whose decoding would need more memory
// than Scan gives one batch (DecoderMemory): a zstd window over 8 MiB, a
// snappy block over 8 MiB, lz4's legacy frames.
type DecoderLimitError struct {
	Codec  Compression
	Reason string
}

func (e *DecoderLimitError) Error() string {
	return fmt.Sprintf("record batch: %s records need more decoder memory than a batch may use: %s", e.Codec, e.Reason)
}

// RecordInfo is what Scan tells of a record without holding its bytes.
type RecordInfo struct {
	Offset    int64
	Timestamp int64
	KeySize   int // -1 for a null key
	ValueSize int // -1 for a null value (a tombstone)
	Headers   int
}

// Scan calls fn for every record of one batch (as returned by Validate or
// the Batches iterator), in offset order, with what it learns of the record.
// It reads compressed records as a stream, holding at most DecoderMemory of
// decoder state, and refuses with *InflatedTooLargeError a batch whose
// records inflate past limit bytes, having decompressed at most limit+1 of
// them. The decompressed stream is read to its end, so that the codec's own
// checksums are checked. Uncompressed records are read in place.
//
// It accepts what ForEach accepts, except compressed batches that break the
// bounds above: zstd frames with windows over 8 MiB, snappy blocks over
// 8 MiB and lz4's legacy frames (8 MiB blocks) are refused with
// *DecoderLimitError; no Kafka client writes them at its default settings.
func Scan(batch []byte, limit int, fn func(*RecordInfo) error) error {
	h, err := ParseHeader(batch)
	if err != nil {
		return err
	}
	if len(batch) < h.Size() {
		return ErrShortBuffer
	}
	body := batch[HeaderSize:h.Size()]
	var info RecordInfo
	c := h.Compression()
	if c == None {
		if len(body) > limit {
			return &InflatedTooLargeError{Codec: c, Limit: limit}
		}
		var r Record
		d := decoder{buf: body}
		for i := int32(0); i < h.RecordCount; i++ {
			if err := d.record(&h, &r); err != nil {
				return fmt.Errorf("record %d of batch at offset %d: %w", i, h.BaseOffset, err)
			}
			info = RecordInfo{Offset: r.Offset, Timestamp: r.Timestamp, KeySize: fieldSize(r.Key), ValueSize: fieldSize(r.Value), Headers: len(r.Headers)}
			if err := fn(&info); err != nil {
				return err
			}
		}
		return nil
	}
	in, err := openStream(c, body)
	if err != nil {
		return fmt.Errorf("batch at offset %d: %w", h.BaseOffset, streamError(c, err))
	}
	defer in.close()
	s := streams.Get().(*stream)
	defer s.release()
	s.limited = limitedReader{r: in.r, limit: limit, codec: c}
	s.br.Reset(&s.limited)
	for i := int32(0); i < h.RecordCount; i++ {
		if err := s.record(&h, &info); err != nil {
			return fmt.Errorf("record %d of batch at offset %d: %w", i, h.BaseOffset, streamError(c, err))
		}
		if err := fn(&info); err != nil {
			return err
		}
	}
	// Read on to the end: the codecs check their checksums there, and the
	// limit holds for whatever follows the last record.
	if _, err := s.br.WriteTo(io.Discard); err != nil {
		return fmt.Errorf("batch at offset %d: %w", h.BaseOffset, streamError(c, err))
	}
	return nil
}

// ScanStored is Scan for a batch a log already holds, up to MaxInflated: a
// batch beyond Scan's decoder bounds (stored before they applied) is decoded
// whole instead, fn seeing only the records it has not seen yet.
func ScanStored(batch []byte, fn func(*RecordInfo) error) error {
	seen := 0
	err := Scan(batch, MaxInflated, func(r *RecordInfo) error {
		seen++
		return fn(r)
	})
	var limit *DecoderLimitError
	if !errors.As(err, &limit) {
		return err
	}
	i := 0
	return ForEach(batch, func(r *Record) error {
		if i++; i <= seen {
			return nil
		}
		return fn(&RecordInfo{Offset: r.Offset, Timestamp: r.Timestamp, KeySize: fieldSize(r.Key), ValueSize: fieldSize(r.Value), Headers: len(r.Headers)})
	})
}

func fieldSize(b []byte) int {
	if b == nil {
		return -1
	}
	return len(b)
}

// stream parses records from a decompressing reader. Streams are pooled:
// their read buffer is the only allocation a scan would otherwise make.
type stream struct {
	limited limitedReader
	br      *bufio.Reader
	left    int64 // bytes of the current record not read yet
}

var streams = sync.Pool{New: func() any {
	return &stream{br: bufio.NewReaderSize(nil, 16<<10)}
}}

func (s *stream) release() {
	s.limited = limitedReader{}
	s.br.Reset(nil)
	streams.Put(s)
}

// errTruncated is the stream ending inside a record.
var errTruncated = errors.New("records end inside a record")

// streamError turns an error of a decompressing stream into what Scan
// reports: its own limits as they are, zstd's refusal of a large window as
// a *DecoderLimitError, anything else as a corrupt batch.
func streamError(c Compression, err error) error {
	var tooLarge *InflatedTooLargeError
	var limit *DecoderLimitError
	var bad *CorruptError
	switch {
	case errors.As(err, &tooLarge), errors.As(err, &limit), errors.As(err, &bad):
		return err
	case errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return &DecoderLimitError{Codec: c, Reason: err.Error()}
	case errors.Is(err, io.EOF):
		// The decompressed records ended cleanly, inside a record.
		return corrupt("%v", errTruncated)
	}
	return corrupt("decompress %s records: %v", c, err)
}

// record reads one record, as decoder.record does from a buffer.
func (s *stream) record(h *Header, info *RecordInfo) error {
	s.left = 10 // the length's own varint
	length, err := s.varint()
	if err != nil {
		return err
	}
	if length < 0 {
		return corrupt("record length %d overruns batch", length)
	}
	if length == 0 {
		return corrupt("empty record")
	}
	s.left = length
	if _, err := s.byte(); err != nil { // attributes, unused
		return err
	}
	tsDelta, err := s.varint()
	if err != nil {
		return err
	}
	offDelta, err := s.varint()
	if err != nil {
		return err
	}
	if offDelta < 0 || offDelta > int64(h.LastOffsetDelta) {
		return corrupt("offset delta %d outside 0..%d", offDelta, h.LastOffsetDelta)
	}
	if info.KeySize, err = s.field(); err != nil {
		return err
	}
	if info.ValueSize, err = s.field(); err != nil {
		return err
	}
	nh, err := s.varint()
	if err != nil {
		return err
	}
	if nh < 0 || nh > s.left {
		return corrupt("header count %d", nh)
	}
	for range nh {
		k, err := s.field()
		if err != nil {
			return err
		}
		if k < 0 {
			return corrupt("null header key")
		}
		if _, err := s.field(); err != nil {
			return err
		}
	}
	// Bytes left inside the record are ignored, as the buffer decoder
	// ignores them.
	if err := s.skip(s.left); err != nil {
		return err
	}
	info.Headers = int(nh)
	info.Offset = h.BaseOffset + offDelta
	if h.LogAppendTime() {
		info.Timestamp = h.MaxTimestamp
	} else {
		info.Timestamp = h.BaseTimestamp + tsDelta
	}
	return nil
}

func (s *stream) byte() (byte, error) {
	if s.left <= 0 {
		return 0, corrupt("record field overruns record")
	}
	b, err := s.br.ReadByte()
	if err != nil {
		return 0, err
	}
	s.left--
	return b, nil
}

// varint reads a zig-zag varint inside the record.
func (s *stream) varint() (int64, error) {
	var u uint64
	for shift := uint(0); shift < 64; shift += 7 {
		b, err := s.byte()
		if err != nil {
			return 0, err
		}
		if shift == 63 && b > 1 {
			break
		}
		u |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return int64(u>>1) ^ -int64(u&1), nil
		}
	}
	return 0, corrupt("bad varint")
}

// field skips a length-prefixed field and returns its length (negative for
// null).
func (s *stream) field() (int, error) {
	n, err := s.varint()
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return -1, nil
	}
	if n > s.left {
		return 0, corrupt("field of %d bytes overruns record", n)
	}
	return int(n), s.skip(n)
}

func (s *stream) skip(n int64) error {
	for n > 0 {
		k, err := s.br.Discard(int(min(n, 1<<30)))
		n -= int64(k)
		s.left -= int64(k)
		if err != nil {
			return err
		}
	}
	return nil
}

// limitedReader passes on at most limit bytes of r; one more is an
// *InflatedTooLargeError.
type limitedReader struct {
	r     io.Reader
	n     int
	limit int
	codec Compression
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n > l.limit {
		return 0, &InflatedTooLargeError{Codec: l.codec, Limit: l.limit}
	}
	// One byte past the limit is enough to know it is passed.
	p = p[:min(len(p), l.limit-l.n+1)]
	n, err := l.r.Read(p)
	l.n += n
	if l.n > l.limit {
		return n, &InflatedTooLargeError{Codec: l.codec, Limit: l.limit}
	}
	return n, err
}

// openedStream is a decompressing reader and what gives its decoder back.
type openedStream struct {
	r     io.Reader
	close func()
}

// zstd stream decoders decode synchronously (concurrency 1: no goroutines
// to stop) and refuse windows above maxZstdWindow; a frame declaring its
// content size is decoded into a window of that size, bounded the same way.
var zstdStreams = sync.Pool{New: func() any {
	d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderMaxMemory(maxZstdWindow))
	return d
}}

// plainReader hides what bytes.Reader is: zstd decodes a buffer it can see
// whole in one go, into memory as large as the output.
type plainReader struct{ r *bytes.Reader }

func (p plainReader) Read(b []byte) (int, error) { return p.r.Read(b) }

func openStream(c Compression, src []byte) (openedStream, error) {
	switch c {
	case GZIP:
		r, err := gzipReader(src)
		if err != nil {
			return openedStream{}, err
		}
		return openedStream{r: r, close: func() { gzipReaders.Put(r) }}, nil
	case LZ4:
		if err := checkLZ4Frames(src); err != nil {
			return openedStream{}, err
		}
		r := lz4Readers.Get().(*lz4.Reader)
		r.Reset(bytes.NewReader(src))
		return openedStream{r: r, close: func() {
			r.Reset(nil) // gives its block buffers back
			lz4Readers.Put(r)
		}}, nil
	case ZSTD:
		// The first frame's window is checked here, so that the common
		// case is refused by name; the decoder checks every frame's.
		var fh zstd.Header
		if fh.Decode(src) == nil {
			window := fh.WindowSize
			if fh.SingleSegment {
				window = fh.FrameContentSize
			}
			if window > maxZstdWindow {
				return openedStream{}, &DecoderLimitError{Codec: ZSTD, Reason: fmt.Sprintf("a window of %d bytes, over %d", window, maxZstdWindow)}
			}
		}
		d := zstdStreams.Get().(*zstd.Decoder)
		if err := d.Reset(plainReader{bytes.NewReader(src)}); err != nil {
			zstdStreams.Put(d)
			return openedStream{}, err
		}
		return openedStream{r: d, close: func() {
			_ = d.Reset(nil) // drops the source; keeps its buffers for the next
			zstdStreams.Put(d)
		}}, nil
	case Snappy:
		r := &snappyStream{src: src}
		if bytes.HasPrefix(src, xerialHeader) {
			if len(src) < xerialHeaderLen {
				return openedStream{}, fmt.Errorf("xerial snappy: short header")
			}
			r.src, r.xerial = src[xerialHeaderLen:], true
		}
		return openedStream{r: r, close: r.close}, nil
	}
	return openedStream{}, fmt.Errorf("unknown codec %d", c)
}

// lz4 frame magic numbers.
const (
	lz4Magic       = 0x184D2204
	lz4LegacyMagic = 0x184C2102
	lz4SkipMagic   = 0x184D2A50 // the low four bits are free
)

// checkLZ4Frames refuses lz4's legacy frames, whose 8 MiB blocks would take
// the reader past DecoderMemory, by walking the frames' headers and block
// sizes. Anything it cannot follow is left to the reader to report.
func checkLZ4Frames(src []byte) error {
	for len(src) >= 4 {
		magic := binary.LittleEndian.Uint32(src)
		switch {
		case magic == lz4LegacyMagic:
			return &DecoderLimitError{Codec: LZ4, Reason: "a legacy frame (8 MiB blocks)"}
		case magic&^0xf == lz4SkipMagic:
			if len(src) < 8 {
				return nil
			}
			n := uint64(binary.LittleEndian.Uint32(src[4:]))
			if n > uint64(len(src)-8) {
				return nil
			}
			src = src[8+n:]
			continue
		case magic != lz4Magic:
			return nil
		}
		if len(src) < 7 {
			return nil
		}
		flg := src[4]
		head := 7
		if flg&0x08 != 0 { // content size
			head += 8
		}
		if flg&0x01 != 0 { // dictionary id
			head += 4
		}
		if len(src) < head {
			return nil
		}
		src = src[head:]
		for {
			if len(src) < 4 {
				return nil
			}
			size := binary.LittleEndian.Uint32(src)
			src = src[4:]
			if size == 0 { // end mark
				break
			}
			n := uint64(size & 0x7fffffff)
			if flg&0x10 != 0 { // block checksum
				n += 4
			}
			if n > uint64(len(src)) {
				return nil
			}
			src = src[n:]
		}
		if flg&0x04 != 0 { // content checksum
			if len(src) < 4 {
				return nil
			}
			src = src[4:]
		}
	}
	return nil
}

const xerialHeaderLen = 16

// snappyStream decodes snappy one block at a time: the whole input as one
// block, or snappy-java's chunks (xerial), into one pooled buffer.
type snappyStream struct {
	src    []byte
	xerial bool
	done   bool
	buf    *[]byte
	out    []byte // decoded, not read yet
}

var snappyBufs sync.Pool // *[]byte

func (s *snappyStream) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if err := s.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// next decodes the next block into s.out.
func (s *snappyStream) next() error {
	var block []byte
	switch {
	case s.done || (s.xerial && len(s.src) == 0):
		return io.EOF
	case !s.xerial:
		block, s.done = s.src, true
	default:
		if len(s.src) < 4 {
			return fmt.Errorf("xerial snappy: short chunk length")
		}
		n := binary.BigEndian.Uint32(s.src)
		if uint64(n) > uint64(len(s.src)-4) {
			return fmt.Errorf("xerial snappy: chunk of %d bytes overruns input", n)
		}
		block, s.src = s.src[4:4+n], s.src[4+n:]
	}
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return err
	}
	if n > maxSnappyBlock {
		return &DecoderLimitError{Codec: Snappy, Reason: fmt.Sprintf("a block of %d bytes, over %d", n, maxSnappyBlock)}
	}
	if s.buf == nil {
		s.buf, _ = snappyBufs.Get().(*[]byte)
		if s.buf == nil {
			s.buf = new([]byte)
		}
	}
	if cap(*s.buf) < n {
		*s.buf = make([]byte, n)
	}
	out, err := snappy.Decode((*s.buf)[:n], block)
	if err != nil {
		return err
	}
	s.out = out
	return nil
}

func (s *snappyStream) close() {
	if s.buf != nil {
		snappyBufs.Put(s.buf)
		s.buf = nil
	}
}
