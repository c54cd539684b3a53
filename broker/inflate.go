package broker

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"

	"golang.org/x/sync/semaphore"

	"github.com/strata-broker/strata/internal/membudget"
	"github.com/strata-broker/strata/record"
)

// inflationFactor is how far a produced batch's records may inflate,
// relative to the topic's max.message.bytes (which bounds the compressed
// batch): 32 times covers what text, JSON and logs compress to (5 to 20
// times with zstd), while a bomb of a few kilobytes is refused after at most
// that much decompression. Kafka's clients other than Java's bound a batch
// before compression by their own copy of max.message.bytes, far below it;
// Java's producer sizes batches by an estimate of the compressed size, and
// answers MESSAGE_TOO_LARGE by splitting the batch and sending the halves.
const inflationFactor = 32

// inflateLimit is the most a produced batch's records may take
// decompressed, for a topic whose max.message.bytes is maxMessageBytes.
// record.MaxInflated caps it: the broker's own readers of stored batches
// (compaction, the gRPC fetch that decodes records, the Go client) hold a
// batch's records whole up to that size.
func inflateLimit(maxMessageBytes int) int {
	return int(min(int64(maxMessageBytes)*inflationFactor, record.MaxInflated))
}

// maxInflateSlots caps how many batches are decompressed at once, as
// Kafka's num.io.threads (8) caps the requests its broker works on.
const maxInflateSlots = 8

// inflation bounds the decompression requests cause: validating produced
// batches, and looking records up by timestamp in stored ones. At most one
// batch per slot is decompressed at a time (it is CPU work: more than the
// cores would only queue inside the runtime), each holding at most
// record.DecoderMemory, and that memory is reserved from the request budget
// (queued.max.request.bytes) for the broker's life. Reserving it once rather
// per batch keeps a request that already holds its frame's share of the
// budget from waiting for more while other such requests hold the rest,
// which would wait forever once the budget is spent.
type inflation struct {
	slots    *semaphore.Weighted
	n        int
	budget   *membudget.Budget
	reserved membudget.Reservation
}

// newInflation sizes the slots to the cores (at most maxInflateSlots), and
// to half the budget: the rest is for requests' frames.
func newInflation(budget *membudget.Budget) *inflation {
	n := min(runtime.GOMAXPROCS(0), maxInflateSlots)
	if total := budget.Total(); total > 0 {
		n = max(1, min(n, int(total/2/record.DecoderMemory)))
	}
	return &inflation{slots: semaphore.NewWeighted(int64(n)), n: n, budget: budget}
}

// reserve takes the slots' memory from the budget, until close: never
// more than half of it, so that a budget under two decoders' memory still
// leaves requests room (its one slot is then only partly counted).
func (in *inflation) reserve(logger *slog.Logger) {
	n := min(int64(in.n)*record.DecoderMemory, in.budget.Total()/2)
	var ok bool
	if in.reserved, ok = in.budget.TryAcquire(n); !ok {
		// Only if something took the budget before the broker was built.
		logger.Warn("request memory budget busy: decompression is not counted against it", "slots", in.n, "bytes", n)
	}
}

// do runs fn, which decompresses one batch at a time, in a slot.
func (in *inflation) do(ctx context.Context, fn func() error) error {
	if err := in.slots.Acquire(ctx, 1); err != nil {
		return fmt.Errorf("wait to decompress: %w", err)
	}
	defer in.slots.Release(1)
	return fn()
}

// Decompress runs fn, which decompresses stored batches one at a time for
// a request (a frontend decoding records for its client), within the
// broker's bound on concurrent decompression.
func (b *Broker) Decompress(ctx context.Context, fn func() error) error {
	return b.inflate.do(ctx, fn)
}

// close gives the reserved memory back to the budget.
func (in *inflation) close() { in.reserved.Release() }
