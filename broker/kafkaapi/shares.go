package kafkaapi

import (
	"context"
	"encoding/hex"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/broker/sharepartition"
	"github.com/strata-broker/strata/metastore"
)

// Shares is what the share-group data APIs (ShareFetch, ShareAcknowledge,
// the share-group offsets APIs) need: the share partitions this broker
// leads and their persisted state (*sharepartition.Manager).
type Shares interface {
	TopicName(id string) (string, bool)
	LockDuration(ctx context.Context, group string) time.Duration
	Fetch(ctx context.Context, req sharepartition.FetchRequest) ([]sharepartition.PartitionResult, error)
	Acknowledge(ctx context.Context, group, member string, epoch int32, acks map[metastore.TopicPartition][]sharepartition.AckBatch) (map[metastore.TopicPartition]error, error)
	DescribeOffsets(ctx context.Context, group string, parts []metastore.TopicPartition) ([]sharepartition.Offset, error)
	AlterOffsets(ctx context.Context, group string, offsets map[metastore.TopicPartition]int64) (map[metastore.TopicPartition]error, error)
	DeleteOffsets(ctx context.Context, group string, topics []string) (map[string]error, error)
}

var _ Shares = (*sharepartition.Manager)(nil)

// errSharesUnavailable answers share-group requests on a server built
// without share partitions (tests of other APIs).
var errSharesUnavailable = errors.New("share groups are not served here")

// shareCode maps the share partitions' errors to Kafka's codes; the
// core's errors map as everywhere else.
func shareCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, sharepartition.ErrInvalidRecordState):
		return kerr.InvalidRecordState.Code
	case errors.Is(err, sharepartition.ErrInvalidAcknowledgement):
		return kerr.InvalidRequest.Code
	case errors.Is(err, sharepartition.ErrShareSessionNotFound):
		return kerr.ShareSessionNotFound.Code
	case errors.Is(err, sharepartition.ErrInvalidShareSessionEpoch):
		return kerr.InvalidShareSessionEpoch.Code
	case errors.Is(err, sharepartition.ErrShareSessionLimitReached):
		return kerr.ShareSessionLimitReached.Code
	case errors.Is(err, sharepartition.ErrGroupNotEmpty):
		return kerr.NonEmptyGroup.Code
	case errors.Is(err, errSharesUnavailable):
		return kerr.CoordinatorNotAvailable.Code
	}
	return errorCode(err)
}

// uuidString is a topic id's canonical form, as the metastore holds it.
func uuidString(id [16]byte) string {
	h := hex.EncodeToString(id[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// maxShareAckBatches bounds the acknowledgement batches of one request:
// each is applied record by record, and a record can be acknowledged once.
const maxShareAckBatches = 10000

// shareAcks converts a partition's acknowledgement batches; false if the
// request carries more than maxShareAckBatches in all (*budget counts
// them down).
func shareAcks[B any](batches []B, get func(B) (int64, int64, []int8), budget *int) ([]sharepartition.AckBatch, bool) {
	if len(batches) > *budget {
		return nil, false
	}
	*budget -= len(batches)
	out := make([]sharepartition.AckBatch, len(batches))
	for i, b := range batches {
		first, last, types := get(b)
		out[i] = sharepartition.AckBatch{FirstOffset: first, LastOffset: last, Types: types}
	}
	return out, true
}
