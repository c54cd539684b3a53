package kafkaapi

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func sessionParts(topic string, n int) []sessionPartition {
	out := make([]sessionPartition, n)
	for i := range out {
		out[i] = sessionPartition{key: fetchSessionKey{topic: topic, partition: int32(i)}, highWatermark: -1, lastStableOffset: -1, logStartOffset: -1}
	}
	return out
}

func sessionRequest(id, epoch int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.SessionID, req.SessionEpoch = 12, id, epoch
	return req
}

// TestFetchSessionCacheBoundsPartitionsOfAllSessions guards the cache-wide
// bound: slots alone would let clients make the cache hold slots x
// fetchSessionMaxPartitions partitions.
func TestFetchSessionCacheBoundsPartitionsOfAllSessions(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newFetchSessions(100, func() time.Time { return now }, nil)
	c.maxParts = 10

	a, code := c.plan("u", sessionRequest(0, 0), sessionParts("a", 6))
	if code != 0 || a.session == nil {
		t.Fatalf("first session: code %d, session %v", code, a.session)
	}
	// As large as the only session, which is not idle: no room, no session.
	if b, _ := c.plan("u", sessionRequest(0, 0), sessionParts("b", 6)); b.session != nil {
		t.Fatalf("a second session of 6 got room in a cache of 10 partitions")
	}
	if got := c.parts.Load(); got != 6 {
		t.Fatalf("counted %d partitions, want 6", got)
	}
	// Growing past the bound ends the session.
	if _, code := c.plan("u", sessionRequest(a.sessionID, a.epoch), sessionParts("c", 5)); code != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("growing past the cache's bound: code %d, want FETCH_SESSION_ID_NOT_FOUND", code)
	}
	if got := c.parts.Load(); got != 0 {
		t.Fatalf("after the session ended %d partitions are counted, want 0", got)
	}
	// A larger session evicts smaller ones until it fits.
	for i := range 3 {
		if p, _ := c.plan("u", sessionRequest(0, 0), sessionParts(fmt.Sprint("s", i), 3)); p.session == nil {
			t.Fatalf("small session %d got none", i)
		}
	}
	if p, _ := c.plan("u", sessionRequest(0, 0), sessionParts("big", 8)); p.session == nil {
		t.Fatalf("a larger session did not evict smaller ones")
	}
	if got, n := c.parts.Load(), len(c.sessions); got > 10 || n != 1 {
		t.Fatalf("%d partitions in %d sessions, want 8 in 1", got, n)
	}
	// An idle session goes for any new one.
	now = now.Add(fetchSessionEvictionAge)
	if p, _ := c.plan("u", sessionRequest(0, 0), sessionParts("late", 3)); p.session == nil {
		t.Fatalf("an idle session was not evicted")
	}
	if got := c.parts.Load(); got != 3 {
		t.Fatalf("counted %d partitions, want 3", got)
	}
}

// TestFetchSessionKeepsNoLongNames guards the memory of a session: a topic
// name longer than any topic's could be 32 KiB a partition.
func TestFetchSessionKeepsNoLongNames(t *testing.T) {
	c := newFetchSessions(100, time.Now, nil)
	long := strings.Repeat("x", fetchSessionMaxTopicLen+1)
	if p, code := c.plan("u", sessionRequest(0, 0), sessionParts(long, 1)); code != 0 || p.session != nil || len(p.parts) != 1 {
		t.Fatalf("full fetch of a long name: code %d, session %v, %d parts", code, p.session, len(p.parts))
	}
	p, _ := c.plan("u", sessionRequest(0, 0), sessionParts("a", 1))
	if p.session == nil {
		t.Fatal("no session")
	}
	if _, code := c.plan("u", sessionRequest(p.sessionID, p.epoch), sessionParts(long, 1)); code != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("incremental fetch adding a long name: code %d, want FETCH_SESSION_ID_NOT_FOUND", code)
	}
	if got := c.parts.Load(); got != 0 || len(c.sessions) != 0 {
		t.Fatalf("%d partitions in %d sessions left, want none", got, len(c.sessions))
	}
}

// The count of cached partitions stays the sum of the sessions' under
// concurrent creation, growth, eviction and closing.
func TestFetchSessionCacheCountUnderConcurrency(t *testing.T) {
	c := newFetchSessions(8, time.Now, nil)
	c.maxParts = 40
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				p, _ := c.plan("u", sessionRequest(0, 0), sessionParts(fmt.Sprint("t", g), 1+i%10))
				if p.session == nil {
					continue
				}
				id, epoch := p.sessionID, p.epoch
				for k := range 3 {
					next, code := c.plan("u", sessionRequest(id, epoch), sessionParts(fmt.Sprint("u", g, k), 1+(i+k)%7))
					if code != 0 {
						break
					}
					next.finish(make([]bool, len(next.parts)))
					epoch = next.epoch
				}
				if i%3 == 0 {
					c.plan("u", sessionRequest(id, -1), nil)
				}
			}
		})
	}
	wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	sum := 0
	for _, s := range c.sessions {
		s.mu.Lock()
		sum += len(s.parts)
		s.mu.Unlock()
	}
	if got := c.parts.Load(); got != int64(sum) || sum > 40 {
		t.Fatalf("counted %d partitions, the sessions hold %d (bound 40)", got, sum)
	}
}
