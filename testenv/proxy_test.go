package testenv

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
)

// echoServer echoes every line it reads until the peer half-closes, then
// closes. It stops when the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			})
		}
	})
	return ln.Addr().String()
}

// roundTrip writes line and reads it back within timeout.
func roundTrip(c net.Conn, line string, timeout time.Duration) (string, error) {
	c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSuffix(got, "\n"), err
}

func dialTCP(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func TestProxyForwardsAndPassesHalfClose(t *testing.T) {
	p := NewTestProxy(t, echoServer(t), ProxyOptions{})
	c := dialTCP(t, p.Addr())
	if got, err := roundTrip(c, "hello", 5*time.Second); err != nil || got != "hello" {
		t.Fatalf("round trip: %q, %v", got, err)
	}
	// The echo server closes after our half-close reaches it; the proxy
	// must carry both ends of that.
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read after half-close: %d, %v; want EOF", n, err)
	}
}

// Block resets forwarding connections and holds new ones; Unblock forwards
// the held ones, with what their clients wrote meanwhile.
func TestProxyBlockSeversThenHoldsUntilUnblock(t *testing.T) {
	p := NewTestProxy(t, echoServer(t), ProxyOptions{})
	before := dialTCP(t, p.Addr())
	if _, err := roundTrip(before, "a", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Block()
	before.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := before.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read on a severed connection: %v, want a reset", err)
	}

	held := dialTCP(t, p.Addr()) // accepted by the kernel, held by the proxy
	if got, err := roundTrip(held, "b", 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("round trip while blocked: %q, %v; want a timeout", got, err)
	}
	await.True(t, 5*time.Second, "the proxy to hold the connection", func() bool { return p.Stats().Held == 1 })

	p.Unblock()
	held.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := bufio.NewReader(held).ReadString('\n')
	if err != nil || got != "b\n" {
		t.Fatalf("held connection after Unblock: %q, %v; want what it wrote while blocked", got, err)
	}
	if s := p.Stats(); s.Forwarding != 1 || s.Held != 0 {
		t.Errorf("stats %+v, want one forwarding connection", s)
	}
}

// BlockSource cuts only the connections Identify attributes to the source.
func TestProxyBlockSourceCutsOnlyThatSource(t *testing.T) {
	var mu sync.Mutex
	names := make(map[string]string) // client local address -> source
	p := NewTestProxy(t, echoServer(t), ProxyOptions{Identify: func(c *net.TCPConn) string {
		mu.Lock()
		defer mu.Unlock()
		return names[c.RemoteAddr().String()]
	}})
	// The source is recorded before connecting, so Identify never runs
	// ahead of it: the client's port is chosen up front.
	connect := func(src string) *net.TCPConn {
		local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: FreePort(t)}
		mu.Lock()
		names[local.String()] = src
		mu.Unlock()
		d := net.Dialer{LocalAddr: local}
		c, err := d.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.TCPConn)
	}
	cut, kept := connect("broker-2"), connect("")
	for _, c := range []net.Conn{cut, kept} {
		if _, err := roundTrip(c, "x", 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	p.BlockSource("broker-2")
	cut.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := cut.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("blocked source's connection: %v, want a reset", err)
	}
	if _, err := roundTrip(kept, "y", 5*time.Second); err != nil {
		t.Errorf("other connection after BlockSource: %v", err)
	}
	// A new connection from the blocked source is held...
	again := connect("broker-2")
	if _, err := roundTrip(again, "z", 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("new connection from a blocked source: %v, want a timeout", err)
	}
	// ...until the source is unblocked.
	p.UnblockSource("broker-2")
	again.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := bufio.NewReader(again).ReadString('\n'); err != nil || got != "z\n" {
		t.Errorf("after UnblockSource: %q, %v", got, err)
	}
}

// A target that is down closes the client's connection, as the target would
// have refused it; SetTarget redirects new connections.
func TestProxyTargetDownAndSetTarget(t *testing.T) {
	down := FreeAddr(t)
	p := NewTestProxy(t, down, ProxyOptions{})
	// The reset can arrive before the dial has returned; either way the
	// client learns at once.
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("connection through a proxy to nothing: %v, want it closed", err)
		}
	}
	p.SetTarget(echoServer(t))
	if got, err := roundTrip(dialTCP(t, p.Addr()), "up", 5*time.Second); err != nil || got != "up" {
		t.Fatalf("after SetTarget: %q, %v", got, err)
	}
}

// Close ends held and forwarding connections and every goroutine (goleak
// checks the last at the end of the package's tests).
func TestProxyCloseEndsEverything(t *testing.T) {
	p, err := NewProxy(echoServer(t), ProxyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fwd := dialTCP(t, p.Addr())
	if _, err := roundTrip(fwd, "a", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Block()
	dialTCP(t, p.Addr())
	await.True(t, 5*time.Second, "a held connection", func() bool { return p.Stats().Held == 1 })
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("proxy still accepts after Close")
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// peerPID finds this process as the owner of a connection it opened.
func TestPeerPIDFindsTheProcessThatConnected(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialTCP(t, ln.Addr().String())
	accepted, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	defer accepted.Close()
	self := os.Getpid()
	if got := peerPID(accepted, []int{1 << 30, self}); got != self {
		t.Errorf("peerPID = %d, want this process %d", got, self)
	}
	if got := peerPID(accepted, []int{1 << 30}); got != 0 {
		t.Errorf("peerPID among other processes = %d, want 0", got)
	}
}

// BenchmarkProxyThroughput measures one stream through the proxy against the
// same stream direct, so a benchmark run through a Cluster can be read
// knowing what the proxy costs.
func BenchmarkProxyThroughput(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	defer func() {
		ln.Close()
		wg.Wait()
	}()
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_, _ = io.Copy(io.Discard, c)
			})
		}
	})
	p, err := NewProxy(ln.Addr().String(), ProxyOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close() // before the sink stops: it waits for the proxy's connections
	buf := make([]byte, 1<<20)
	for _, target := range []struct{ name, addr string }{{"direct", ln.Addr().String()}, {"proxied", p.Addr()}} {
		b.Run(target.name, func(b *testing.B) {
			c, err := net.Dial("tcp", target.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
