package kafkaapi

import (
	"context"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker"
)

// movedCore answers every fetched partition as led elsewhere: by broker 1,
// in leader epoch 7.
type movedCore struct{ nullCore }

func (movedCore) Fetch(_ context.Context, parts []broker.FetchPartition, _ broker.FetchOptions) ([]broker.FetchResult, error) {
	out := make([]broker.FetchResult, len(parts))
	for i, p := range parts {
		out[i] = broker.FetchResult{Topic: p.Topic, Partition: p.Partition, Err: fmt.Errorf("%s-%d: %w", p.Topic, p.Partition, broker.ErrNotLeader)}
	}
	return out, nil
}

func (c movedCore) Metadata(ctx context.Context, topics []string) (broker.Metadata, error) {
	md, err := c.nullCore.Metadata(ctx, topics)
	for i := range md.Topics {
		for j := range md.Topics[i].Partitions {
			md.Topics[i].Partitions[j].LeaderEpoch = 7
		}
	}
	return md, err
}

// A v16 fetch of a partition led elsewhere names the current leader with
// its leader epoch, as Metadata gives it: a client keeps a leader hint
// only with an epoch newer than it knows.
func TestFetchNamesTheCurrentLeaderWithItsEpoch(t *testing.T) {
	s := New(movedCore{}, Config{NodeID: 2})
	req := kmsg.NewPtrFetchRequest()
	rt := kmsg.NewFetchRequestTopic()
	rt.TopicID = [16]byte{15: 1}
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := ask(t, s, req, 16).(*kmsg.FetchResponse)
	got := resp.Topics[0].Partitions[0]
	if got.ErrorCode != kerr.NotLeaderForPartition.Code || got.CurrentLeader.LeaderID != 1 || got.CurrentLeader.LeaderEpoch != 7 {
		t.Fatalf("moved partition: error %d, current leader %+v; want NOT_LEADER_OR_FOLLOWER, leader 1 in epoch 7", got.ErrorCode, got.CurrentLeader)
	}
}
