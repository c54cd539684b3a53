package kafkaapi

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/internal/tlsconf"
)

// countingConn counts the writes that reach the socket.
type countingConn struct {
	net.Conn
	writes int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes++
	return c.Conn.Write(p)
}

// A 1 MiB response written over TLS while corked reaches the peer whole
// and in order, in a handful of socket writes rather than one per 16 KiB
// TLS record; uncorked, each record is its own write.
func TestCorkGathersTLSRecords(t *testing.T) {
	g, err := tlsconf.Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, err := tlsconf.Load(tlsconf.Options{KeyStore: g.Server, TrustStore: g.CA})
	if err != nil {
		t.Fatal(err)
	}
	clientCfg, err := tlsconf.ClientConfig(g.CA, "", "")
	if err != nil {
		t.Fatal(err)
	}
	clientCfg.ServerName = "localhost" // a pipe has no address to check

	serverSide, clientSide := net.Pipe()
	counting := &countingConn{Conn: serverSide}
	cork := &corkConn{Conn: counting, pool: broker.NewReadBuffers()}
	server := tls.Server(cork, m.ServerConfig())
	client := tls.Client(clientSide, clientCfg)
	// Closing the pipe, not the TLS connections: their close_notify would
	// wait for a reader the pipe does not have.
	defer serverSide.Close()
	defer clientSide.Close()

	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	received := make(chan []byte, 2)
	go func() {
		for range 2 {
			buf := make([]byte, len(payload))
			if _, err := io.ReadFull(client, buf); err != nil {
				t.Errorf("client read: %v", err)
				received <- nil
				return
			}
			received <- buf
		}
	}()
	if err := server.Handshake(); err != nil {
		t.Fatal(err)
	}

	write := func(corked bool) int {
		t.Helper()
		before := counting.writes
		if corked {
			cork.cork()
		}
		if _, err := server.Write(payload); err != nil {
			t.Fatal(err)
		}
		if corked {
			if err := cork.uncork(); err != nil {
				t.Fatal(err)
			}
		}
		if got := <-received; !bytes.Equal(got, payload) {
			t.Fatalf("the peer read %d bytes, not the 1 MiB written", len(got))
		}
		return counting.writes - before
	}
	plain, corked := write(false), write(true)
	if plain < 64 {
		t.Fatalf("uncorked, 1 MiB took %d socket writes; want one per 16 KiB record (64 or more)", plain)
	}
	if corked > 8 {
		t.Fatalf("corked, 1 MiB took %d socket writes; want at most 8 (256 KiB each)", corked)
	}
	if cork.buf != nil {
		t.Fatal("uncorked, the connection still holds the pool's buffer")
	}
	t.Logf("1 MiB over TLS: %d socket writes uncorked, %d corked", plain, corked)
}
