package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

// proxyDialTimeout bounds the proxy's connect to its target; a target that is
// down refuses at once on loopback, so this only matters for a stopped
// (SIGSTOP) target whose listen backlog is full.
const proxyDialTimeout = 5 * time.Second

// ProxyOptions configures NewProxy.
type ProxyOptions struct {
	// Identify names the source of an accepted connection, for BlockSource
	// (the cluster names the broker process that opened it). It is called at
	// most once per connection, and only while some source is blocked or by
	// ForwardingBySource, so a proxy nobody partitions pays nothing for it.
	// Nil means every source is anonymous ("").
	Identify func(*net.TCPConn) string
	// Logger receives connection events at debug level and blocking at info;
	// nil discards them.
	Logger *slog.Logger
}

// Proxy forwards TCP connections accepted on a loopback port to a target
// address, and can cut them to inject a network partition.
//
// Blocking severs the connections already forwarding (with a reset, so each
// side learns at once) and black-holes new ones: they are accepted but held,
// nothing read from them and nothing sent, as a partitioned network would
// leave them. A client thus sees its requests time out rather than be
// refused, which is what a real partition does and what a client's
// retry-and-timeout logic must cope with. When the block is lifted, held
// connections are forwarded as if their packets had just arrived (data the
// client wrote meanwhile waits in the kernel's buffer); clients that gave up
// have closed them already.
//
// Forwarding is io.Copy between two *net.TCPConn, which the runtime turns
// into splice(2) on Linux: bytes do not pass through user space, so
// benchmarks can run through the proxy.
type Proxy struct {
	ln       *net.TCPListener
	identify func(*net.TCPConn) string
	logger   *slog.Logger
	// ctx ends when the proxy closes, aborting dials in progress.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and every connection's goroutines

	mu      sync.Mutex
	target  string
	blocked bool
	// suspended counts holds the environment itself places (see suspend),
	// apart from Block's, so neither lifts the other.
	suspended int
	sources   map[string]bool // blocked sources
	// changed is closed, and replaced, whenever the blocking changes or the
	// proxy closes: held connections wait on it to look again.
	changed chan struct{}
	conns   map[*proxyConn]struct{}
	closed  bool
}

// proxyConn is one accepted connection.
type proxyConn struct {
	client *net.TCPConn
	// server is the connection to the target, set once forwarding starts.
	// Guarded by Proxy.mu.
	server *net.TCPConn
	// severed is set (under Proxy.mu) when the proxy resets the connection;
	// it stays listed until its goroutines finish, but no longer counts.
	severed bool
	// dialling is set (under Proxy.mu) while the proxy connects pc to the
	// target. The client's handshake with the proxy is done by then, so to
	// the client the connection is established and a block resets it like a
	// forwarding one; otherwise a connection made just before a block would
	// be held, and its client would see silence instead of a reset.
	dialling bool

	srcOnce sync.Once
	src     string // set by srcOnce
	// identified is set (under Proxy.mu) once src is known.
	identified bool
}

// NewProxy listens on a free loopback port and forwards every connection to
// target. Close stops it.
func NewProxy(target string, opts ProxyOptions) (*Proxy, error) {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("proxy to %s: listen: %w", target, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		ln:       ln,
		identify: opts.Identify,
		logger:   orDiscard(opts.Logger).With("proxy", ln.Addr().String()),
		ctx:      ctx,
		cancel:   cancel,
		target:   target,
		sources:  make(map[string]bool),
		changed:  make(chan struct{}),
		conns:    make(map[*proxyConn]struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// NewTestProxy starts a proxy to target that a t.Cleanup closes.
func NewTestProxy(t testing.TB, target string, opts ProxyOptions) *Proxy {
	t.Helper()
	p, err := NewProxy(target, opts)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return p
}

// Addr is the address the proxy listens on, 127.0.0.1:<port>.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address connections are forwarded to.
func (p *Proxy) Target() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.target
}

// SetTarget changes where new connections go; forwarding connections keep
// theirs.
func (p *Proxy) SetTarget(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
}

// Block cuts the proxy off: connections forwarding now are reset, new ones
// are held until Unblock.
func (p *Proxy) Block() {
	p.mu.Lock()
	p.blocked = true
	p.mu.Unlock()
	n := p.severForwarding()
	p.logger.Info("proxy blocked", "severed", n)
}

// suspend cuts connections as Block does, for the environment's own use (a
// server stopping) without touching Block's state; resume undoes one
// suspend.
func (p *Proxy) suspend() {
	p.mu.Lock()
	p.suspended++
	p.mu.Unlock()
	p.severForwarding()
}

func (p *Proxy) resume() {
	p.mu.Lock()
	p.suspended--
	p.broadcastLocked()
	p.mu.Unlock()
}

// Unblock lets connections through again, the held ones included.
func (p *Proxy) Unblock() {
	p.mu.Lock()
	p.blocked = false
	p.broadcastLocked()
	p.mu.Unlock()
	p.logger.Info("proxy unblocked")
}

// Blocked reports whether Block is in force.
func (p *Proxy) Blocked() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.blocked
}

// BlockSource cuts off the connections whose source ProxyOptions.Identify
// names src, as Block does for all of them.
func (p *Proxy) BlockSource(src string) {
	p.mu.Lock()
	p.sources[src] = true
	p.broadcastLocked()
	all := make([]*proxyConn, 0, len(p.conns))
	for pc := range p.conns {
		all = append(all, pc)
	}
	p.mu.Unlock()
	// Identify reads /proc; not under the lock.
	for _, pc := range all {
		p.identifyConn(pc)
	}
	var victims []*proxyConn
	p.mu.Lock()
	for _, pc := range all {
		if (pc.server != nil || pc.dialling) && pc.identified && pc.src == src {
			victims = append(victims, pc)
		}
	}
	p.mu.Unlock()
	p.sever(victims)
	p.logger.Info("proxy blocked a source", "source", src, "severed", len(victims))
}

// UnblockSource lifts BlockSource(src).
func (p *Proxy) UnblockSource(src string) {
	p.mu.Lock()
	delete(p.sources, src)
	p.broadcastLocked()
	p.mu.Unlock()
	p.logger.Info("proxy unblocked a source", "source", src)
}

// ProxyStats counts a proxy's connections now.
type ProxyStats struct {
	// Forwarding connections are connected to the target.
	Forwarding int
	// Held connections wait: blocked, or being connected to the target.
	Held int
}

// Stats counts the proxy's connections.
func (p *Proxy) Stats() ProxyStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	var s ProxyStats
	for pc := range p.conns {
		if pc.severed {
			continue
		}
		if pc.server != nil {
			s.Forwarding++
		} else {
			s.Held++
		}
	}
	return s
}

// ForwardingBySource counts the connections forwarding now by the source
// ProxyOptions.Identify names ("" for anonymous ones). It identifies every
// connection not identified yet, so it costs what Identify costs.
func (p *Proxy) ForwardingBySource() map[string]int {
	p.mu.Lock()
	all := make([]*proxyConn, 0, len(p.conns))
	for pc := range p.conns {
		all = append(all, pc)
	}
	p.mu.Unlock()
	for _, pc := range all {
		p.identifyConn(pc)
	}
	counts := make(map[string]int)
	p.mu.Lock()
	defer p.mu.Unlock()
	for pc := range p.conns {
		if pc.server != nil && !pc.severed && pc.identified {
			counts[pc.src]++
		}
	}
	return counts
}

// Close stops listening, resets every connection and waits for the proxy's
// goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.broadcastLocked()
	all := make([]*proxyConn, 0, len(p.conns))
	for pc := range p.conns {
		all = append(all, pc)
	}
	p.mu.Unlock()
	p.cancel()
	err := p.ln.Close()
	p.sever(all)
	p.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close proxy %s: %w", p.Addr(), err)
	}
	return nil
}

// severForwarding resets every connection that is forwarding and wakes the
// held ones to look at the blocking again; it returns how many it reset.
func (p *Proxy) severForwarding() int {
	p.mu.Lock()
	p.broadcastLocked()
	var victims []*proxyConn
	for pc := range p.conns {
		if pc.server != nil || pc.dialling {
			victims = append(victims, pc)
		}
	}
	p.mu.Unlock()
	p.sever(victims)
	return len(victims)
}

// broadcastLocked wakes every held connection. Lock must be held.
func (p *Proxy) broadcastLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: pause rather than spin.
			p.logger.Warn("proxy accept", "err", err)
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		pc := &proxyConn{client: c}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			reset(c)
			return
		}
		p.conns[pc] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.handle(pc)
	}
}

// handle holds pc while it is blocked, then connects it to the target and
// forwards until either side ends or the proxy severs it.
func (p *Proxy) handle(pc *proxyConn) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, pc)
		server := pc.server
		p.mu.Unlock()
		pc.client.Close()
		if server != nil {
			server.Close()
		}
	}()
	for {
		if !p.awaitAllowed(pc) {
			return
		}
		target := p.Target()
		d := net.Dialer{Timeout: proxyDialTimeout}
		conn, err := d.DialContext(p.ctx, "tcp", target)
		if err != nil {
			p.mu.Lock()
			pc.dialling = false
			p.mu.Unlock()
			// Closing the client is the nearest a proxy comes to the
			// refusal the client would have met without it.
			p.logger.Debug("proxy dial", "target", target, "err", err)
			reset(pc.client)
			return
		}
		server := conn.(*net.TCPConn)
		p.mu.Lock()
		pc.dialling = false
		if p.closed || pc.severed {
			// Severed while dialling: the client was reset with the
			// forwarding connections.
			p.mu.Unlock()
			reset(server)
			return
		}
		// Blocked while dialling: nothing was forwarded yet, so the
		// connection goes back to being held.
		if ok, _ := p.allowedLocked(pc); !ok {
			p.mu.Unlock()
			server.Close()
			continue
		}
		pc.server = server
		p.mu.Unlock()
		break
	}
	p.forward(pc)
}

// awaitAllowed waits until pc may be forwarded; false means the proxy closed.
func (p *Proxy) awaitAllowed(pc *proxyConn) bool {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return false
		}
		ok, needID := p.allowedLocked(pc)
		if ok {
			pc.dialling = true
			p.mu.Unlock()
			return true
		}
		changed := p.changed
		p.mu.Unlock()
		if needID {
			p.identifyConn(pc)
			continue
		}
		<-changed
	}
}

// allowedLocked reports whether pc may be forwarded now; needID means that
// depends on its source, which is not identified yet. Lock must be held.
func (p *Proxy) allowedLocked(pc *proxyConn) (ok, needID bool) {
	if p.blocked || p.suspended > 0 {
		return false, false
	}
	if len(p.sources) == 0 {
		return true, false
	}
	if !pc.identified {
		return false, true
	}
	return !p.sources[pc.src], false
}

// identifyConn names pc's source, once.
func (p *Proxy) identifyConn(pc *proxyConn) {
	pc.srcOnce.Do(func() {
		var src string
		if p.identify != nil {
			src = p.identify(pc.client)
		}
		p.mu.Lock()
		pc.src, pc.identified = src, true
		p.mu.Unlock()
		p.logger.Debug("proxy identified a connection", "remote", pc.client.RemoteAddr().String(), "source", src)
	})
}

// forward copies both ways until both directions end. A direction that ends
// cleanly (EOF) passes the half-close on and the other carries on, as TCP
// does; one that fails (a reset, or the proxy severing the connection) closes
// both so the other direction ends too.
func (p *Proxy) forward(pc *proxyConn) {
	p.mu.Lock()
	server := pc.server
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(server, pc.client)
	}()
	pipe(pc.client, server)
	<-done
}

// pipe copies src to dst; see forward.
func pipe(dst, src *net.TCPConn) {
	if _, err := io.Copy(dst, src); err != nil {
		reset(dst)
		reset(src)
		return
	}
	_ = dst.CloseWrite()
}

// sever resets the connections, both sides.
func (p *Proxy) sever(conns []*proxyConn) {
	for _, pc := range conns {
		p.mu.Lock()
		server := pc.server
		pc.severed = true
		p.mu.Unlock()
		reset(pc.client)
		if server != nil {
			reset(server)
		}
	}
}

// reset closes c with an RST instead of a FIN, so the peer fails at once
// instead of reading a clean end of stream, and no TIME_WAIT is left behind.
func reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}
