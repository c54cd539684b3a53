package testenvtest

import (
	"bytes"
	"log"
	"sync"
	"sync/atomic"

	"github.com/IBM/sarama"
)

// LockedBuffer is a bytes.Buffer written by a process or a library's
// goroutines and read by the test.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// saramaLogs is where sarama.Logger writes, when set: sarama reads its
// Logger from goroutines, so it is set once (saramaLogOnce) to a logger
// writing here, and only this pointer changes. sarama.Logger is the
// library's own global, so this state is too.
var (
	saramaLogs    atomic.Pointer[LockedBuffer]
	saramaLogOnce sync.Once
)

type saramaLogWriter struct{}

func (saramaLogWriter) Write(p []byte) (int, error) {
	if b := saramaLogs.Load(); b != nil {
		return b.Write(p)
	}
	return len(p), nil
}

// SaramaLogTo sends sarama's log to b, or nowhere when b is nil.
func SaramaLogTo(b *LockedBuffer) {
	saramaLogOnce.Do(func() { sarama.Logger = log.New(saramaLogWriter{}, "sarama: ", 0) })
	saramaLogs.Store(b)
}
