package compaction

import (
	"hash/maphash"
)

// OffsetMap maps record keys to the offset of their latest record, in a
// fixed amount of memory (log.cleaner.dedupe.buffer.size): keys are stored
// as 128-bit hashes, in open addressing. A pass that fills it cleans only up
// to where the map got full and leaves the rest dirty for the next pass.
//
// Two keys whose 128-bit hashes collide would make the older one's record
// look superseded; at 2^-128 per pair that is left to chance, as Kafka's
// cleaner (16-byte MD5 digests) does.
type OffsetMap struct {
	seed1, seed2 maphash.Seed
	slots        []slot
	used, limit  int
	mask         uint64
	gen          uint64 // the generation live slots carry, 1 to maxGen
}

// slot.tag packs a generation (top 16 bits) and offset+1 (low 48 bits): a
// slot of another generation is empty, so Reset is a counter increment,
// not a clear of the whole table (which cost a fifth of a pass over a
// small dirty section with the default 128 MiB map).
type slot struct {
	h1, h2 uint64
	tag    uint64
}

const (
	genShift   = 48
	offsetMask = 1<<genShift - 1
	maxGen     = 1<<(64-genShift) - 1
	// MaxOffset is the largest offset the map can record.
	MaxOffset = offsetMask - 1
)

// slotBytes is what one entry costs.
const slotBytes = 24

// maxLoad is the share of slots filled before the map reports itself full:
// probes stay short below it.
const maxLoad = 0.9

// NewOffsetMap returns a map using about bytes of memory (room for at
// least one key).
func NewOffsetMap(bytes int) *OffsetMap {
	n := 2
	for n*2*slotBytes <= bytes {
		n *= 2
	}
	return &OffsetMap{
		seed1: maphash.MakeSeed(), seed2: maphash.MakeSeed(),
		slots: make([]slot, n),
		limit: min(n-1, max(1, int(float64(n)*maxLoad))), // an empty slot ends every probe
		mask:  uint64(n - 1),
		gen:   1,
	}
}

// Len is the number of keys held.
func (m *OffsetMap) Len() int { return m.used }

// Cap is the number of keys the map holds before it is full.
func (m *OffsetMap) Cap() int { return m.limit }

// Reset empties the map.
func (m *OffsetMap) Reset() {
	m.used = 0
	if m.gen < maxGen {
		m.gen++
		return
	}
	clear(m.slots) // generations wrapped: once every 65,535 resets
	m.gen = 1
}

func (m *OffsetMap) live(s *slot) bool { return s.tag>>genShift == m.gen }

func (m *OffsetMap) find(key []byte) (*slot, uint64, uint64) {
	h1, h2 := maphash.Bytes(m.seed1, key), maphash.Bytes(m.seed2, key)
	for i := h1 & m.mask; ; i = (i + 1) & m.mask {
		s := &m.slots[i]
		if !m.live(s) || (s.h1 == h1 && s.h2 == h2) {
			return s, h1, h2
		}
	}
}

// Put records offset as key's latest. It reports false, changing nothing,
// when key is new and the map is full, or offset is above MaxOffset.
func (m *OffsetMap) Put(key []byte, offset int64) bool {
	if offset < 0 || offset > MaxOffset {
		return false
	}
	s, h1, h2 := m.find(key)
	if !m.live(s) {
		if m.used >= m.limit {
			return false
		}
		m.used++
		s.h1, s.h2 = h1, h2
	}
	s.tag = m.gen<<genShift | uint64(offset+1)
	return true
}

// Get returns the latest offset recorded for key.
func (m *OffsetMap) Get(key []byte) (int64, bool) {
	s, _, _ := m.find(key)
	if !m.live(s) {
		return 0, false
	}
	return int64(s.tag&offsetMask) - 1, true
}
