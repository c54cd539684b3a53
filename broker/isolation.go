package broker

import (
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
)

// IsolationLevel is Kafka's isolation_level of Fetch and ListOffsets.
type IsolationLevel int8

// Isolation levels, with Kafka's numbers.
const (
	// ReadUncommitted reads everything committed to the ISR (the high
	// watermark), the records of open and aborted transactions included.
	ReadUncommitted IsolationLevel = 0
	// ReadCommitted reads up to the last stable offset, so no open
	// transaction's records, and reports the aborted transactions of what
	// it returns.
	ReadCommitted IsolationLevel = 1
)

// dropAborted removes from data the transactional batches of aborted
// transactions: a batch of an entry's producer whose base offset lies
// between the entry's first offset and its abort marker, the rule Kafka's
// consumers apply (a producer has one transaction open at a time, so its
// entries never overlap). Control batches stay: consumers skip them anyway.
// inPlace lets it move the kept batches within data (a buffer the fetch
// owns); otherwise the kept batches are copied when any is dropped.
func dropAborted(data []byte, aborted []partlog.AbortedTxn, inPlace bool) []byte {
	isAborted := func(h *record.Header) bool {
		if !h.Transactional() || h.Control() {
			return false
		}
		for _, a := range aborted {
			if a.ProducerID == h.ProducerID && a.FirstOffset <= h.BaseOffset && h.BaseOffset <= a.LastOffset {
				return true
			}
		}
		return false
	}
	var out []byte
	kept := 0 // bytes of data already known to be kept, when out is nil
	it := record.NewBatches(data)
	for it.Next() {
		h := it.Header()
		b := it.Bytes()
		switch {
		case !isAborted(&h):
			if out != nil {
				out = append(out, b...)
			} else {
				kept += len(b)
			}
		case out == nil:
			// The first batch dropped: keep what preceded it.
			if inPlace {
				out = data[:kept:len(data)]
			} else {
				out = append(make([]byte, 0, len(data)), data[:kept]...)
			}
		}
	}
	if out == nil {
		return data
	}
	return out
}
