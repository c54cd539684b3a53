package tiering

// fifoMap is a map of at most max keys that forgets the oldest key added
// when a new one would pass the bound. Not safe for concurrent use.
type fifoMap[K comparable, V any] struct {
	max    int
	values map[K]V
	order  []K // ring of the keys, oldest at next once full
	next   int
}

func newFIFOMap[K comparable, V any](max int) *fifoMap[K, V] {
	return &fifoMap[K, V]{max: max, values: make(map[K]V)}
}

func (m *fifoMap[K, V]) get(k K) (V, bool) {
	v, ok := m.values[k]
	return v, ok
}

// put sets k to v and reports whether k was there already; a key already
// there keeps its place in the order.
func (m *fifoMap[K, V]) put(k K, v V) (had bool) {
	if _, had = m.values[k]; !had {
		if len(m.order) < m.max {
			m.order = append(m.order, k)
		} else {
			delete(m.values, m.order[m.next])
			m.order[m.next] = k
			m.next = (m.next + 1) % m.max
		}
	}
	m.values[k] = v
	return had
}
