package broker

import (
	"sync"

	partlog "github.com/strata-broker/strata/broker/log"
)

// Partition is one partition replica hosted by this broker: its log and the
// long-poll waiters interested in new data.
type Partition struct {
	Topic string
	Index int32
	log   *partlog.Log

	mu          sync.Mutex
	leaderEpoch int32
	waiters     map[chan struct{}]struct{}
}

func newPartition(topic string, index int32, l *partlog.Log) *Partition {
	return &Partition{Topic: topic, Index: index, log: l, waiters: make(map[chan struct{}]struct{})}
}

// HighWatermark is the offset below which records are visible to consumers.
// With one replica every appended record is committed.
func (p *Partition) HighWatermark() int64 { return p.log.LogEndOffset() }

// LogStartOffset is the first offset still in the log.
func (p *Partition) LogStartOffset() int64 { return p.log.LogStartOffset() }

// LogEndOffset is the offset the next appended record receives.
func (p *Partition) LogEndOffset() int64 { return p.log.LogEndOffset() }

func (p *Partition) append(batches []byte) (partlog.AppendResult, error) {
	p.mu.Lock()
	epoch := p.leaderEpoch
	p.mu.Unlock()
	res, err := p.log.Append(batches, epoch)
	if err == nil {
		p.wake()
	}
	return res, err
}

// wake signals every registered waiter without blocking: a waiter channel
// has room for one signal, and one is all it needs to re-read.
func (p *Partition) wake() {
	p.mu.Lock()
	for ch := range p.waiters {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	p.mu.Unlock()
}

func (p *Partition) addWaiter(ch chan struct{}) {
	p.mu.Lock()
	p.waiters[ch] = struct{}{}
	p.mu.Unlock()
}

func (p *Partition) removeWaiter(ch chan struct{}) {
	p.mu.Lock()
	delete(p.waiters, ch)
	p.mu.Unlock()
}
