package testenv

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// KafkaWatch is a well-behaved client that asks a broker for ApiVersions ten
// times a second on its own connection while a test attacks the broker on
// others. It records the slowest answer and every failure, so a test can
// assert that the attack did not starve other clients.
type KafkaWatch struct {
	addr   string
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	slowest  time.Duration
	answered int
	failures []string
}

// WatchKafka starts a KafkaWatch against addr; Stop ends it.
func WatchKafka(addr string) *KafkaWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &KafkaWatch{addr: addr, cancel: cancel, done: make(chan struct{})}
	go w.run(ctx)
	return w
}

// Stop ends the watch and reports the slowest answer, how many were
// answered, and the failures seen (each a timestamped error).
func (w *KafkaWatch) Stop() (slowest time.Duration, answered int, failures []string) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.slowest, w.answered, append([]string(nil), w.failures...)
}

func (w *KafkaWatch) run(ctx context.Context) {
	defer close(w.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	var corr int32
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		start := time.Now()
		var err error
		if conn == nil {
			conn, err = net.DialTimeout("tcp", w.addr, 5*time.Second)
		}
		if err == nil {
			corr++
			err = apiVersions(conn, corr, start.Add(5*time.Second))
		}
		took := time.Since(start)
		w.mu.Lock()
		if err != nil {
			w.failures = append(w.failures, fmt.Sprintf("%s: %v", start.Format("15:04:05.000"), err))
			if conn != nil {
				conn.Close()
				conn = nil
			}
		} else {
			w.answered++
		}
		w.slowest = max(w.slowest, took)
		w.mu.Unlock()
	}
}

// apiVersions sends ApiVersions v0 and reads its answer, which must carry
// the same correlation id.
func apiVersions(c net.Conn, corr int32, deadline time.Time) error {
	if err := c.SetDeadline(deadline); err != nil {
		return err
	}
	const clientID = "watch"
	req := binary.BigEndian.AppendUint32(nil, 0) // length, set below
	req = binary.BigEndian.AppendUint16(req, 18) // ApiVersions
	req = binary.BigEndian.AppendUint16(req, 0)  // v0
	req = binary.BigEndian.AppendUint32(req, uint32(corr))
	req = binary.BigEndian.AppendUint16(req, uint16(len(clientID)))
	req = append(req, clientID...)
	binary.BigEndian.PutUint32(req, uint32(len(req)-4))
	if _, err := c.Write(req); err != nil {
		return fmt.Errorf("send ApiVersions: %w", err)
	}
	var head [8]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		return fmt.Errorf("read ApiVersions answer: %w", err)
	}
	size := binary.BigEndian.Uint32(head[:4])
	if got := int32(binary.BigEndian.Uint32(head[4:])); got != corr {
		return fmt.Errorf("ApiVersions answer has correlation id %d, want %d", got, corr)
	}
	if size < 4 || size > 1<<20 {
		return fmt.Errorf("ApiVersions answer of %d bytes", size)
	}
	if _, err := io.CopyN(io.Discard, c, int64(size-4)); err != nil {
		return fmt.Errorf("read ApiVersions answer: %w", err)
	}
	return nil
}
