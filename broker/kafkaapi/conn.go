package kafkaapi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A connection holds no buffer between requests: a frame's buffer comes
// from the server's pool once its length is known and its memory reserved,
// and goes back once it is answered. Frames grow from firstChunkBytes by
// growthFactor as their bytes arrive, so a client that announces a large
// frame and sends little of it holds little.
const (
	firstChunkBytes = 64 << 10
	growthFactor    = 4
)

// conn is one client connection. Requests are handled one at a time, in
// order, as a Kafka broker does: clients rely on responses coming back in
// request order, and an idempotent producer's batches must be appended in
// the order they were sent.
type conn struct {
	s *Server
	// id names the connection to what outlives a request on it (share
	// sessions); unique within the server.
	id         uint64
	nc         net.Conn
	remote     string
	remoteHost string
	// remoteIP is the client's IP address, as ACLs name hosts
	// ("127.0.0.1"; remoteHost is Kafka's "/127.0.0.1" of group members).
	remoteIP string
	// listener is the listener that accepted the connection.
	listener Listener
	// cork, on a TLS connection the server made, gathers a response's
	// TLS records into few writes.
	cork *corkConn
	// principal is who the connection acts as (Kafka's KafkaPrincipal,
	// "User:name"): User:ANONYMOUS until a TLS client certificate or a
	// SASL exchange says otherwise. Every request is authorized as it.
	principal string
	// sasl is the connection's authentication, on a SASL listener.
	sasl saslState
	// head is a frame's length prefix, API key and version: what the
	// memory a request may take is judged by before its body is read.
	head [8]byte
	// mem is what the request in hand holds of the request budget.
	mem requestMemory
	// cuts and pieces are reused by fetch responses' vectored writes.
	cuts    []recordCut
	pieces  [][]byte
	closing atomic.Bool
}

func newConn(s *Server, nc net.Conn, l Listener) *conn {
	return &conn{
		s:          s,
		id:         s.connIDs.Add(1),
		nc:         nc,
		remote:     nc.RemoteAddr().String(),
		remoteHost: hostOf(nc.RemoteAddr()),
		remoteIP:   ipOf(nc.RemoteAddr()),
		listener:   l,
		principal:  AnonymousPrincipal,
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
	conn          uint64 // the connection's id (conn.id)
	listener      string // the name of the listener the request came on
}

// protocolError closes the connection: the stream can no longer be trusted
// to be framed, or the client asked for something it was never offered.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return e.msg }

func protocolErrorf(format string, args ...any) error {
	return &protocolError{msg: fmt.Sprintf(format, args...)}
}

// errIdle ends a connection that sent no request for connections.max.idle.ms.
var errIdle = errors.New("no request within connections.max.idle.ms")

// slowRequestError ends a connection whose request did not arrive whole
// within socket.request.timeout.ms of its first byte.
type slowRequestError struct {
	timeout time.Duration
	got     int
	size    int32
}

func (e *slowRequestError) Error() string {
	if e.size == 0 {
		return fmt.Sprintf("request header not received within socket.request.timeout.ms (%v) of its first byte", e.timeout)
	}
	return fmt.Sprintf("%d of a %d-byte request received within socket.request.timeout.ms (%v) of its first byte", e.got, e.size, e.timeout)
}

func (c *conn) serve() {
	defer c.nc.Close()
	c.s.metrics.connections.Inc()
	defer c.s.metrics.connections.Dec()
	if err := c.handshake(); err != nil {
		c.logClose(err)
		return
	}
	for {
		c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
		if c.closing.Load() {
			return
		}
		if err := c.serveRequest(); err != nil {
			c.logClose(err)
			return
		}
	}
}

// logClose says why a connection ends, unless it is an ordinary end. A
// client can make these as fast as it can connect, so they are rate limited.
func (c *conn) logClose(err error) {
	var slow *slowRequestError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return
	case errors.Is(err, errIdle):
		c.s.metrics.timedOut.WithLabelValues("idle").Inc()
		c.s.logger.Debug("kafka connection idle, closing", "remote", c.remote)
		return
	case errors.Is(err, os.ErrDeadlineExceeded) && c.closing.Load():
		return
	case errors.As(err, &slow):
		c.s.metrics.timedOut.WithLabelValues("request").Inc()
		c.s.warnings.log(slog.LevelWarn, "kafka connection closed: request too slow", "remote", c.remote, "err", err)
		return
	}
	var ae *authError
	if errors.As(err, &ae) {
		c.s.warnings.log(slog.LevelInfo, "kafka connection closed: SASL authentication failed", "remote", c.remote, "err", err)
		return
	}
	if errors.Is(err, errSessionExpired) {
		c.s.warnings.log(slog.LevelInfo, "kafka connection closed", "remote", c.remote, "err", err)
		return
	}
	var pe *protocolError
	if errors.As(err, &pe) {
		c.s.metrics.protocolErrors.Inc()
		c.s.warnings.log(slog.LevelWarn, "kafka connection closed: bad request", "remote", c.remote, "err", err)
		return
	}
	c.s.warnings.log(slog.LevelInfo, "kafka connection closed", "remote", c.remote, "err", err)
}

// serveRequest reads, answers and writes back one request. Waiting for its
// first byte is idleness, bounded by connections.max.idle.ms; from then on
// the rest must arrive within socket.request.timeout.ms. Before the body is
// read, the memory the request may take is reserved from the request
// budget; it is given back once the request is answered.
func (c *conn) serveRequest() error {
	if c.sasl.raw {
		return c.serveToken()
	}
	s := c.s
	n, err := c.nc.Read(c.head[:])
	if n == 0 {
		if errors.Is(err, os.ErrDeadlineExceeded) && !c.closing.Load() {
			return errIdle
		}
		return err
	}
	c.nc.SetReadDeadline(time.Now().Add(s.cfg.RequestTimeout))
	if n < 4 {
		if _, err := io.ReadFull(c.nc, c.head[n:4]); err != nil {
			return c.readError(err, 0, 0)
		}
		n = 4
	}
	size := int32(binary.BigEndian.Uint32(c.head[:4]))
	if size < 8 {
		return protocolErrorf("request length %d is too short for a request header", size)
	}
	if size > s.cfg.MaxRequestBytes {
		return protocolErrorf("request of %d bytes is over socket.request.max.bytes (%d)", size, s.cfg.MaxRequestBytes)
	}
	if _, err := io.ReadFull(c.nc, c.head[n:]); err != nil {
		return c.readError(err, n-4, size)
	}
	key := int16(binary.BigEndian.Uint16(c.head[4:]))
	a, ok := s.lookup(key)
	if !ok {
		return protocolErrorf("unknown API key %d", key)
	}
	if limit, name := s.requestLimit(key); size > limit {
		return protocolErrorf("%s request of %d bytes is over %s (%d)", kmsg.NameForKey(key), size, name, limit)
	}
	if err := c.admit(key, size); err != nil {
		return err
	}

	charge := a.charge(size)
	if a.cost != nil && s.cfg.RequestBudget != nil {
		// A Produce's slack is a guess made before its body shows what it
		// needs: it must not refuse a frame the budget can hold.
		charge = min(charge, max(int64(size), s.requestMemory))
	}
	mem := &c.mem
	defer mem.release()
	// A request may wait for memory as long as a connection may idle: the
	// client is waiting for the broker, not the other way round.
	waited, err := c.reserve(mem, charge, s.cfg.IdleTimeout)
	if err != nil {
		return err
	}
	if waited {
		// The wait was the broker's, not the client's.
		c.nc.SetReadDeadline(time.Now().Add(s.cfg.RequestTimeout))
	}
	buf, err := c.readBody(int(size), c.head[4:], a.reusesFrame)
	if err != nil {
		return err
	}
	h, resp, err := c.handleFrame(a, *buf, mem)
	// Answered: the decoded request is garbage, and what the response
	// needs it holds itself (kmsg copies strings; the APIs whose requests
	// alias the frame's bytes do not reuse it).
	mem.release()
	if a.reusesFrame {
		s.buffers.Put(buf)
	}
	var after *closeAfter
	if errors.As(err, &after) {
		if after.delay {
			c.delayFailure()
		}
		err = nil
	}
	if err != nil || resp == nil { // acks=0 produce: Kafka sends nothing back
		return err
	}
	if err := c.writeResponse(h, resp); err != nil {
		return err
	}
	if after != nil {
		return after.err
	}
	return nil
}

// readError names a read that failed inside a request: cut short, or too
// slow.
func (c *conn) readError(err error, got int, size int32) error {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) && !c.closing.Load():
		return &slowRequestError{timeout: c.s.cfg.RequestTimeout, got: got, size: size}
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		if size == 0 {
			return protocolErrorf("connection closed in the middle of a request header")
		}
		return protocolErrorf("connection closed in the middle of a %d-byte request", size)
	}
	return err
}

// readBody reads the frame of size bytes whose first four (after the
// length) are first. Its buffer grows by growthFactor as bytes arrive
// rather than being allocated whole when the length is known; the memory
// was reserved before, so this bounds what a stalled client pins, not what
// the request may take. The buffer comes from the pool, and when pooled is
// false the last one is allocated to size, as it will not go back.
func (c *conn) readBody(size int, first []byte, pooled bool) (*[]byte, error) {
	pool := c.s.buffers
	get := func(n int) *[]byte {
		if n == size && !pooled {
			b := make([]byte, n)
			return &b
		}
		return pool.Get(n)
	}
	n := min(size, firstChunkBytes)
	cur := get(n)
	buf := (*cur)[:n]
	filled := copy(buf, first)
	for {
		if _, err := io.ReadFull(c.nc, buf[filled:]); err != nil {
			pool.Put(cur)
			return nil, c.readError(err, filled, int32(size))
		}
		filled = len(buf)
		if filled == size {
			*cur = buf
			return cur, nil
		}
		n = min(size, filled*growthFactor)
		next := get(n)
		copy(*next, buf)
		pool.Put(cur)
		cur, buf = next, (*next)[:n]
	}
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

// handleFrame decodes and answers one request. An API that can tell from
// the body exactly what answering it takes (Produce) has that reserved
// first, waiting at most socket.request.timeout.ms for it.
func (c *conn) handleFrame(a *api, frame []byte, mem *requestMemory) (header, kmsg.Response, error) {
	h, req, body, err := parseHeader(frame)
	if err != nil {
		return h, nil, err
	}
	h.remoteHost = c.remoteHost
	h.conn = c.id
	h.listener = c.listener.Name
	name := kmsg.NameForKey(h.key)
	if a.cost != nil && a.supports(h.version) {
		need, err := a.cost(h.version, body)
		if err != nil {
			return h, nil, protocolErrorf("decode %s v%d: %v", name, h.version, err)
		}
		if _, err := c.reserve(mem, int64(len(frame))+need, c.s.cfg.RequestTimeout); err != nil {
			return h, nil, err
		}
	}
	start := time.Now()
	ctx := context.Background()
	if c.s.authz != nil {
		ctx = withClient(ctx, &client{principal: c.principal, host: c.remoteIP, api: name})
	}
	var resp kmsg.Response
	if a.onConn != nil {
		resp, err = c.answerOnConn(a, h, req, body)
	} else {
		resp, err = c.s.answer(ctx, h, req, body)
	}
	if err != nil {
		var after *closeAfter
		if !errors.As(err, &after) {
			return h, nil, err
		}
		c.s.metrics.observe(name, time.Since(start))
		return h, resp, err
	}
	c.s.metrics.observe(name, time.Since(start))
	return h, resp, nil
}

// responseBufferBytes is the pooled buffer a response is encoded into;
// larger responses grow their own, which the garbage collector takes.
const responseBufferBytes = 4 << 10

func (c *conn) writeResponse(h header, resp kmsg.Response) error {
	var pieces [][][]byte
	if pooled, ok := resp.(*pooledResponse); ok {
		defer pooled.release()
		resp, pieces = pooled.Response, pooled.pieces
	}
	pooledBuf := c.s.buffers.Get(responseBufferBytes)
	// Given back once written; if the response outgrew it, it is unused.
	defer c.s.buffers.Put(pooledBuf)
	buf := (*pooledBuf)[:0]
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
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if c.cork != nil {
		c.cork.cork()
	}
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
	if c.cork != nil {
		if uerr := c.cork.uncork(); err == nil {
			err = uerr
		}
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
