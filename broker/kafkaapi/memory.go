package kafkaapi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/internal/membudget"
)

// The memory of a request, from the first byte of its body to its answer,
// is reserved from the request budget (queued.max.request.bytes) before the
// body is read, so that concurrent large requests wait for each other
// instead of adding up.
//
// What a request may take is more than its frame: kmsg allocates an array's
// structs before reading them, checking the count only against a lower
// bound of their size on the wire, each struct with tagged fields keeps the
// unknown ones in a map, and an answer grows with what the request names.
// A Fetch topic counted in 2 bytes becomes a 64-byte struct, a Metadata
// topic named in 4 bytes a kilobyte of answer. No single ratio to the
// frame (the "2 x S" one might hope for) holds for kmsg's structs, so each
// API declares its own (api.amplification), and TestRequestMemoryBound
// builds the worst requests it can for every array and tag section of every
// version served, measures what decoding and answering them allocate, and
// holds the API to it. Produce is the exception, as its frames are large
// and its records are not copied: its cost walks the frame (produceCost).

// smallRequestBytes is what a request may take without touching the budget:
// a connection handles one request at a time and connections are bounded
// (max.connections), so these cost at most that many times this, and
// heartbeats, ApiVersions and the like are never queued behind large
// requests waiting for the budget.
const smallRequestBytes = 16 << 10

// produceSlack is reserved with a Produce frame for its decoded structs
// and answer before its body shows how many partitions it has; a request
// found to need more reserves the rest (waiting at most
// socket.request.timeout.ms, as it already holds its frame's share).
const produceSlack = 32 << 10

// charge is what a request of size bytes may take, reserved before its
// body is read.
func (a *api) charge(size int32) int64 {
	if a.cost != nil {
		return int64(size) + produceSlack
	}
	return int64(size) * a.amplification
}

// requestMemory is what one request holds: charged bytes in all, fromBudget
// of them reserved from the budget (the rest is the connection's own
// allowance).
type requestMemory struct {
	charged, fromBudget int64
	// held are the reservations: one, and a second for a Produce whose
	// body needs more than was reserved for its frame.
	held  []membudget.Reservation
	first [2]membudget.Reservation
}

func (m *requestMemory) release() {
	for i := range m.held {
		m.held[i].Release()
	}
	*m = requestMemory{}
}

// errStopped ends a connection whose request was waiting for memory when
// the server shut down.
var errStopped = fmt.Errorf("server shutting down: %w", net.ErrClosed)

// reserve makes the request's charge total bytes, reserving what it lacks
// from the budget and waiting up to wait for it. waited reports whether it
// had to wait. A request that could take more than requests can ever hold
// of the budget is refused: it could never be answered within it.
func (c *conn) reserve(m *requestMemory, total int64, wait time.Duration) (waited bool, err error) {
	s := c.s
	b := s.cfg.RequestBudget
	if total <= m.charged {
		return false, nil
	}
	if total <= smallRequestBytes || b == nil {
		m.charged = total
		return false, nil
	}
	if total > s.requestMemory {
		return false, protocolErrorf("%s may take %d bytes of memory to decode and answer, more than requests can hold of queued.max.request.bytes (%d of %d)",
			c.requestName(), total, s.requestMemory, b.Total())
	}
	need := total - m.fromBudget
	r, ok := b.TryAcquire(need)
	if !ok {
		waited = true
		s.metrics.budgetWaits.Inc()
		ctx, cancel := context.WithTimeout(s.stop, wait)
		defer cancel()
		if r, err = b.Acquire(ctx, need); err != nil {
			if s.stop.Err() != nil {
				return true, errStopped
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return true, fmt.Errorf("no memory for a %s within %v (queued.max.request.bytes %d, %d held): %w",
					c.requestName(), wait, b.Total(), b.Held(), err)
			}
			return true, err
		}
	}
	if m.held == nil {
		m.held = m.first[:0]
	}
	m.held = append(m.held, r)
	m.fromBudget += need
	m.charged = total
	return waited, nil
}

// requestName names the request being read, from its head, for errors.
func (c *conn) requestName() string {
	size := int32(binary.BigEndian.Uint32(c.head[:4]))
	key := int16(binary.BigEndian.Uint16(c.head[4:]))
	return fmt.Sprintf("%s request of %d bytes", kmsg.NameForKey(key), size)
}
