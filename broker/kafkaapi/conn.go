package kafkaapi

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// keepBufferBytes bounds the read and write buffers a connection keeps
// between requests; larger ones are left to the garbage collector.
const keepBufferBytes = 1 << 20

// conn is one client connection. Requests are handled one at a time, in
// order, as a Kafka broker does: clients rely on responses coming back in
// request order, and an idempotent producer's batches must be appended in
// the order they were sent.
type conn struct {
	s          *Server
	nc         net.Conn
	remote     string
	remoteHost string
	r          *bufio.Reader
	rbuf       []byte
	wbuf       []byte
	// cuts and pieces are reused by fetch responses' vectored writes.
	cuts    []recordCut
	pieces  [][]byte
	closing atomic.Bool
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{
		s:          s,
		nc:         nc,
		remote:     nc.RemoteAddr().String(),
		remoteHost: hostOf(nc.RemoteAddr()),
		r:          bufio.NewReaderSize(nc, 64<<10),
	}
}

// closeIdle makes the connection close once its current request (if any)
// is answered.
func (c *conn) closeIdle() {
	c.closing.Store(true)
	c.nc.SetReadDeadline(time.Now())
}

// header is a request header (v1, or v2 for flexible requests).
type header struct {
	key           int16
	version       int16
	correlationID int32
	clientID      string
	remoteHost    string // the client's address, without the port
}

// protocolError closes the connection: the stream can no longer be trusted
// to be framed, or the client asked for something it was never offered.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return e.msg }

func protocolErrorf(format string, args ...any) error {
	return &protocolError{msg: fmt.Sprintf(format, args...)}
}

func (c *conn) serve() {
	defer c.nc.Close()
	c.s.metrics.connections.Inc()
	defer c.s.metrics.connections.Dec()
	for {
		c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
		if c.closing.Load() {
			return
		}
		frame, err := c.readFrame()
		if err != nil {
			c.logClose(err)
			return
		}
		if err := c.handleFrame(frame); err != nil {
			c.logClose(err)
			return
		}
	}
}

// logClose says why a connection ends, unless it is an ordinary end.
func (c *conn) logClose(err error) {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return
	case errors.Is(err, os.ErrDeadlineExceeded):
		if !c.closing.Load() {
			c.s.logger.Debug("kafka connection idle, closing", "remote", c.remote)
		}
		return
	}
	var pe *protocolError
	if errors.As(err, &pe) {
		c.s.metrics.protocolErrors.Inc()
		c.s.logger.Warn("kafka connection closed: bad request", "remote", c.remote, "err", err)
		return
	}
	c.s.logger.Info("kafka connection closed", "remote", c.remote, "err", err)
}

// readFrame reads one length-prefixed request. A frame's memory grows with
// the bytes that actually arrive, so a large length prefix alone costs
// nothing.
func (c *conn) readFrame() ([]byte, error) {
	var lenBuf [4]byte
	if _, err := io.ReadFull(c.r, lenBuf[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(lenBuf[:]))
	if n < 8 {
		return nil, protocolErrorf("request length %d is too short for a request header", n)
	}
	if n > c.s.cfg.MaxRequestBytes {
		return nil, protocolErrorf("request of %d bytes is over socket.request.max.bytes (%d)", n, c.s.cfg.MaxRequestBytes)
	}
	if int(n) <= keepBufferBytes {
		if cap(c.rbuf) < int(n) {
			// Grown in powers of two: a connection costs what its largest
			// request needs, and idle clients little.
			c.rbuf = make([]byte, min(1<<bits.Len32(uint32(n-1)), keepBufferBytes))
		}
		buf := c.rbuf[:n]
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return nil, truncated(err, n)
		}
		return buf, nil
	}
	buf := make([]byte, 0, keepBufferBytes)
	for len(buf) < int(n) {
		chunk := min(int(n)-len(buf), max(len(buf), keepBufferBytes))
		buf = append(buf, make([]byte, chunk)...)
		if _, err := io.ReadFull(c.r, buf[len(buf)-chunk:]); err != nil {
			return nil, truncated(err, n)
		}
	}
	return buf, nil
}

func truncated(err error, n int32) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return protocolErrorf("connection closed in the middle of a %d-byte request", n)
	}
	return err
}

// parseHeader decodes the request header and returns the body after it.
// Whether the header carries tagged fields depends on the request's version
// (flexible versions use header v2); req has its version set.
func parseHeader(frame []byte) (header, kmsg.Request, []byte, error) {
	var h header
	h.key = int16(binary.BigEndian.Uint16(frame[0:]))
	h.version = int16(binary.BigEndian.Uint16(frame[2:]))
	h.correlationID = int32(binary.BigEndian.Uint32(frame[4:]))
	rest := frame[8:]
	req := kmsg.RequestForKey(h.key)
	if req == nil {
		return h, nil, nil, protocolErrorf("unknown API key %d", h.key)
	}
	if len(rest) < 2 {
		return h, nil, nil, protocolErrorf("request header truncated")
	}
	idLen := int16(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if idLen > 0 {
		if int(idLen) > len(rest) {
			return h, nil, nil, protocolErrorf("request header truncated in the client id")
		}
		h.clientID = string(rest[:idLen])
		rest = rest[idLen:]
	} else if idLen < -1 {
		return h, nil, nil, protocolErrorf("client id length %d", idLen)
	}
	flexible := false
	if h.version >= 0 && h.version <= req.MaxVersion() {
		req.SetVersion(h.version)
		flexible = req.IsFlexible()
	} else if h.key == apiVersionsKey {
		// An ApiVersions request from a newer client: its header is
		// flexible (v3+ are), and only the header is read.
		flexible = true
	}
	if flexible {
		var err error
		if rest, err = skipTags(rest); err != nil {
			return h, nil, nil, err
		}
	}
	return h, req, rest, nil
}

// skipTags skips a tagged-field section: a count, then per field a tag, a
// size and that many bytes, all unsigned varints.
func skipTags(b []byte) ([]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, protocolErrorf("request header: bad tagged fields")
	}
	b = b[k:]
	for i := uint64(0); i < n; i++ {
		if _, k = binary.Uvarint(b); k <= 0 {
			return nil, protocolErrorf("request header: bad tag")
		}
		b = b[k:]
		size, k := binary.Uvarint(b)
		if k <= 0 || size > uint64(len(b)-k) {
			return nil, protocolErrorf("request header: bad tagged field size")
		}
		b = b[k+int(size):]
	}
	return b, nil
}

func (c *conn) handleFrame(frame []byte) error {
	h, req, body, err := parseHeader(frame)
	if err != nil {
		return err
	}
	h.remoteHost = c.remoteHost
	start := time.Now()
	name := kmsg.NameForKey(h.key)
	resp, err := c.s.answer(context.Background(), h, req, body)
	if err != nil {
		return err
	}
	c.s.metrics.observe(name, time.Since(start))
	if resp == nil { // acks=0 produce: Kafka sends nothing back
		return nil
	}
	return c.writeResponse(h, resp)
}

func (c *conn) writeResponse(h header, resp kmsg.Response) error {
	var pieces [][][]byte
	if pooled, ok := resp.(*pooledResponse); ok {
		defer pooled.release()
		resp, pieces = pooled.Response, pooled.pieces
	}
	buf := c.wbuf[:0]
	buf = append(buf, 0, 0, 0, 0)
	buf = binary.BigEndian.AppendUint32(buf, uint32(h.correlationID))
	// The ApiVersions response header never has tagged fields, so that a
	// client can read it before knowing which versions the broker speaks.
	if resp.IsFlexible() && h.key != apiVersionsKey {
		buf = append(buf, 0)
	}
	cuts := c.cuts[:0]
	encoded := false
	if fr, ok := resp.(*kmsg.FetchResponse); ok {
		head := len(buf)
		if buf, cuts, encoded = appendFetchResponse(buf, fr, pieces, cuts); !encoded {
			buf, cuts = buf[:head], cuts[:0]
			joinPieces(fr, pieces)
		}
	}
	if !encoded {
		buf = resp.AppendTo(buf)
	}
	size := len(buf) - 4
	for _, cut := range cuts {
		size += len(cut.data)
	}
	binary.BigEndian.PutUint32(buf, uint32(size))
	if cap(buf) <= keepBufferBytes {
		c.wbuf = buf
	}
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	var err error
	if len(cuts) == 0 {
		_, err = c.nc.Write(buf)
	} else {
		// One vectored write: the record batches go from the buffers
		// they were read into, not copied into the response.
		pieces := fetchPieces(c.pieces[:0], buf, cuts)
		nb := net.Buffers(pieces)
		_, err = nb.WriteTo(c.nc)
		clear(pieces) // the record buffers go back to their pool
		clear(cuts)
		c.pieces, c.cuts = pieces[:0], cuts[:0]
	}
	if err != nil {
		return fmt.Errorf("write %s response: %w", kmsg.NameForKey(h.key), err)
	}
	return nil
}

// writeTimeout bounds how long a response may wait on a client that does
// not read.
const writeTimeout = 60 * time.Second

// hostOf is a connection's remote host, as Kafka reports a member's host
// (with a leading slash, like Java's InetAddress.toString).
func hostOf(a net.Addr) string {
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return "/" + host
}
