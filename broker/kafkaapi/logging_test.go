package kafkaapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer collects log output written from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serve runs s on a loopback listener until the test ends.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return lis.Addr().String()
}

// A client may send bad requests as fast as it can connect, each with a
// client id of up to 32 KiB: the warnings show a little of the id, and no
// more than a few a second are written.
func TestBadRequestWarningsAreShortAndRateLimited(t *testing.T) {
	var logs lockedBuffer
	s := New(nullCore{}, Config{NodeID: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	addr := serve(t, s)

	clientID := strings.Repeat("x", 32767)
	frame := binary.BigEndian.AppendUint16(nil, 3) // Metadata
	frame = binary.BigEndian.AppendUint16(frame, 99)
	frame = binary.BigEndian.AppendUint32(frame, 1)
	frame = binary.BigEndian.AppendUint16(frame, uint16(len(clientID)))
	frame = append(frame, clientID...)
	frame = append(binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame...)
	const sent = 200
	for range sent {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(frame); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("want the connection closed: %v", err)
		}
		c.Close()
	}

	var warnings []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "bad request") {
			warnings = append(warnings, line)
		}
	}
	if len(warnings) == 0 || len(warnings) >= sent {
		t.Fatalf("%d warnings for %d bad requests, want some, rate limited", len(warnings), sent)
	}
	for _, w := range warnings {
		if len(w) > 1024 || !strings.Contains(w, "(32767 bytes)") {
			t.Fatalf("warning of %d bytes, want the client id cut and its length given: %.300s", len(w), w)
		}
	}
}
