package kafkaapi

import (
	"net"
	"sync"

	"github.com/strata-broker/strata/broker"
)

// corkBytes is how much a corked connection gathers before it writes.
const corkBytes = 256 << 10

// corkConn sits under a TLS connection and gathers what TLS writes while
// a response is written. TLS seals at most 16 KiB per record and writes
// each record at once, so a 1 MiB fetch response would take 64 writes
// where the plaintext listener makes one vectored write; corked, it takes
// four. The buffer is the pool's while corked, so idle connections hold
// none.
type corkConn struct {
	net.Conn
	pool broker.BufferPool

	// mu orders gathering and flushing against a write TLS makes from
	// another goroutine (the close_notify alert of a Close at shutdown).
	mu     sync.Mutex
	buf    *[]byte // the pool's buffer, while corked
	corked bool
}

// cork makes writes gather until uncork.
func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork writes what was gathered and lets writes through again.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	err := c.flushLocked()
	if c.buf != nil {
		c.pool.Put(c.buf)
		c.buf = nil
	}
	return err
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		return c.Conn.Write(p)
	}
	if c.buf == nil {
		c.buf = c.pool.Get(corkBytes)
		*c.buf = (*c.buf)[:0]
	}
	if len(*c.buf)+len(p) > cap(*c.buf) {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > cap(*c.buf) {
			return c.Conn.Write(p)
		}
	}
	*c.buf = append(*c.buf, p...)
	return len(p), nil
}

func (c *corkConn) flushLocked() error {
	if c.buf == nil || len(*c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(*c.buf)
	*c.buf = (*c.buf)[:0]
	return err
}
