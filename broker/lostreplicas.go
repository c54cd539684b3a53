package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/strata-broker/strata/metastore"
)

// LostReplicaStore is what ReleaseLostReplicas reads and changes.
type LostReplicaStore interface {
	ListTopics(ctx context.Context) ([]metastore.Topic, int64, error)
	PartitionStates(ctx context.Context, topic string) ([]metastore.PartitionState, error)
	CompareAndSwapPartitionState(ctx context.Context, old, next metastore.PartitionState) (metastore.PartitionState, error)
}

// releaseTries bounds the compare-and-swaps tried on one partition whose
// state keeps changing under the broker (the controller, a leader's ISR
// keeper): each conflict hands back the state to decide on again.
const releaseTries = 10

// ReleaseLostReplicas gives up, in the metastore, what nodeID's states credit
// it with but its data directory no longer holds: a partition whose
// directory is missing (a lost or replaced disk, a directory removed by
// hand) or belongs to an older topic of the same name. For each such
// partition the broker leaves the ISR, gives up the leadership (leader -1 in
// a new leader epoch) if the state still names it leader, and is recorded in
// the state's Lost replicas. It then rejoins like any follower: it catches
// up from the leader, which adds it back to the ISR.
//
// It must run before the broker registers: the controller counts a
// leaderless partition's last ISR member as soon as it is back (nobody else
// is known to hold everything), and would elect it, with an empty log, from
// which its followers would then truncate every acknowledged record. Once it
// has left, such a partition has an empty ISR and stays leaderless until an
// unclean election, which takes a replica that kept its log when one is
// live.
//
// A partition with a single replica is left as it is (nobody else can hold
// its records; it starts empty, as in Kafka). A directory that exists is
// trusted, whatever it holds: its partition.metadata decides whether it is
// this topic's, and an unreadable one is refused when the log is opened.
func ReleaseLostReplicas(ctx context.Context, store LostReplicaStore, nodeID int32, dataDir string, logger *slog.Logger) error {
	topics, _, err := store.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("broker: read topics to check for lost logs: %w", err)
	}
	for _, t := range topics {
		states, err := store.PartitionStates(ctx, t.Name)
		if errors.Is(err, metastore.ErrTopicNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("broker: check for lost logs: %w", err)
		}
		for _, st := range states {
			if !slices.Contains(st.Replicas, nodeID) || (st.TopicID != "" && t.ID != "" && st.TopicID != t.ID) {
				continue
			}
			if !logLost(dataDir, t, st.Partition) {
				continue
			}
			if len(st.Replicas) == 1 {
				logger.Warn("partition directory is missing and this broker is the partition's only replica: it starts empty",
					"topic", t.Name, "partition", st.Partition, "dir", partitionDirIn(dataDir, t.Name, st.Partition))
				continue
			}
			if err := releaseLost(ctx, store, nodeID, st, logger); err != nil {
				return err
			}
		}
	}
	return nil
}

// releaseLost takes nodeID out of the ISR and leadership of st's partition
// and records it as lost, retrying on conflicts.
func releaseLost(ctx context.Context, store LostReplicaStore, nodeID int32, st metastore.PartitionState, logger *slog.Logger) error {
	for range releaseTries {
		inISR, leads := slices.Contains(st.ISR, nodeID), st.Leader == nodeID
		if !inISR && !leads && slices.Contains(st.Lost, nodeID) {
			return nil
		}
		next := st
		next.ISR = slices.DeleteFunc(slices.Clone(st.ISR), func(id int32) bool { return id == nodeID })
		if leads {
			next.Leader = -1
			next.LeaderEpoch++
		}
		if !slices.Contains(st.Lost, nodeID) {
			next.Lost = append(slices.Clone(st.Lost), nodeID)
		}
		got, err := store.CompareAndSwapPartitionState(ctx, st, next)
		switch {
		case err == nil:
			attrs := []any{"topic", st.Topic, "partition", st.Partition, "previous_leader", st.Leader,
				"previous_isr", st.ISR, "leader", got.Leader, "leader_epoch", got.LeaderEpoch, "isr", got.ISR}
			switch {
			case inISR && len(got.ISR) == 0:
				logger.Warn("partition directory is missing: left the ISR, of which this broker was the last member; "+
					"the partition stays offline until a replica is elected uncleanly (unclean.leader.election.enable)", attrs...)
			case inISR || leads:
				logger.Warn("partition directory is missing: left the ISR; it rejoins as a follower that catches up", attrs...)
			default:
				logger.Warn("partition directory is missing: recorded as lost; it catches up as a follower", attrs...)
			}
			return nil
		case errors.Is(err, metastore.ErrConflict):
			st = got
		case errors.Is(err, metastore.ErrTopicNotFound):
			return nil
		default:
			return fmt.Errorf("broker: leave the ISR of %s-%d, whose log is lost: %w", st.Topic, st.Partition, err)
		}
	}
	return fmt.Errorf("broker: leave the ISR of %s-%d, whose log is lost: its state changed %d times meanwhile: %w",
		st.Topic, st.Partition, releaseTries, metastore.ErrConflict)
}

// logLost reports whether partition p of t has no directory of its own in
// dataDir: none at all, or one whose partition.metadata names another
// incarnation of the topic (it is removed when the log is opened). Any doubt
// (an unreadable directory or metadata file) counts as not lost: the log
// opening reports it.
func logLost(dataDir string, t metastore.Topic, p int32) bool {
	dir := partitionDirIn(dataDir, t.Name, p)
	raw, err := os.ReadFile(filepath.Join(dir, partitionMetaFile))
	if err == nil {
		var m partitionMeta
		if json.Unmarshal(raw, &m) != nil || m.TopicID == "" || t.ID == "" {
			return false
		}
		return m.TopicID != t.ID
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	_, err = os.Stat(dir)
	return errors.Is(err, fs.ErrNotExist)
}
