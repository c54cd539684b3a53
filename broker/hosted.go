package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/tiering/rlm"
	"github.com/strata-broker/strata/topicconfig"
)

// hostedTopics is what Kafka calls the replica manager's partitions: the
// topics this broker knows and the partition logs it hosts of them, kept in
// step with the topic definitions in the metastore and the partition states
// of the cluster view. Produce, fetch and the background loops find their
// partitions here.
type hostedTopics struct {
	nodeID         int32
	dataDir        string
	brokerDefaults map[string]string
	logger         *slog.Logger
	now            func() time.Time
	store          TopicStore
	cluster        *clusterView
	fetchers       *fetcherManager
	rlm            *rlm.Manager
	files          *partlog.FileCache // bounds the sealed-segment files the logs keep open
	// registered is the revision of this broker's current registration,
	// which partition states naming it leader must not predate.
	registered func() int64
	// remoteReplica is how the remote log manager sees a partition opened
	// here.
	remoteReplica func(*Partition) rlm.Replica
	// producerState bounds each partition's idempotent-producer state
	// (producer.id.expiration.ms, producer.state.max.entries).
	producerState partlog.ProducerStateConfig
	// isr is told of the ISR changes of the partitions this broker leads.
	isr isrObserver
	// openWorkers is how many logs are opened at once
	// (num.recovery.threads.per.data.dir).
	openWorkers int
	// fileLimit is the process's open file limit (openFileLimit).
	fileLimit func() (uint64, bool)
	// fileLimitWarned is set while the logs may need more files than the
	// process may open, once that was logged; guarded by applyMu.
	fileLimitWarned bool

	// applyMu serialises changes to the hosted topics (open, close, delete);
	// mu guards the map itself and is held only briefly.
	applyMu sync.Mutex
	mu      sync.RWMutex
	topics  map[string]*topic
	// byID names the topics of topics by id (Fetch v13+ and share
	// requests name topics by id), kept with it under mu.
	byID   map[string]string
	closed bool
}

// topic is the broker's local view of one topic.
type topic struct {
	meta       metastore.Topic
	cfg        topicconfig.Topic
	partitions []*Partition // nil entries for partitions not hosted here
}

// partitionMetaFile records which topic (by id) a partition directory belongs
// to, so that the directory of a deleted topic is never mistaken for the data
// of a new topic with the same name.
const partitionMetaFile = "partition.metadata"

type partitionMeta struct {
	TopicID   string `json:"topic_id"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// watch applies every topic change recorded in the metastore.
// It starts right after the listing Start loaded, so a topic deleted or
// created in between is not missed.
func (h *hostedTopics) watch(ctx context.Context, known []metastore.Topic, rev int64) {
	for ev := range h.store.WatchTopicsSince(ctx, known, rev) {
		switch ev.Type {
		case metastore.TopicPut:
			if err := h.applyTopic(ev.Topic); err != nil {
				h.logger.Error("cannot apply topic change", "topic", ev.Topic.Name, "err", err)
			}
		case metastore.TopicDeleted:
			h.applyDelete(ctx, ev.Topic.Name)
		}
	}
}

// applyDelete removes a topic reported deleted by the watch, unless the
// metastore has it again: a delete event can arrive after the topic was
// created anew (by this broker's own admin call, applied at once), and must
// not take the new topic's data with it.
func (h *hostedTopics) applyDelete(ctx context.Context, name string) {
	// The incarnation held before asking: if another is applied meanwhile
	// (an admin call creating the topic anew), it must survive this delete.
	held := ""
	h.mu.RLock()
	if cur := h.topics[name]; cur != nil {
		held = cur.meta.ID
	}
	h.mu.RUnlock()
	if held == "" {
		return
	}
	t, err := h.store.GetTopic(ctx, name)
	switch {
	case err == nil:
		if err := h.applyTopic(t); err != nil {
			h.logger.Error("cannot apply topic", "topic", name, "err", err)
		}
	case errors.Is(err, metastore.ErrTopicNotFound):
		h.removeTopic(name, held)
	default:
		// Unsure: keep the data. The next event or resync settles it.
		h.logger.Warn("topic delete event not applied: cannot confirm it", "topic", name, "err", err)
	}
}

// flushInterval is how often the flush policy (flush.ms) is checked. It bounds
// how late an interval flush can be; flush.messages is enforced on append.
const flushInterval = 100 * time.Millisecond

func (h *hostedTopics) flushLoop(ctx context.Context) {
	h.everyPartition(ctx, flushInterval, func(_ time.Time, p *Partition) {
		// A failed log reported its first failure itself; it stays failed.
		if err := p.log.MaybeFlush(); err != nil && !errors.Is(err, partlog.ErrLogClosed) && !errors.Is(err, partlog.ErrLogFailed) {
			h.logger.Error("flush failed", "topic", p.Topic, "partition", p.Index, "err", err)
		}
	})
}

// everyPartition calls fn for each hosted partition every interval, until
// ctx ends.
func (h *hostedTopics) everyPartition(ctx context.Context, interval time.Duration, fn func(now time.Time, p *Partition)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := h.now()
		for _, p := range h.allPartitions() {
			fn(now, p)
		}
	}
}

func (h *hostedTopics) allPartitions() []*Partition {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []*Partition
	for _, t := range h.topics {
		for _, p := range t.partitions {
			if p != nil {
				out = append(out, p)
			}
		}
	}
	return out
}

// hostedPartition is a hosted partition with the topic settings its
// health is judged by.
type hostedPartition struct {
	p      *Partition
	minISR int
}

// allPartitionsWithConfig is allPartitions with each topic's
// min.insync.replicas.
func (h *hostedTopics) allPartitionsWithConfig() []hostedPartition {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []hostedPartition
	for _, t := range h.topics {
		for _, p := range t.partitions {
			if p != nil {
				out = append(out, hostedPartition{p: p, minISR: int(t.cfg.MinInsyncReplicas)})
			}
		}
	}
	return out
}

func logConfig(c topicconfig.Topic) partlog.Config {
	ms := func(v int64) time.Duration {
		if v <= 0 || v >= math.MaxInt64/int64(time.Millisecond) {
			return 0
		}
		return time.Duration(v) * time.Millisecond
	}
	flushMessages := c.FlushMessages
	if flushMessages == math.MaxInt64 {
		flushMessages = 0
	}
	segmentMs := c.SegmentMs
	if c.CompactEnabled() {
		// As Kafka: the active segment is never compacted, so it rolls by
		// max.compaction.lag.ms too, bounding how long a record can stay
		// uncompacted.
		segmentMs = min(segmentMs, c.MaxCompactionLagMs)
	}
	return partlog.Config{
		SegmentBytes:       c.SegmentBytes,
		SegmentMs:          ms(segmentMs),
		IndexIntervalBytes: int(c.IndexIntervalBytes),
		FlushMessages:      flushMessages,
		FlushInterval:      ms(c.FlushMs),
		MaxMessageBytes:    int(c.MaxMessageBytes),
	}
}

// applyTopic makes the local state match t: it opens the logs of partitions
// this broker hosts and applies config changes. It is idempotent.
func (h *hostedTopics) applyTopic(t metastore.Topic) error {
	return h.applyTopics([]metastore.Topic{t})
}

// topicChange is what applying one topic definition does: the partitions
// it keeps and the ones it opens.
type topicChange struct {
	t      metastore.Topic
	cfg    topicconfig.Topic
	lc     partlog.Config
	states []metastore.PartitionState
	parts  []*Partition
	toOpen []int
	logs   []*partlog.Log // of toOpen, while they open
	errs   []error        // of toOpen
}

// applyTopics is applyTopic for many topics at once, as a broker's start
// applies every topic it knows: their new partitions open together,
// num.recovery.threads.per.data.dir at a time, with the fsyncs of opening
// them shared (partlog.SyncBatch), so that thousands of partitions cost a
// few syncs rather than several each.
func (h *hostedTopics) applyTopics(ts []metastore.Topic) error {
	// One change at a time (the watch and admin calls both apply changes):
	// two changes to one topic interleaving could delete the directory the
	// other is creating. h.mu is taken only to read and swap map entries, so
	// produce and fetch never wait for a log to open, recover or be deleted.
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	var errs []error
	var changes []*topicChange
	for _, t := range ts {
		c, err := h.planTopic(t)
		if err != nil {
			errs = append(errs, fmt.Errorf("topic %s: %w", t.Name, err))
		}
		if c != nil {
			changes = append(changes, c)
		}
	}
	h.openChanges(changes)
	for _, c := range changes {
		for _, i := range c.toOpen {
			if parts := c.parts; parts[i] != nil {
				// Its role is set before anyone can find it.
				h.applyPartitionState(parts[i], c.states[i])
			}
		}
		h.mu.Lock()
		h.topics[c.t.Name] = &topic{meta: c.t, cfg: c.cfg, partitions: c.parts}
		h.byID[c.t.ID] = c.t.Name
		h.mu.Unlock()
		// States may have changed while the logs opened: apply the latest.
		for i, p := range c.parts {
			if p == nil {
				continue
			}
			if st, ok := h.cluster.cachedState(c.t.Name, int32(i)); ok {
				h.applyPartitionState(p, st)
			} else {
				h.applyPartitionState(p, c.states[i])
			}
		}
		errs = append(errs, c.errs...)
	}
	h.checkFileLimit()
	return errors.Join(errs...)
}

// fileReserve is what checkFileLimit leaves for the rest of the broker:
// client and replica connections, etcd, the tiering cache.
const fileReserve = 1024

// checkFileLimit warns when the hosted logs may need more files than the
// process may open: each keeps its active segment open, and the sealed
// segments' cache up to log.segment.open.files.max more. Past the limit,
// opening a partition, a connection or a segment fails with "too many
// open files". h.applyMu is held.
func (h *hostedTopics) checkFileLimit() {
	if h.fileLimit == nil {
		return
	}
	limit, ok := h.fileLimit()
	if !ok {
		return
	}
	h.mu.RLock()
	hosted := 0
	for _, t := range h.topics {
		for _, p := range t.partitions {
			if p != nil {
				hosted++
			}
		}
	}
	h.mu.RUnlock()
	need := uint64(hosted) + uint64(max(h.files.Max(), 0)) + fileReserve
	if need <= limit {
		h.fileLimitWarned = false
		return
	}
	if !h.fileLimitWarned {
		h.fileLimitWarned = true
		h.logger.Warn("the hosted partitions may need more open files than this process may open: raise its limit (ulimit -n, systemd LimitNOFILE)",
			"partitions", hosted, "sealed_segment_files_max", h.files.Max(), "reserve", fileReserve, "open_files_limit", limit)
	}
}

// planTopic works out what applying t changes; nil when nothing (t is older
// than what is held). h.applyMu is held.
func (h *hostedTopics) planTopic(t metastore.Topic) (*topicChange, error) {
	cfg, _, err := topicconfig.Resolve(t.Configs, h.brokerDefaults)
	if err != nil {
		// A stored topic is served even when its overrides no longer agree
		// with the broker defaults: Resolve falls back per key, and refusing
		// would take acknowledged data offline.
		h.logger.Warn("topic config does not resolve cleanly; using fallbacks", "topic", t.Name, "err", err)
	}
	h.mu.RLock()
	cur, closed := h.topics[t.Name], h.closed
	h.mu.RUnlock()
	if closed {
		return nil, ErrBrokerClosed
	}
	if cur != nil && t.Revision != 0 && t.Revision < cur.meta.Revision {
		return nil, nil // an older event than what we hold
	}
	if cur != nil && cur.meta.ID != t.ID {
		// The topic was deleted and created again while we were not looking.
		h.mu.Lock()
		delete(h.topics, t.Name)
		delete(h.byID, cur.meta.ID)
		h.mu.Unlock()
		h.dropPartitions(t.Name, cur)
		cur = nil
	}

	states, err := h.cluster.topicStates(t)
	if err != nil {
		return nil, err
	}
	c := &topicChange{t: t, cfg: cfg, lc: logConfig(cfg), states: states, parts: make([]*Partition, max(int(t.Partitions), 0))}
	if cur != nil {
		copy(c.parts, cur.partitions)
	}
	for i, p := range c.parts {
		if p != nil {
			p.log.SetConfig(c.lc)
			continue
		}
		// A broker hosts the partitions it is a replica of.
		if slices.Contains(states[i].Replicas, h.nodeID) {
			c.toOpen = append(c.toOpen, i)
		}
	}
	c.logs = make([]*partlog.Log, len(c.toOpen))
	c.errs = make([]error, len(c.toOpen))
	return c, nil
}

func (h *hostedTopics) partitionDir(topic string, p int32) string {
	return partitionDirIn(h.dataDir, topic, p)
}

// partitionDirIn is where partition p of topic lives in dataDir.
func partitionDirIn(dataDir, topic string, p int32) string {
	return filepath.Join(dataDir, fmt.Sprintf("%s-%d", topic, p))
}

// openChanges opens the partitions the changes name, at most h.openWorkers
// at a time (num.recovery.threads.per.data.dir): opening a log is mostly
// waiting for its files, so thousands of partitions open in a fraction of
// the time they take one after another. The logs open with their fsyncs
// deferred to one SyncBatch; only once that has synced are they made
// partitions that can be written to. A partition that does not open is left
// out, its error in its change.
func (h *hostedTopics) openChanges(changes []*topicChange) {
	type job struct {
		c *topicChange
		j int // into c.toOpen
	}
	var jobs []job
	for _, c := range changes {
		for j := range c.toOpen {
			jobs = append(jobs, job{c, j})
		}
	}
	if len(jobs) == 0 {
		return
	}
	// A syncfs also writes back whatever else is dirty on the filesystem
	// (on a busy broker, the segments' unflushed appends): worth it for
	// many logs, while a few sync their own files (a nil batch).
	var batch *partlog.SyncBatch
	if len(jobs) >= syncBatchMin {
		batch = partlog.NewSyncBatch()
	}
	h.forEach(len(jobs), func(k int) {
		c, j := jobs[k].c, jobs[k].j
		c.logs[j], c.errs[j] = h.openLog(c.t, int32(c.toOpen[j]), c.lc, batch)
	})
	if err := batch.Sync(); err != nil {
		// Nothing opened may be written to: what it wrote may not be
		// durable, so closing marks no clean shutdown (the next open
		// recovers). The next apply of the topic tries again.
		for _, jb := range jobs {
			if l := jb.c.logs[jb.j]; l != nil {
				l.Close()
				jb.c.logs[jb.j] = nil
				jb.c.errs[jb.j] = fmt.Errorf("open log %s-%d: %w", jb.c.t.Name, jb.c.toOpen[jb.j], err)
			}
		}
		return
	}
	h.forEach(len(jobs), func(k int) {
		c, j := jobs[k].c, jobs[k].j
		if l := c.logs[j]; l != nil {
			i := c.toOpen[j]
			c.parts[i], c.errs[j] = h.startPartition(c.t, int32(i), l)
		}
	})
	for _, c := range changes {
		c.errs = slices.DeleteFunc(c.errs, func(err error) bool { return err == nil })
	}
}

// syncBatchMin is how many logs opened together share their syncs: below
// it, each syncs its own files, which costs about a tenth of a millisecond
// a log, against one syncfs whose cost is whatever the filesystem has
// dirty.
const syncBatchMin = 64

// forEach calls fn(0..n-1), h.openWorkers at a time.
func (h *hostedTopics) forEach(n int, fn func(k int)) {
	workers := min(max(h.openWorkers, 1), n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				fn(k)
			}
		}()
	}
	for k := range n {
		next <- k
	}
	close(next)
	wg.Wait()
}

// openLog opens the log of partition p of t, its fsyncs deferred to batch.
func (h *hostedTopics) openLog(t metastore.Topic, p int32, lc partlog.Config, batch *partlog.SyncBatch) (*partlog.Log, error) {
	dir := h.partitionDir(t.Name, p)
	metaPath := filepath.Join(dir, partitionMetaFile)
	fresh := false
	if raw, err := os.ReadFile(metaPath); err == nil {
		var m partitionMeta
		if err := json.Unmarshal(raw, &m); err != nil || m.TopicID == "" {
			// Never delete what we cannot identify: it may be this topic's
			// data. A directory holding no records is a creation that a
			// crash cut short before its files were synced: it starts again.
			if held, herr := partlog.HoldsRecords(dir); herr != nil || held {
				return nil, fmt.Errorf("partition %s-%d: unreadable %s (move it aside to serve the partition): %v",
					t.Name, p, metaPath, err)
			}
			h.logger.Warn("rewriting the unreadable metadata of a partition directory that holds no records",
				"dir", dir, "err", err)
			fresh = true
		} else if m.TopicID != t.ID {
			h.logger.Warn("removing partition directory of an older topic with the same name",
				"dir", dir, "topic_id", m.TopicID, "current_topic_id", t.ID)
			if err := os.RemoveAll(dir); err != nil {
				return nil, fmt.Errorf("remove stale %s: %w", dir, err)
			}
			fresh = true
		}
	} else {
		fresh = errors.Is(err, fs.ErrNotExist)
	}
	if fresh {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("partition dir: %w", err)
		}
		raw, _ := json.Marshal(partitionMeta{TopicID: t.ID, Topic: t.Name, Partition: p})
		if err := batch.PublishFile(dir, partitionMetaFile, raw); err != nil {
			return nil, err
		}
	}
	l, err := partlog.Open(partlog.Options{
		Dir:    dir,
		Config: lc,
		Logger: h.logger.With("topic", t.Name, "partition", p),
		Now:    h.now,
		Files:  h.files,
		Sync:   batch,
	})
	if err != nil {
		return nil, fmt.Errorf("open log %s-%d: %w", t.Name, p, err)
	}
	return l, nil
}

// startPartition makes an opened (and synced) log partition p of t.
func (h *hostedTopics) startPartition(t metastore.Topic, p int32, l *partlog.Log) (*Partition, error) {
	if err := h.rlm.StartAtRemoteEnd(context.Background(), topicPartition(t, p), remoteEnabled(t, h.brokerDefaults), l); err != nil {
		l.Close()
		return nil, err
	}
	np := newPartition(t.Name, t.ID, p, l, h.nodeID)
	np.isrObserver = h.isr
	np.remote = h.rlm.Add(topicPartition(t, p), l, h.remoteReplica(np))
	h.initProducerState(np)
	return np, nil
}

// removeTopic drops the local partitions of a topic. With a non-empty id it
// removes only that incarnation of the topic, so a caller holding an old id
// cannot remove a topic created anew under the same name.
func (h *hostedTopics) removeTopic(name, id string) {
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	h.mu.Lock()
	t := h.topics[name]
	if t == nil || (id != "" && t.meta.ID != id) {
		h.mu.Unlock()
		return
	}
	delete(h.topics, name)
	delete(h.byID, t.meta.ID)
	h.mu.Unlock()
	h.dropPartitions(name, t)
	h.logger.Info("topic removed", "topic", name)
}

// dropPartitions closes a removed topic's logs and deletes their directories.
// It runs outside h.mu: closing and deleting a large partition takes time,
// and produce and fetch on other topics must not wait for it.
func (h *hostedTopics) dropPartitions(name string, t *topic) {
	for _, p := range t.partitions {
		if p == nil {
			continue
		}
		// Stop serving it (waiting producers and polls return, the fetcher
		// lets go) before its log closes under them.
		p.drop()
		h.fetchers.remove(p)
		h.rlm.Remove(p.remote)
		if err := p.log.Close(); err != nil {
			h.logger.Warn("close deleted partition", "topic", name, "partition", p.Index, "err", err)
		}
		dir := p.log.Dir()
		if err := os.RemoveAll(dir); err != nil {
			h.logger.Error("remove deleted partition", "dir", dir, "err", err)
		}
	}
}

var partitionDirRE = regexp.MustCompile(`^(.+)-([0-9]+)$`)

// removeOrphanDirs deletes partition directories of topics that no longer
// exist (deleted while this broker was down), and those of partitions whose
// replica set no longer names this broker: a move that took the partition
// off it while it was down (dropReplica deletes the copy only of a running
// replica), as Kafka deletes such stray logs at startup. Only directories
// carrying a partition.metadata file are considered, so nothing else in the
// data dir is ever touched.
func (h *hostedTopics) removeOrphanDirs(topics []metastore.Topic) {
	live := make(map[string]string, len(topics))
	partitions := make(map[string]int32, len(topics))
	for _, t := range topics {
		live[t.Name] = t.ID
		partitions[t.Name] = t.Partitions
	}
	entries, err := os.ReadDir(h.dataDir)
	if err != nil {
		h.logger.Warn("cannot list data dir", "err", err)
		return
	}
	for _, e := range entries {
		m := partitionDirRE.FindStringSubmatch(e.Name())
		if !e.IsDir() || m == nil {
			continue
		}
		dir := filepath.Join(h.dataDir, e.Name())
		raw, err := os.ReadFile(filepath.Join(dir, partitionMetaFile))
		if err != nil {
			continue
		}
		var pm partitionMeta
		if json.Unmarshal(raw, &pm) != nil {
			continue
		}
		idx, _ := strconv.Atoi(m[2])
		if id, ok := live[pm.Topic]; ok && id == pm.TopicID && int32(idx) < partitions[pm.Topic] {
			h.removeIfMovedAway(pm.Topic, int32(idx), dir)
			continue
		}
		h.logger.Info("removing partition directory of a deleted topic", "dir", dir)
		if err := os.RemoveAll(dir); err != nil {
			h.logger.Error("remove orphan partition dir", "dir", dir, "err", err)
		}
	}
}

// removeIfMovedAway deletes the directory of a partition of a live topic
// that was moved off this broker while it was down: the partition's state
// no longer names it a replica. Decided under the lock every hosting change
// takes, so a move back here meanwhile keeps the directory (and opens it).
func (h *hostedTopics) removeIfMovedAway(topic string, index int32, dir string) {
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	st, ok := h.cluster.cachedState(topic, index)
	if !ok || slices.Contains(st.Replicas, h.nodeID) {
		return
	}
	if _, err := h.partition(topic, index); err == nil {
		return
	}
	h.logger.Info("removing partition directory of a partition moved to other brokers", "dir", dir, "replicas", st.Replicas)
	if err := os.RemoveAll(dir); err != nil {
		h.logger.Error("remove moved partition dir", "dir", dir, "err", err)
	}
}

// partition returns the hosted partition or ErrUnknownTopicOrPartition.
func (h *hostedTopics) partition(topicName string, p int32) (*Partition, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return nil, ErrBrokerClosed
	}
	t := h.topics[topicName]
	if t == nil {
		return nil, fmt.Errorf("topic %q: %w", topicName, ErrUnknownTopicOrPartition)
	}
	if p < 0 || int(p) >= len(t.partitions) || t.partitions[p] == nil {
		return nil, fmt.Errorf("topic %q has no partition %d (it has %d): %w", topicName, p, t.meta.Partitions, ErrUnknownTopicOrPartition)
	}
	return t.partitions[p], nil
}

// leaderPartition returns a partition this broker leads: producers write
// to leaders only, and consumers read from them unless they allow a
// follower (readablePartition). A partition of a
// known topic that is not hosted here is ErrNotLeader, so clients refresh
// their metadata rather than give up.
func (h *hostedTopics) leaderPartition(topicName string, p int32) (*Partition, error) {
	part, err := h.partition(topicName, p)
	if err != nil {
		if st, ok := h.cluster.cachedState(topicName, p); ok && st.Leader != h.nodeID && errors.Is(err, ErrUnknownTopicOrPartition) {
			if st.Leader < 0 {
				return nil, fmt.Errorf("%s-%d: %w", topicName, p, ErrLeaderNotAvailable)
			}
			return nil, fmt.Errorf("%s-%d: leader is broker %d: %w", topicName, p, st.Leader, ErrNotLeader)
		}
		return nil, err
	}
	if err := part.checkLeader(); err != nil {
		return nil, err
	}
	return part, nil
}

// PartitionCount returns the number of partitions of a topic.
func (h *hostedTopics) PartitionCount(topicName string) (int32, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	t := h.topics[topicName]
	if t == nil {
		return 0, fmt.Errorf("topic %q: %w", topicName, ErrUnknownTopicOrPartition)
	}
	return t.meta.Partitions, nil
}

// TopicConfig returns the effective configuration of a topic.
func (h *hostedTopics) TopicConfig(topicName string) (topicconfig.Topic, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	t := h.topics[topicName]
	if t == nil {
		return topicconfig.Topic{}, fmt.Errorf("topic %q: %w", topicName, ErrUnknownTopicOrPartition)
	}
	return t.cfg, nil
}

// applyStates applies partition states newer than what the cluster view held
// to the hosted partitions, opening a partition's log when this broker has
// just become one of its replicas.
func (h *hostedTopics) applyStates(changed []metastore.PartitionState) {
	var reopen []string
	for _, st := range changed {
		p, err := h.partition(st.Topic, st.Partition)
		if err != nil {
			if slices.Contains(st.Replicas, h.nodeID) && !slices.Contains(reopen, st.Topic) {
				reopen = append(reopen, st.Topic)
			}
			continue
		}
		if !slices.Contains(st.Replicas, h.nodeID) && p.sameTopic(st.TopicID) {
			h.dropReplica(st.Topic, st.Partition)
			continue
		}
		h.applyPartitionState(p, st)
	}
	for _, name := range reopen {
		h.mu.RLock()
		t := h.topics[name]
		h.mu.RUnlock()
		if t == nil {
			continue // the topic's own event opens it
		}
		if err := h.applyTopic(t.meta); err != nil {
			h.logger.Error("cannot open partitions", "topic", name, "err", err)
		}
	}
}

// dropReplica stops hosting a partition this broker is no longer a replica
// of (a move took it elsewhere): it closes the log and deletes its
// directory, as Kafka's StopReplica with deletion does. The newest known
// state decides, under the lock every hosting change takes, so a move
// cancelled meanwhile keeps the log.
func (h *hostedTopics) dropReplica(name string, index int32) {
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	st, ok := h.cluster.cachedState(name, index)
	if !ok || slices.Contains(st.Replicas, h.nodeID) {
		return
	}
	h.mu.Lock()
	t := h.topics[name]
	if t == nil || int(index) >= len(t.partitions) || t.partitions[index] == nil ||
		(st.TopicID != "" && st.TopicID != t.meta.ID) {
		h.mu.Unlock()
		return
	}
	parts := slices.Clone(t.partitions)
	p := parts[index]
	parts[index] = nil
	h.topics[name] = &topic{meta: t.meta, cfg: t.cfg, partitions: parts}
	h.mu.Unlock()
	h.logger.Info("no longer a replica; deleting the partition's local log", "topic", name, "partition", index,
		"replicas", st.Replicas, "leader", st.Leader)
	h.dropPartitions(name, &topic{partitions: []*Partition{p}})
}

// applyPartitionState applies st to p and starts or stops replica fetching.
func (h *hostedTopics) applyPartitionState(p *Partition, st metastore.PartitionState) {
	_, changed := p.applyState(st, h.now(), h.registered())
	if changed {
		_, r := p.State()
		h.logger.Info("partition role", "topic", p.Topic, "partition", p.Index, "role", r.String(),
			"leader", st.Leader, "leader_epoch", st.LeaderEpoch, "isr", st.ISR)
	}
	// From p's state as it is now, not as this call left it: two appliers
	// racing (the watch, an ISR change's result) must not leave a follower
	// without its fetcher.
	h.fetchers.sync(p)
}

// initProducerState gives a newly opened partition the broker's clock and
// producer-state bounds and rebuilds its producer state from its log. A
// failure to read part of the log is logged: the producers it would have
// shown are just unknown (their next batch is accepted at any sequence).
func (h *hostedTopics) initProducerState(p *Partition) {
	p.producers.now = h.now
	p.producers.logger = h.logger
	p.producers.table = partlog.NewProducerStates(h.producerState)
	if err := p.rebuildProducerState(); err != nil {
		h.logger.Warn("producer state rebuilt from part of the log tail", "topic", p.Topic, "partition", p.Index, "err", err)
	}
}

// catchUp applies, from the metastore, the named topics not held yet. A
// topic created through another broker reaches this one through the watch a
// moment later; a client that was told the topic exists (its CreateTopics
// returned) and asks here must not be told it does not. Only unknown names
// cost an etcd read.
func (h *hostedTopics) catchUp(ctx context.Context, names []string) {
	for _, name := range names {
		h.mu.RLock()
		_, ok := h.topics[name]
		h.mu.RUnlock()
		if ok {
			continue
		}
		t, err := h.store.GetTopic(ctx, name)
		if err != nil {
			continue // unknown, or etcd unreachable: answer from what is held
		}
		if err := h.applyTopic(t); err != nil {
			h.logger.Warn("cannot apply topic read for metadata", "topic", name, "err", err)
			continue
		}
		// A delete whose watch event was applied before the topic was: the
		// watch would not remove it again.
		if _, err := h.store.GetTopic(ctx, name); errors.Is(err, metastore.ErrTopicNotFound) {
			h.removeTopic(name, t.ID)
		}
	}
}

// known returns the definitions of the named topics held here (of every
// held topic, sorted by name, if names is empty) and the names asked for.
func (h *hostedTopics) known(names []string) ([]string, map[string]metastore.Topic) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if len(names) == 0 {
		for name := range h.topics {
			names = append(names, name)
		}
		slices.Sort(names)
	}
	known := make(map[string]metastore.Topic, len(names))
	for _, name := range names {
		if t := h.topics[name]; t != nil {
			known[name] = t.meta
		}
	}
	return names, known
}

// meta returns the definition of a hosted topic.
func (h *hostedTopics) meta(name string) (metastore.Topic, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	t := h.topics[name]
	if t == nil {
		return metastore.Topic{}, false
	}
	return t.meta, true
}

// hostedOf returns the partitions of a topic hosted here and a copy of its
// overrides, read together.
func (h *hostedTopics) hostedOf(name string) ([]*Partition, map[string]string, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return nil, nil, ErrBrokerClosed
	}
	t := h.topics[name]
	if t == nil {
		return nil, nil, fmt.Errorf("topic %q: %w", name, ErrUnknownTopicOrPartition)
	}
	parts := slices.DeleteFunc(slices.Clone(t.partitions), func(p *Partition) bool { return p == nil })
	return parts, maps.Clone(t.meta.Configs), nil
}

// registerWaiter adds wake to the waiters of the n hosted partitions that
// name gives, and returns them.
func (h *hostedTopics) registerWaiter(n int, name func(i int) (string, int32), wake chan struct{}) []*Partition {
	var hosted []*Partition
	for i := range n {
		if p, err := h.partition(name(i)); err == nil {
			p.addWaiter(wake)
			hosted = append(hosted, p)
		}
	}
	return hosted
}

func (h *hostedTopics) register(parts []FetchPartition, wake chan struct{}) []*Partition {
	return h.registerWaiter(len(parts), func(i int) (string, int32) { return parts[i].Topic, parts[i].Partition }, wake)
}

func (h *hostedTopics) registerReplica(parts []ReplicaFetchPartition, wake chan struct{}) []*Partition {
	return h.registerWaiter(len(parts), func(i int) (string, int32) { return parts[i].Topic, parts[i].Partition }, wake)
}

func unregister(hosted []*Partition, wake chan struct{}) {
	for _, p := range hosted {
		p.removeWaiter(wake)
	}
}

// whileOpen runs fn unless closing has begun, and holds closing off until fn
// returns; it reports whether fn ran.
func (h *hostedTopics) whileOpen(fn func()) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return false
	}
	fn()
	return true
}

// isClosed reports whether closing has begun.
func (h *hostedTopics) isClosed() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.closed
}

// markClosed makes every later lookup ErrBrokerClosed and every later change
// refused. It reports false if closing had already begun.
func (h *hostedTopics) markClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.closed = true
	return true
}

// closeAll closes every hosted log (writing indexes and syncing). It runs
// after markClosed and after any change in progress (an admin call's) has
// finished: that change saw closed=false and may have opened logs that must
// be closed here too.
func (h *hostedTopics) closeAll() error {
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	h.mu.Lock()
	topics := h.topics
	h.topics = map[string]*topic{}
	h.byID = map[string]string{}
	h.mu.Unlock()
	var parts []*Partition
	for _, t := range topics {
		for _, p := range t.partitions {
			if p != nil {
				parts = append(parts, p)
			}
		}
	}
	// As many at once as open at once, with their fsyncs shared in three
	// steps, each durable before the next is written: the data (segments,
	// indexes, leader epochs, producer snapshots), then the recovery points
	// that vouch for it, then the clean shutdown markers.
	batch := partlog.NewSyncBatch()
	closing := make([]*partlog.Closing, len(parts))
	errs := make([]error, len(parts))
	h.forEach(len(parts), func(i int) {
		closing[i], errs[i] = h.closePartition(parts[i], batch)
	})
	for _, step := range []func(*partlog.Closing) error{(*partlog.Closing).Checkpoint, (*partlog.Closing).MarkClean} {
		if err := batch.Sync(); err != nil {
			// Unmarked, every log is recovered at the next start.
			return errors.Join(append(errs, fmt.Errorf("close: %w", err))...)
		}
		h.forEach(len(parts), func(i int) {
			if closing[i] == nil || errs[i] != nil {
				return
			}
			if err := step(closing[i]); err != nil {
				errs[i] = fmt.Errorf("close %s-%d: %w", parts[i].Topic, parts[i].Index, err)
			}
		})
	}
	if err := batch.Sync(); err != nil {
		errs = append(errs, fmt.Errorf("close: %w", err))
	}
	return errors.Join(errs...)
}

// closePartition writes p's producer snapshot and closes its log, the
// fsyncs left to batch; it returns what is left of closing it
// (partlog.Log.CloseBatched).
func (h *hostedTopics) closePartition(p *Partition, batch *partlog.SyncBatch) (*partlog.Closing, error) {
	defer p.wake()
	// A log taken offline refuses the snapshot; its next open rebuilds the
	// state from the log instead.
	if err := p.snapshotProducersTo(batch); err != nil && !errors.Is(err, partlog.ErrLogFailed) {
		h.logger.Warn("cannot write producer snapshot at close", "topic", p.Topic, "partition", p.Index, "err", err)
	}
	mark, err := p.log.CloseBatched(batch)
	if err != nil {
		return nil, fmt.Errorf("close %s-%d: %w", p.Topic, p.Index, err)
	}
	return mark, nil
}
