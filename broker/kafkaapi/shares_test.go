package kafkaapi

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/sharepartition"
	"github.com/strata-broker/strata/metastore"
)

// movedShares answers every partition as led elsewhere, as a broker that
// lost the leadership does.
type movedShares struct{}

func (movedShares) TopicName(id string) (string, bool) { return "t", true }
func (movedShares) LockDuration(context.Context, string) time.Duration {
	return time.Second
}
func (movedShares) Fetch(_ context.Context, req sharepartition.FetchRequest) ([]sharepartition.PartitionResult, error) {
	var out []sharepartition.PartitionResult
	for _, tp := range req.Partitions {
		out = append(out, sharepartition.PartitionResult{TopicPartition: tp, Err: fmt.Errorf("t-0: %w", broker.ErrNotLeader)})
	}
	return out, nil
}
func (movedShares) Acknowledge(_ context.Context, _, _ string, _ int32, acks map[metastore.TopicPartition][]sharepartition.AckBatch) (map[metastore.TopicPartition]error, error) {
	out := map[metastore.TopicPartition]error{}
	for tp := range acks {
		out[tp] = broker.ErrNotLeader
	}
	return out, nil
}
func (movedShares) DescribeOffsets(context.Context, string, []metastore.TopicPartition) ([]sharepartition.Offset, error) {
	return nil, nil
}
func (movedShares) AlterOffsets(context.Context, string, map[metastore.TopicPartition]int64) (map[metastore.TopicPartition]error, error) {
	return nil, nil
}
func (movedShares) DeleteOffsets(context.Context, string, []string) (map[string]error, error) {
	return nil, nil
}
func (movedShares) DeleteGroup(context.Context, string) error { return nil }
func (movedShares) ConnectionClosed(context.Context, uint64)  {}

// A partition led elsewhere is answered with its current leader and that
// leader's address, so that the client moves without a metadata round.
func TestShareRequestsNameTheCurrentLeader(t *testing.T) {
	s := New(nullCore{}, Config{NodeID: 2, Shares: movedShares{}})
	g, m := "g", "m"
	fetch := kmsg.NewPtrShareFetchRequest()
	fetch.GroupID, fetch.MemberID = &g, &m
	fetch.Topics = []kmsg.ShareFetchRequestTopic{{TopicID: [16]byte{1}, Partitions: []kmsg.ShareFetchRequestTopicPartition{{Partition: 0}}}}
	fr := ask(t, s, fetch, 2).(*kmsg.ShareFetchResponse)
	rp := fr.Topics[0].Partitions[0]
	if rp.ErrorCode != kerr.NotLeaderForPartition.Code || rp.CurrentLeader.LeaderID != 1 || rp.CurrentLeader.LeaderEpoch != 0 {
		t.Fatalf("share fetch partition: %+v", rp)
	}
	if len(fr.NodeEndpoints) != 1 || fr.NodeEndpoints[0].NodeID != 1 || fr.NodeEndpoints[0].Host != "127.0.0.1" || fr.NodeEndpoints[0].Port != 9092 {
		t.Fatalf("share fetch endpoints: %+v", fr.NodeEndpoints)
	}

	ack := kmsg.NewPtrShareAcknowledgeRequest()
	ack.GroupID, ack.MemberID, ack.ShareSessionEpoch = &g, &m, 1
	ack.Topics = []kmsg.ShareAcknowledgeRequestTopic{{TopicID: [16]byte{1}, Partitions: []kmsg.ShareAcknowledgeRequestTopicPartition{{Partition: 0,
		AcknowledgementBatches: []kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch{{FirstOffset: 0, LastOffset: 0, AcknowledgeTypes: []int8{1}}}}}}}
	ar := ask(t, s, ack, 2).(*kmsg.ShareAcknowledgeResponse)
	ap := ar.Topics[0].Partitions[0]
	if ap.ErrorCode != kerr.NotLeaderForPartition.Code || ap.CurrentLeader.LeaderID != 1 || len(ar.NodeEndpoints) != 1 {
		t.Fatalf("share acknowledge: %+v, endpoints %+v", ap, ar.NodeEndpoints)
	}

	// Renewals only in a request that says so.
	ack.ShareSessionEpoch = 2
	ack.Topics[0].Partitions[0].AcknowledgementBatches[0].AcknowledgeTypes = []int8{4}
	if ar := ask(t, s, ack, 2).(*kmsg.ShareAcknowledgeResponse); ar.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("renew without IsRenewAck: %s", kerr.ErrorForCode(ar.ErrorCode))
	}
}
