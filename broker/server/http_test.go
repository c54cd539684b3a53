package server

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// The HTTP listener's timeouts end connections that would otherwise be
// held for ever: one left idle after a request, one sending its header
// slowly, one whose answer takes longer than the write timeout (a client
// reading it slowly). An oversized header is refused. (The timeouts are
// the listener's, scaled down for the test.)
func TestHTTPListenerTimesOutHeldConnections(t *testing.T) {
	const scale = 200 * time.Millisecond
	mux := http.NewServeMux()
	mux.HandleFunc("/small", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("/large", func(w http.ResponseWriter, _ *http.Request) {
		chunk := make([]byte, 1<<20)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := newHTTPServer(mux, httpTimeouts{readHeader: scale, read: scale, write: scale, idle: scale})
	served := make(chan error, 1)
	go func() { served <- hs.Serve(lis) }()
	t.Cleanup(func() {
		hs.Close()
		<-served
	})
	dial := func(t *testing.T) net.Conn {
		c, err := net.Dial("tcp", lis.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		// Far past every timeout: the server must have closed it by then.
		c.SetReadDeadline(time.Now().Add(20 * scale))
		return c
	}
	closedBy := func(t *testing.T, r io.Reader) {
		t.Helper()
		_, err := io.Copy(io.Discard, r)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("the server kept the connection open")
		}
	}

	t.Run("idle", func(t *testing.T) {
		c := dial(t)
		io.WriteString(c, "GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		closedBy(t, br)
	})
	t.Run("slow header", func(t *testing.T) {
		c := dial(t)
		io.WriteString(c, "GET /small HTTP/1.1\r\nHost: x\r\n")
		closedBy(t, c)
	})
	t.Run("endless answer", func(t *testing.T) {
		c := dial(t)
		io.WriteString(c, "GET /large HTTP/1.1\r\nHost: x\r\n\r\n")
		closedBy(t, c)
	})
	t.Run("oversized header", func(t *testing.T) {
		c := dial(t)
		io.WriteString(c, "GET /small HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 2*maxHTTPHeaderBytes)+"\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("a %d-byte header: %s, want 431", 2*maxHTTPHeaderBytes, resp.Status)
		}
	})
}
