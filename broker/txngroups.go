package broker

import (
	"context"

	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/broker/txn"
)

// TxnGroupMarkerWriter is the broker's txn.GroupMarkerWriter: the consumer
// groups' side of a transaction's markers. The transaction coordinator
// calls it after the partitions' markers, on whichever broker coordinates
// the transactional id, which is usually not the groups' coordinator.
//
// It completes the groups' pending offsets in the metastore directly
// instead of asking each group's coordinator: one etcd transaction per
// group (per 60 offsets), no inter-broker call, nothing to retry when a
// group's coordinator moves or is down, and completing twice does nothing
// the second time. The groups' coordinators stay honest without being
// told: a coordinator forgets what it knew of a partition's stored offset
// when a transactional offset is committed for it, and a plain commit
// written after that offset wins over it (Kafka's order), so nothing it
// learns later can be undone by the completion.
func (b *Broker) TxnGroupMarkerWriter() txn.GroupMarkerWriter {
	return txnGroupMarkers{b.groups}
}

type txnGroupMarkers struct{ groups *group.Coordinator }

// WriteGroupMarkers implements txn.GroupMarkerWriter. The producer epoch is
// not compared: the pending offsets of the producer id can only have been
// written in the transaction being completed (TxnOffsetCommit is fenced by
// the transaction's stored state), and a coordinator's fencing abort, which
// carries a bumped epoch, must still drop them.
func (w txnGroupMarkers) WriteGroupMarkers(ctx context.Context, groups []string, producerID int64, _ int16, commit bool) error {
	return w.groups.CompleteTxnOffsets(ctx, groups, producerID, commit)
}
