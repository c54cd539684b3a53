package record

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Compression is the codec of a batch's records section (attribute bits 0-2).
type Compression int8

// Kafka's codec numbers.
const (
	None   Compression = 0
	GZIP   Compression = 1
	Snappy Compression = 2
	LZ4    Compression = 3
	ZSTD   Compression = 4
)

func (c Compression) String() string {
	switch c {
	case None:
		return "none"
	case GZIP:
		return "gzip"
	case Snappy:
		return "snappy"
	case LZ4:
		return "lz4"
	case ZSTD:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", int8(c))
}

// ParseCompression maps Kafka's compression.type names to codecs.
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "none", "uncompressed", "":
		return None, nil
	case "gzip":
		return GZIP, nil
	case "snappy":
		return Snappy, nil
	case "lz4":
		return LZ4, nil
	case "zstd":
		return ZSTD, nil
	}
	return None, fmt.Errorf("unknown compression %q (want none, gzip, snappy, lz4 or zstd)", s)
}

// MaxInflated bounds what one batch may inflate to in every reader of this
// package (ForEach, Retain and Scan's callers), so a small malicious batch
// cannot make them allocate without limit. ForEach and Retain hold a
// batch's records whole; Scan streams them and its caller chooses a
// tighter limit for what it accepts (a broker refuses produced batches
// well below this).
const MaxInflated = 128 << 20

// zstd decoders and encoders are expensive to build and safe for concurrent
// DecodeAll/EncodeAll, so one of each serves the process. They hold no
// configuration or state that callers could observe.
var (
	zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
		d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(MaxInflated))
		return d
	})
	zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
		return e
	})
)

// gzip and lz4 writers and readers allocate large tables when built (about
// 1 MiB for a gzip writer) and can be Reset onto new data, so they are
// pooled: compaction re-compresses every kept batch, and building one per
// batch dominated its time.
var (
	gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}
	gzipReaders sync.Pool // *gzip.Reader; built on first use, it needs a valid stream
	lz4Writers  = sync.Pool{New: func() any {
		w := lz4.NewWriter(nil)
		// 64 KiB blocks, as Kafka's clients write: the default 4 MiB makes
		// every reader of the batch allocate 4 MiB to decode it.
		_ = w.Apply(lz4.BlockSizeOption(lz4.Block64Kb))
		return w
	}}
	lz4Readers = sync.Pool{New: func() any { return lz4.NewReader(nil) }}
)

// xerialHeader starts snappy data framed by the Java client's snappy-java.
var xerialHeader = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

func decompress(c Compression, src []byte) ([]byte, error) {
	return decompressInto(nil, c, src)
}

// decompressInto decompresses src into dst's storage (from dst[:0]),
// growing it if needed, and returns the result: a loop over many batches
// that passes back what it got does not allocate and clear a new buffer
// for every batch.
func decompressInto(dst []byte, c Compression, src []byte) ([]byte, error) {
	switch c {
	case GZIP:
		r, err := gzipReader(src)
		if err != nil {
			return nil, err
		}
		out, err := readInto(dst[:0], r)
		gzipReaders.Put(r)
		return out, err
	case Snappy:
		if bytes.HasPrefix(src, xerialHeader) {
			return decodeXerial(src)
		}
		return decodeSnappyBlockInto(dst, src)
	case LZ4:
		r := lz4Readers.Get().(*lz4.Reader)
		r.Reset(bytes.NewReader(src))
		out, err := readInto(dst[:0], r)
		r.Reset(nil)
		lz4Readers.Put(r)
		return out, err
	case ZSTD:
		out, err := zstdDecoder().DecodeAll(src, dst[:0])
		if err == nil && len(out) > MaxInflated {
			return nil, fmt.Errorf("decompressed size exceeds %d bytes", MaxInflated)
		}
		return out, err
	}
	return nil, fmt.Errorf("unknown codec %d", c)
}

// gzipReader is a pooled gzip reader of src (put it back in gzipReaders
// when done); a header that does not parse is an error.
func gzipReader(src []byte) (*gzip.Reader, error) {
	r, _ := gzipReaders.Get().(*gzip.Reader)
	if r == nil {
		return gzip.NewReader(bytes.NewReader(src))
	}
	if err := r.Reset(bytes.NewReader(src)); err != nil {
		return nil, err
	}
	return r, nil
}

// readInto reads r to its end into dst's spare capacity, growing it when
// full, up to MaxInflated bytes.
func readInto(dst []byte, r io.Reader) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			if len(dst) > MaxInflated {
				return nil, fmt.Errorf("decompressed size exceeds %d bytes", MaxInflated)
			}
			dst = append(dst, make([]byte, max(len(dst), 4096))...)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			if len(dst) > MaxInflated {
				return nil, fmt.Errorf("decompressed size exceeds %d bytes", MaxInflated)
			}
			return dst, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func decodeSnappyBlock(src []byte) ([]byte, error) { return decodeSnappyBlockInto(nil, src) }

// decodeSnappyBlockInto decodes into dst's storage when it is large enough.
func decodeSnappyBlockInto(dst, src []byte) ([]byte, error) {
	n, err := snappy.DecodedLen(src)
	if err != nil {
		return nil, err
	}
	if n > MaxInflated {
		return nil, fmt.Errorf("decompressed size %d exceeds %d bytes", n, MaxInflated)
	}
	return s2.Decode(dst[:cap(dst)], src)
}

// decodeXerial reads snappy-java's framing: an 8-byte magic, two 4-byte
// versions, then chunks of a 4-byte length and a snappy block.
func decodeXerial(src []byte) ([]byte, error) {
	const headerLen = 16
	if len(src) < headerLen {
		return nil, fmt.Errorf("xerial snappy: short header")
	}
	src = src[headerLen:]
	var out []byte
	for len(src) > 0 {
		if len(src) < 4 {
			return nil, fmt.Errorf("xerial snappy: short chunk length")
		}
		n := binary.BigEndian.Uint32(src)
		src = src[4:]
		if uint64(n) > uint64(len(src)) {
			return nil, fmt.Errorf("xerial snappy: chunk of %d bytes overruns input", n)
		}
		chunk, err := decodeSnappyBlock(src[:n])
		if err != nil {
			return nil, err
		}
		if len(out)+len(chunk) > MaxInflated {
			return nil, fmt.Errorf("decompressed size exceeds %d bytes", MaxInflated)
		}
		out = append(out, chunk...)
		src = src[n:]
	}
	return out, nil
}

func compress(c Compression, src []byte) ([]byte, error) {
	return compressInto(nil, c, src)
}

// compressInto compresses src into dst's storage (from dst[:0]).
func compressInto(dst []byte, c Compression, src []byte) ([]byte, error) {
	switch c {
	case GZIP:
		buf := bytes.NewBuffer(dst[:0])
		w := gzipWriters.Get().(*gzip.Writer)
		defer gzipWriters.Put(w)
		w.Reset(buf)
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		w.Reset(nil)
		return buf.Bytes(), nil
	case Snappy:
		return snappy.Encode(dst[:cap(dst)], src), nil
	case LZ4:
		buf := bytes.NewBuffer(dst[:0])
		w := lz4Writers.Get().(*lz4.Writer)
		defer lz4Writers.Put(w)
		w.Reset(buf)
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		w.Reset(nil)
		return buf.Bytes(), nil
	case ZSTD:
		return zstdEncoder().EncodeAll(src, dst[:0]), nil
	}
	return nil, fmt.Errorf("unknown codec %d", c)
}
