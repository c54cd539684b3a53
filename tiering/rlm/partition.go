package rlm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-broker/strata/tiering"
)

// Partition is a hosted partition as the manager knows it: what it knows
// of the partition's records in the object store (the last manifest it
// read or wrote, and in which leader epoch) and the partition's tasks.
type Partition struct {
	m       *Manager
	tp      TopicPartition
	layout  tiering.Layout
	log     Log
	replica Replica
	labels  []string // of the partition's metric series

	state *remoteState

	copier  *copyTask
	expirer *expirationTask
	// compactor compacts the partition's remote segments, for a
	// compacted topic.
	compactor *compactTask
}

// remoteState is the partition's last known manifest. The fetch path reads
// its log start through atomics, without taking a lock.
type remoteState struct {
	// writeMu serialises the writers of the partition's manifests: the
	// tiering round for it and DeleteRecords.
	writeMu sync.Mutex

	mu       sync.Mutex
	manifest *tiering.PartitionManifest // nil: not read yet
	epoch    int32                      // the leader epoch it was read or written in
	// failedAt is when reading the manifest for a fetch last failed, and
	// failure how.
	failedAt time.Time
	failure  *ReadError

	// start is the log start the manifest records (-1 when none is
	// known), and hasData whether it names any segment.
	start   atomic.Int64
	hasData atomic.Bool
}

func newPartition(m *Manager, tp TopicPartition, log Log, r Replica) *Partition {
	p := &Partition{
		m: m, tp: tp, layout: tp.layout(), log: log, replica: r,
		labels: []string{tp.Topic, strconv.Itoa(int(tp.Partition))},
		state:  &remoteState{},
	}
	p.state.start.Store(-1)
	ld := leadership{replica: r, leaseOK: m.env.leaseOK}
	p.copier = &copyTask{env: m.env, tp: tp, layout: p.layout, log: log, replica: r, leader: ld, state: p.state, labels: p.labels}
	p.expirer = &expirationTask{env: m.env, tp: tp, layout: p.layout, log: log, hw: r.HighWatermark, leader: ld, state: p.state}
	p.compactor = &compactTask{env: m.env, tp: tp, layout: p.layout, leader: ld, state: p.state}
	return p
}

// TopicPartition is the partition p stands for.
func (p *Partition) TopicPartition() TopicPartition { return p.tp }

// Manifest returns the partition's last known manifest (nil if none is)
// and the leader epoch it was read or written in (-1: read for a fetch,
// outside any epoch).
func (p *Partition) Manifest() (*tiering.PartitionManifest, int32) { return p.state.get() }

// SetManifest replaces the known manifest, as read or written in epoch;
// nil forgets it, so that it is read from the bucket again when next
// needed. For callers that changed the bucket behind the manager's back,
// as tests do; hold LockWrites meanwhile.
func (p *Partition) SetManifest(m *tiering.PartitionManifest, epoch int32) { p.state.set(m, epoch) }

// LockWrites holds off the partition's manifest writers (its tiering round
// and DeleteRecords) until the returned function is called.
func (p *Partition) LockWrites() (unlock func()) {
	p.state.writeMu.Lock()
	return p.state.writeMu.Unlock
}

// LogStartOffset is the first offset still in the partition's log: in the
// object store when the partition is tiered and its oldest records are
// only there. The manifest's log start is moved first when records are
// deleted (retention, DeleteRecords), so a local log start below it, left
// by a crash before the local log followed, does not bring deleted records
// back.
func (p *Partition) LogStartOffset() int64 {
	local := p.log.LogStartOffset()
	rs := p.state.start.Load()
	switch {
	case rs < 0:
		return local
	case p.state.hasData.Load():
		return rs
	}
	return max(rs, local)
}

func (s *remoteState) get() (*tiering.PartitionManifest, int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.manifest, s.epoch
}

func (s *remoteState) set(m *tiering.PartitionManifest, epoch int32) {
	s.mu.Lock()
	s.manifest, s.epoch = m, epoch
	s.mu.Unlock()
	if m == nil {
		s.start.Store(-1)
		s.hasData.Store(false)
		return
	}
	// Data first: a reader that sees the new start sees whether it holds
	// segments.
	s.hasData.Store(len(m.Segments) > 0)
	s.start.Store(m.LogStartOffset)
}

// leadership checks this broker's leadership of one partition.
type leadership struct {
	replica Replica
	leaseOK func() bool
}

// current returns the epoch this broker leads the partition in, with a
// lease it can trust, or false.
func (l leadership) current() (int32, bool) {
	epoch, leader := l.replica.Leadership()
	return epoch, leader && l.leaseOK()
}

// still reports whether this broker still leads in epoch: a manifest is
// written only then (a deposed leader's would be ignored anyway, being of
// an older epoch, but need not be written).
func (l leadership) still(epoch int32) bool {
	e, ok := l.current()
	return ok && e == epoch
}

// round runs the partition's tasks once, if its topic is tiered and this
// broker leads it.
func (p *Partition) round(ctx context.Context, round int) {
	cfg, err := p.replica.Config()
	if err != nil || !cfg.RemoteStorageEnable {
		return
	}
	epoch, ok := p.copier.leader.current()
	if !ok {
		p.m.metrics.backlog.DeleteLabelValues(p.labels...)
		return
	}
	unlock := p.LockWrites()
	defer unlock()
	m, err := p.leaderManifest(ctx, epoch)
	if err != nil {
		p.m.metrics.failed(stepReadManifest)
		p.m.env.logger.Warn("tiering: cannot read the partition's manifest", "topic", p.tp.Topic, "partition", p.tp.Partition, "err", err)
		return
	}
	// The steps keep this order: compaction and retention work on what the
	// upload just named, local retention on what they left.
	if p.tp.Partition == 0 {
		p.copier.writeTopicManifest(ctx)
	}
	m = p.copier.upload(ctx, m, epoch)
	m = p.compactor.compact(ctx, m, epoch, cfg)
	m = p.expirer.retention(ctx, m, epoch, cfg)
	p.copier.localRetention(m, cfg)
	if round%pruneEvery == pruneEvery-1 {
		p.expirer.pruneManifests(ctx)
	}
	if round%collectEvery == collectEvery-1 {
		p.expirer.collectGarbage(ctx, m)
	}
}

// leaderManifest returns the manifest to build on in epoch: read from the
// bucket when this broker has not read or written one in this epoch.
// Callers hold the write lock.
func (p *Partition) leaderManifest(ctx context.Context, epoch int32) (*tiering.PartitionManifest, error) {
	if m, e := p.state.get(); m != nil && e == epoch {
		return m, nil
	}
	m, _, found, err := tiering.LatestManifest(ctx, p.m.store, p.layout, p.tp.Partition)
	if err != nil {
		return nil, err
	}
	if !found {
		m = p.emptyManifest(epoch)
	}
	if m.LeaderEpoch > epoch {
		return nil, fmt.Errorf("the bucket has a manifest of leader epoch %d, newer than this leader's %d", m.LeaderEpoch, epoch)
	}
	p.state.set(&m, epoch)
	return &m, nil
}

// emptyManifest is the manifest of a partition with nothing in the bucket.
func (p *Partition) emptyManifest(epoch int32) tiering.PartitionManifest {
	return tiering.PartitionManifest{Topic: p.tp.Topic, TopicID: p.tp.TopicID, Partition: p.tp.Partition, Seq: -1,
		LeaderEpoch: epoch, LogStartOffset: p.log.LogStartOffset()}
}

// nextManifest returns a copy of m to write as the epoch's next manifest.
func nextManifest(m *tiering.PartitionManifest, epoch int32) tiering.PartitionManifest {
	n := *m
	n.Segments = slices.Clone(m.Segments)
	if n.LeaderEpoch == epoch {
		n.Seq++
	} else {
		n.LeaderEpoch, n.Seq = epoch, 0
	}
	return n
}

// EnsureManifest reads a tiered partition's manifest if none is known yet
// (after a restart, or on becoming leader, before the tiering task's first
// round): until then its log start would be the local one, and a consumer
// asking for older offsets would be told they are gone. While it cannot be
// read it returns why (a *ReadError): a caller must then not answer for
// offsets below the local log, which the bucket may hold.
func (p *Partition) EnsureManifest(ctx context.Context) error {
	if p.m.store == nil {
		return nil
	}
	if m, _ := p.state.get(); m != nil {
		return nil
	}
	cfg, err := p.replica.Config()
	if err != nil || !cfg.RemoteStorageEnable {
		return nil
	}
	epoch, _ := p.replica.Leadership()
	// While the store is down, fetches must not each wait for it: they are
	// answered with the last failure.
	s := p.state
	s.mu.Lock()
	if p.m.env.now().Sub(s.failedAt) < manifestRetry {
		failure := s.failure
		s.mu.Unlock()
		if failure == nil {
			return nil
		}
		return failure
	}
	s.mu.Unlock()
	m, _, found, err := tiering.LatestManifest(ctx, p.m.store, p.layout, p.tp.Partition)
	if err != nil {
		err = p.readFailed(ctx, -1, err)
		var re *ReadError
		if errors.As(err, &re) {
			s.mu.Lock()
			s.failedAt, s.failure = p.m.env.now(), re
			s.mu.Unlock()
		}
		return err
	}
	if !found {
		m = p.emptyManifest(epoch)
	}
	// Recorded under no epoch (-1): the copy task reads the manifest again
	// before building on it in its own.
	s.set(&m, -1)
	return nil
}
