package broker

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
)

// coreCluster runs broker cores in this process against one in-memory
// metastore; followers fetch from leaders by calling their ReplicaFetch directly, so
// the cores' replication runs without a network.
type coreCluster struct {
	t        *testing.T
	store    *metastoretest.Store
	dir      string
	settings map[string]string
	now      func() time.Time // every core's clock; nil is the real one

	mu    sync.Mutex
	cores map[int32]*Broker
	regs  map[int32]*metastoretest.Registration // each core's, whose secret it fetches with

	markersLost atomic.Int64 // WriteTxnMarkers calls sent to a core that is down
}

func startCoreCluster(t *testing.T, n int, settings map[string]string) *coreCluster {
	t.Helper()
	return startCoreClusterOn(t, n, settings, nil)
}

// startCoreClusterOn is startCoreCluster with every core on the clock now.
func startCoreClusterOn(t *testing.T, n int, settings map[string]string, now func() time.Time) *coreCluster {
	t.Helper()
	return startCoreClusterIn(t, make([]string, n), settings, now)
}

// startCoreClusterIn starts a core per rack given (brokers 1, 2, ...),
// registered in that rack ("" for none).
func startCoreClusterIn(t *testing.T, racks []string, settings map[string]string, now func() time.Time) *coreCluster {
	t.Helper()
	ctx := context.Background()
	n := len(racks)
	dir := t.TempDir()
	store := metastoretest.New()
	c := &coreCluster{t: t, store: store, dir: dir, settings: settings, now: now, cores: map[int32]*Broker{},
		regs: map[int32]*metastoretest.Registration{}}
	for id := int32(1); id <= int32(n); id++ {
		reg, err := store.RegisterBroker(ctx, metastore.BrokerInfo{NodeID: id, GRPCAddr: coreAddr(id), Rack: racks[id-1], StartedAt: time.Now()}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
		c.regs[id] = reg
	}
	for id := int32(1); id <= int32(n); id++ {
		c.start(id)
	}
	return c
}

func coreAddr(id int32) string { return fmt.Sprint("core-", id) }

// start runs broker id on its data directory (again, after stop).
func (c *coreCluster) start(id int32) *Broker {
	c.t.Helper()
	c.mu.Lock()
	reg := c.regs[id]
	c.mu.Unlock()
	b, err := New(Config{NodeID: id, DataDir: filepath.Join(c.dir, coreAddr(id)), Settings: c.settings, Replicas: c, Now: c.now,
		ReplicaSecret: reg.ReplicaSecret}, c.store)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { b.Close() })
	c.mu.Lock()
	c.cores[id] = b
	c.mu.Unlock()
	return b
}

// stop closes broker id; its registration stays, as for a broker that is
// slow rather than gone.
func (c *coreCluster) stop(id int32) {
	c.t.Helper()
	c.mu.Lock()
	b := c.cores[id]
	delete(c.cores, id)
	c.mu.Unlock()
	if err := b.Close(); err != nil {
		c.t.Fatal(err)
	}
}

func (c *coreCluster) core(id int32) *Broker {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cores[id]
}

// ReplicaFetch implements ReplicaClient.
func (c *coreCluster) ReplicaFetch(ctx context.Context, addr string, req ReplicaFetchRequest) ([]ReplicaFetchResult, error) {
	leader, err := c.at(addr)
	if err != nil {
		return nil, err
	}
	return leader.ReplicaFetch(ctx, req)
}

// WriteTxnMarkers implements ReplicaClient.
func (c *coreCluster) WriteTxnMarkers(ctx context.Context, addr string, req WriteTxnMarkersRequest) ([]TxnMarkerResult, error) {
	leader, err := c.at(addr)
	if err != nil {
		c.markersLost.Add(1)
		return nil, err
	}
	return leader.WriteTxnMarkers(ctx, req)
}

// at returns the running core whose address is addr.
func (c *coreCluster) at(addr string) (*Broker, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, b := range c.cores {
		if coreAddr(id) == addr {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%s is down", addr)
}

// hosted returns broker id's replica of a partition, or nil.
func (c *coreCluster) hosted(id int32, topic string, partition int32) *Partition {
	b := c.core(id)
	if b == nil {
		return nil
	}
	p, err := b.hosted.partition(topic, partition)
	if err != nil {
		return nil
	}
	return p
}

// Grow a replicated topic from 1 to 3 partitions: every broker opens its
// replicas of the new partitions, their leaders take produce and serve
// fetches, and the followers replicate them.
func TestCreatePartitionsReplicated(t *testing.T) {
	c := startCoreCluster(t, 3, nil)
	ctx := context.Background()
	admin := c.core(1)
	if _, err := admin.CreateTopic(ctx, TopicSpec{Name: "g", Partitions: 1, ReplicationFactor: 3,
		Configs: map[string]string{"min.insync.replicas": "3"}}); err != nil {
		t.Fatal(err)
	}
	appendRecords(t, admin, "g", 0, 5)
	if err := admin.CreatePartitions(ctx, "g", 3, nil, false); err != nil {
		t.Fatal(err)
	}
	d, err := admin.DescribeTopic(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	// Round-robin continued from the existing partition: leaders 2 and 3.
	for p, leader := range map[int32]int32{0: 1, 1: 2, 2: 3} {
		if st := d.Partitions[p]; st.Leader != leader || len(st.Replicas) != 3 || len(st.ISR) != 3 {
			t.Fatalf("partition %d: %+v", p, st)
		}
	}
	for _, id := range []int32{1, 2, 3} {
		await.True(t, 30*time.Second, fmt.Sprint("broker ", id, " hosting the new partitions"), func() bool {
			return c.hosted(id, "g", 1) != nil && c.hosted(id, "g", 2) != nil
		})
	}
	for p, leader := range map[int32]int32{1: 2, 2: 3} {
		b := c.core(leader)
		await.True(t, 30*time.Second, fmt.Sprint("broker ", leader, " leading partition ", p), func() bool {
			_, err := b.hosted.leaderPartition("g", p)
			return err == nil
		})
		// acks=all with min.insync.replicas=3: every follower replicates.
		if off := appendRecords(t, b, "g", p, 4); off != 0 {
			t.Fatalf("partition %d: first offset %d", p, off)
		}
		if n, err := countRecords(t, b, "g", p, 0); err != nil || n != 4 {
			t.Fatalf("partition %d on its leader: %d records, %v", p, n, err)
		}
		// Elsewhere it is not led.
		if _, err := countRecords(t, admin, "g", p, 0); p != 0 && Classify(err) != KindNotLeader {
			t.Fatalf("partition %d fetched from broker 1: %v", p, err)
		}
		for _, id := range []int32{1, 2, 3} {
			await.True(t, 30*time.Second, fmt.Sprint("broker ", id, " replicating partition ", p), func() bool {
				return c.hosted(id, "g", p).LogEndOffset() == 4
			})
		}
	}
	// The first partition went on undisturbed.
	if off := appendRecords(t, admin, "g", 0, 1); off != 5 {
		t.Fatalf("partition 0 continues at %d, want 5", off)
	}
}

// Records deleted on the leader are deleted on its followers, up to what
// they have; a follower whose log ends before the leader's new log start
// starts over there.
func TestDeleteRecordsReplicated(t *testing.T) {
	// Short enough for a stopped follower to leave the ISR within the test.
	c := startCoreCluster(t, 3, smallSegments(map[string]string{"replica.lag.time.max.ms": "2000"}))
	ctx := context.Background()
	leader := c.core(1)
	if _, err := leader.CreateTopic(ctx, TopicSpec{Name: "d", Partitions: 1, ReplicationFactor: 3,
		Configs: map[string]string{"segment.bytes": "1024"}}); err != nil {
		t.Fatal(err)
	}
	appendRecords(t, leader, "d", 0, 40)
	for _, id := range []int32{2, 3} {
		await.True(t, 30*time.Second, fmt.Sprint("broker ", id, " knowing everything is committed"), func() bool {
			return c.hosted(id, "d", 0).HighWatermark() == 40
		})
	}
	if _, err := c.core(2).DeleteRecords(ctx, "d", 0, 10); Classify(err) != KindNotLeader {
		t.Fatalf("DeleteRecords on a follower: %v", err)
	}
	low, err := leader.DeleteRecords(ctx, "d", 0, 25)
	if err != nil || low != 25 {
		t.Fatalf("DeleteRecords(25) = %d, %v", low, err)
	}
	for _, id := range []int32{2, 3} {
		p := c.hosted(id, "d", 0)
		await.True(t, 30*time.Second, fmt.Sprint("broker ", id, " following the log start"), func() bool {
			return p.LogStartOffset() == 25
		})
		if segs := p.log.Segments(); segs[0].BaseOffset > 25 || segs[0].NextOffset <= 25 {
			t.Fatalf("broker %d: first segment [%d, %d) does not hold the log start", id, segs[0].BaseOffset, segs[0].NextOffset)
		}
		if _, err := p.log.Read(24, 1<<20, p.LogEndOffset()); err == nil {
			t.Fatalf("broker %d still serves offset 24", id)
		}
	}

	// Broker 3 stops, leaves the ISR; the leader goes on and deletes past
	// broker 3's log end.
	c.stop(3)
	await.True(t, 30*time.Second, "broker 3 out of the ISR", func() bool {
		st, _ := c.hosted(1, "d", 0).State()
		return len(st.ISR) == 2
	})
	appendRecords(t, leader, "d", 0, 30)
	if low, err := leader.DeleteRecords(ctx, "d", 0, -1); err != nil || low != 70 {
		t.Fatalf("DeleteRecords(-1) = %d, %v", low, err)
	}
	await.True(t, 30*time.Second, "broker 2 following the log start to the end", func() bool {
		return c.hosted(2, "d", 0).LogStartOffset() == 70
	})
	// Into the middle of a batch [70, 75).
	appendBatch(t, leader, "d", 0, 5)
	if low, err := leader.DeleteRecords(ctx, "d", 0, 72); err != nil || low != 72 {
		t.Fatalf("DeleteRecords(72) = %d, %v", low, err)
	}
	await.True(t, 30*time.Second, "broker 2 following the log start into the batch", func() bool {
		return c.hosted(2, "d", 0).LogStartOffset() == 72
	})
	appendRecords(t, leader, "d", 0, 3)

	// Back, broker 3 finds its log ends before the leader's log start: it
	// starts over at the leader's log start (at the batch holding it) and
	// catches up.
	c.start(3)
	await.True(t, 30*time.Second, "broker 3 caught up from the leader's log start", func() bool {
		p := c.hosted(3, "d", 0)
		return p != nil && p.LogStartOffset() == 72 && p.LogEndOffset() == 78
	})
	await.True(t, 30*time.Second, "broker 3 back in the ISR", func() bool {
		st, _ := c.hosted(1, "d", 0).State()
		return len(st.ISR) == 3
	})
	p3 := c.hosted(3, "d", 0)
	if segs := p3.log.Segments(); segs[0].BaseOffset != 70 {
		t.Fatalf("broker 3 kept segments below the log start: %+v", segs)
	}
	if res, err := p3.log.Read(72, 1<<20, p3.LogEndOffset()); err != nil || res.FirstOffset != 70 || res.NextOffset != 78 {
		t.Fatalf("broker 3 reads [%d, %d) at 72: %v", res.FirstOffset, res.NextOffset, err)
	}
	if _, err := p3.log.Read(71, 1<<20, p3.LogEndOffset()); err == nil {
		t.Fatal("broker 3 serves offset 71, below the log start")
	}
}
