package partlog

import (
	"errors"
	"io"

	"github.com/strata-broker/strata/record"
)

// Read sizes for sequential scans.
const (
	scanChunk = 1 << 20  // recovery and index rebuilds
	walkChunk = 16 << 10 // header walks from an index entry to a batch
)

// scanner reads the batches of a segment file sequentially through a buffer.
// It never reads at or past size, the bytes known to be written.
type scanner struct {
	r     io.ReaderAt
	size  int64
	chunk int
	buf   []byte
	at    int64 // file position of buf[0]
}

func newScanner(r io.ReaderAt, size int64, chunk int) *scanner {
	return &scanner{r: r, size: size, chunk: chunk}
}

// read returns the n bytes at pos, valid until the next call. Bytes beyond
// size are record.ErrShortBuffer.
func (sc *scanner) read(pos int64, n int) ([]byte, error) {
	if pos < 0 || n < 0 || pos > sc.size || int64(n) > sc.size-pos {
		return nil, record.ErrShortBuffer
	}
	if pos >= sc.at && pos+int64(n) <= sc.at+int64(len(sc.buf)) {
		o := pos - sc.at
		return sc.buf[o : o+int64(n)], nil
	}
	want := min(int64(max(n, sc.chunk)), sc.size-pos)
	if int64(cap(sc.buf)) < want {
		sc.buf = make([]byte, want)
	}
	sc.buf, sc.at = sc.buf[:want], pos
	if err := readFull(sc.r, sc.buf, pos); err != nil {
		sc.buf = sc.buf[:0]
		return nil, err
	}
	return sc.buf[:n], nil
}

// header parses the batch header at pos and checks that the batch lies
// within the file.
func (sc *scanner) header(pos int64) (record.Header, error) {
	n := min(int64(record.HeaderSize), sc.size-pos)
	if n <= 0 {
		return record.Header{}, record.ErrShortBuffer
	}
	b, err := sc.read(pos, int(n))
	if err != nil {
		return record.Header{}, err
	}
	h, err := record.ParseHeader(b)
	if err == nil && int64(h.Size()) > sc.size-pos {
		err = record.ErrShortBuffer
	}
	return h, err
}

// batch checks the batch at pos: a sound header, within the file, with base
// offset expected, and with verify a correct CRC (the whole batch is read).
func (sc *scanner) batch(pos, expected int64, verify bool) (record.Header, error) {
	h, err := sc.header(pos)
	if err != nil {
		return h, err
	}
	if h.BaseOffset != expected {
		return h, corruptf("base offset %d, expected %d", h.BaseOffset, expected)
	}
	if verify {
		b, err := sc.read(pos, h.Size())
		if err != nil {
			return h, err
		}
		if _, err := record.Validate(b); err != nil {
			return h, err
		}
	}
	return h, nil
}

// damage is a batch that failed its checks during a walk.
type damage struct {
	pos    int64 // byte position of the batch
	offset int64 // the offset it should start with
	err    error
}

func (d *damage) torn() bool { return errors.Is(d.err, record.ErrShortBuffer) }

// walk visits consecutive batches from pos, the first of which must have
// base offset expected, up to the end of the file, calling fn (if not nil)
// for each sound one; fn must not keep h, which the next batch overwrites.
// It returns the position and offset after the last sound batch and the
// damage that stopped it, if any; err is an I/O error.
func (sc *scanner) walk(pos, expected int64, verify bool, fn func(pos int64, h *record.Header)) (int64, int64, *damage, error) {
	// One header for the whole walk: the address of a fresh one per batch
	// would escape, an allocation per batch.
	var h record.Header
	for pos < sc.size {
		var err error
		h, err = sc.batch(pos, expected, verify)
		if err != nil {
			if isDamage(err) {
				return pos, expected, &damage{pos: pos, offset: expected, err: err}, nil
			}
			return pos, expected, nil, err
		}
		if fn != nil {
			fn(pos, &h)
		}
		pos += int64(h.Size())
		expected = h.NextOffset()
	}
	return pos, expected, nil, nil
}

// pastDamage looks for where batches resume after a damaged batch at pos that
// should start at offset, using the damaged batch's own length: it is trusted
// only if it ends the file exactly (atEnd) or is followed by a sound batch
// (header, CRC) with a base offset in (offset, limit) (found, at q with base
// next). The bound matters: the base offset is not covered by the CRC.
func (sc *scanner) pastDamage(pos, offset, limit int64) (q, next int64, found, atEnd bool) {
	h, err := sc.header(pos)
	if err != nil {
		return 0, 0, false, false
	}
	q = pos + int64(h.Size())
	if q == sc.size {
		return q, 0, false, true
	}
	h2, err := sc.header(q)
	if err != nil || h2.BaseOffset <= offset || h2.BaseOffset >= limit {
		return 0, 0, false, false
	}
	if _, err := sc.batch(q, h2.BaseOffset, true); err != nil {
		return 0, 0, false, false
	}
	return q, h2.BaseOffset, true, false
}

// readFull reads len(b) bytes at off; a file shorter than that is
// record.ErrShortBuffer (damage), anything else an I/O error.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return record.ErrShortBuffer
	}
	return err
}
