package kafkaapi

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/txn"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/topicconfig"
)

// nullCore answers every call at once: the fuzz target exercises decoding
// and dispatch, not the broker core.
type nullCore struct{}

var errNull = errors.New("null core")

func (nullCore) ClusterID(context.Context) (string, error) { return "AAAAAAAAAAAAAAAAAAAAAA", nil }
func (nullCore) BrokerSettings() map[string]string         { return map[string]string{"a": "b"} }
func (nullCore) Metadata(_ context.Context, topics []string) (broker.Metadata, error) {
	md := broker.Metadata{Brokers: []metastore.BrokerInfo{{NodeID: 1, KafkaAddr: "127.0.0.1:9092"}}, ControllerID: 1}
	for _, name := range topics {
		md.Topics = append(md.Topics, broker.TopicMetadata{Name: name, Partitions: []metastore.PartitionState{{Topic: name, Leader: 1, Replicas: []int32{1}, ISR: []int32{1}}}})
	}
	return md, nil
}
func (nullCore) ProduceWithTimeout(_ context.Context, _ string, _ broker.Acks, _ time.Duration, parts []broker.PartitionBatches) ([]broker.ProduceResult, error) {
	out := make([]broker.ProduceResult, len(parts))
	for i, p := range parts {
		out[i] = broker.ProduceResult{Partition: p.Partition, Err: errNull}
	}
	return out, nil
}
func (c nullCore) ProduceTransactional(ctx context.Context, _, topic string, acks broker.Acks, timeout time.Duration, parts []broker.PartitionBatches) ([]broker.ProduceResult, error) {
	return c.ProduceWithTimeout(ctx, topic, acks, timeout, parts)
}
func (nullCore) InitProducerID(context.Context, string) (int64, int16, error) { return 1, 0, nil }
func (nullCore) InitTransactionalProducerID(context.Context, string, int32, int64, int16) (int64, int16, error) {
	return 1, 0, nil
}
func (nullCore) AddPartitionsToTxn(context.Context, string, int64, int16, []metastore.TopicPartition) (map[metastore.TopicPartition]error, error) {
	return nil, errNull
}
func (nullCore) AddOffsetsToTxn(context.Context, string, int64, int16, string) error { return errNull }
func (nullCore) EndTxn(context.Context, string, int64, int16, bool) error            { return errNull }
func (nullCore) DescribeTransaction(_ context.Context, id string) (metastore.TransactionMeta, error) {
	return metastore.TransactionMeta{TransactionalID: id, State: "Ongoing", Partitions: []metastore.TopicPartition{{Topic: "t"}}}, nil
}
func (nullCore) ListTransactions(context.Context, txn.ListFilter) ([]metastore.TransactionMeta, error) {
	return []metastore.TransactionMeta{{TransactionalID: "x", State: "Ongoing"}}, nil
}

// EachTopicID knows one topic, so that fetches by id reach Fetch.
func (nullCore) EachTopicID(f func(name, id string)) {
	f("t", "00000000-0000-0000-0000-000000000001")
}

func (nullCore) TopicByID(id string) (string, bool) {
	return "t", id == "00000000-0000-0000-0000-000000000001"
}

func (nullCore) Fetch(_ context.Context, parts []broker.FetchPartition, _ broker.FetchOptions) ([]broker.FetchResult, error) {
	out := make([]broker.FetchResult, len(parts))
	for i, p := range parts {
		out[i] = broker.FetchResult{Topic: p.Topic, Partition: p.Partition, Data: []byte{1, 2, 3}}
	}
	return out, nil
}
func (nullCore) ListOffsetsAt(context.Context, string, int32, int32, int64, broker.IsolationLevel) (broker.ListedOffset, error) {
	return broker.ListedOffset{Offset: 0, Timestamp: -1, LeaderEpoch: -1, Found: true}, nil
}
func (nullCore) OffsetForLeaderEpoch(string, int32, int32, int32) (broker.EpochEndOffset, error) {
	return broker.EpochEndOffset{Epoch: -1, EndOffset: -1}, nil
}
func (nullCore) DescribeProducers(string, int32) ([]broker.ActiveProducer, error) {
	return nil, nil
}
func (nullCore) DeleteRecords(context.Context, string, int32, int64) (int64, error) {
	return 0, errNull
}
func (nullCore) CreateTopic(context.Context, broker.TopicSpec) (broker.TopicDescription, error) {
	return broker.TopicDescription{}, broker.ErrTopicExists
}
func (nullCore) DeleteTopic(context.Context, string) error { return broker.ErrUnknownTopicOrPartition }
func (nullCore) ListTopics(context.Context) ([]metastore.Topic, error) {
	return []metastore.Topic{{Name: "t", ID: "00000000-0000-4000-8000-000000000000"}}, nil
}
func (nullCore) DescribeTopic(context.Context, string) (broker.TopicDescription, error) {
	return broker.TopicDescription{Configs: []topicconfig.Entry{{Name: "cleanup.policy", Value: "delete", Type: topicconfig.TypeList, Source: topicconfig.SourceDefault}}}, nil
}
func (nullCore) AlterTopicConfigs(context.Context, string, map[string]string, []string, bool) ([]topicconfig.Entry, error) {
	return nil, nil
}
func (nullCore) CreatePartitions(context.Context, string, int32, [][]int32, bool) error { return nil }
func (nullCore) AlterPartitionReassignments(_ context.Context, moves []broker.Reassignment) []error {
	return make([]error, len(moves))
}
func (nullCore) DescribeLogDirs([]metastore.TopicPartition) broker.LogDirs {
	return broker.LogDirs{Dir: "/data"}
}
func (nullCore) ListPartitionReassignments(context.Context, []metastore.TopicPartition) ([]metastore.PartitionState, error) {
	return nil, nil
}
func (nullCore) ElectLeaders(_ context.Context, _ bool, parts []metastore.TopicPartition) ([]broker.ElectionResult, error) {
	out := make([]broker.ElectionResult, len(parts))
	for i, p := range parts {
		out[i] = broker.ElectionResult{Topic: p.Topic, Partition: p.Partition, Leader: 1}
	}
	return out, nil
}
func (nullCore) GroupCoordinator(string) metastore.BrokerInfo {
	return metastore.BrokerInfo{NodeID: 1, KafkaAddr: "127.0.0.1:9092"}
}
func (nullCore) ACLsEnabled() bool                               { return true }
func (nullCore) CreateACLs(context.Context, []acl.Binding) error { return nil }
func (nullCore) DescribeACLs(context.Context, acl.Filter) ([]acl.Binding, error) {
	return []acl.Binding{{ResourceType: acl.ResourceTopic, ResourceName: "t", PatternType: acl.PatternLiteral, Principal: "User:a", Host: "*", Operation: acl.OpRead, Permission: acl.PermissionAllow}}, nil
}
func (nullCore) AlterUserScramCredentials(_ context.Context, dels []broker.ScramDeletion, ups []broker.ScramUpsertion) []broker.UserScramResult {
	var out []broker.UserScramResult
	for _, d := range dels {
		out = append(out, broker.UserScramResult{User: d.User, Err: broker.ErrResourceNotFound})
	}
	for _, u := range ups {
		out = append(out, broker.UserScramResult{User: u.User})
	}
	return out
}
func (nullCore) DescribeUserScramCredentials(_ context.Context, users []string) ([]broker.UserScramCredentials, error) {
	out := make([]broker.UserScramCredentials, len(users))
	for i, u := range users {
		out[i] = broker.UserScramCredentials{User: u, Credentials: []broker.ScramCredentialInfo{{Mechanism: "SCRAM-SHA-512", Iterations: 4096}}}
	}
	return out, nil
}
func (nullCore) DeleteACLs(_ context.Context, filters []acl.Filter) ([][]acl.Binding, error) {
	out := make([][]acl.Binding, len(filters))
	for i := range out {
		out[i] = []acl.Binding{{ResourceType: acl.ResourceTopic, ResourceName: "t", PatternType: acl.PatternLiteral, Principal: "User:a", Host: "*", Operation: acl.OpRead, Permission: acl.PermissionAllow}}
	}
	return out, nil
}

// FuzzRequestFrames feeds arbitrary request frames (after the length
// prefix) to the header parser, Produce's body walk, the request decoder
// and the dispatcher, and encodes whatever response comes back: none of it
// may panic.
func FuzzRequestFrames(f *testing.F) {
	s := New(nullCore{}, Config{NodeID: 1, AutoCreateTopics: true})
	for _, r := range s.apis {
		for _, v := range []int16{r.min, r.max} {
			req := kmsg.RequestForKey(r.key)
			req.SetVersion(v)
			if mr, ok := req.(*kmsg.MetadataRequest); ok {
				t := kmsg.NewMetadataRequestTopic()
				t.Topic = kmsg.StringPtr("t")
				mr.Topics = append(mr.Topics, t)
			}
			frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("fuzz")).AppendRequest(nil, req, 1)
			f.Add(frame[4:])
		}
	}
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 8 {
			return // readFrame refuses these before parsing
		}
		h, req, body, err := parseHeader(frame)
		if err != nil {
			return
		}
		// As a connection does: an API that walks its body first refuses
		// what the walk refuses.
		if a, ok := s.lookup(h.key); ok && a.cost != nil && a.supports(h.version) {
			if _, err := a.cost(h.version, body); err != nil {
				// It must not refuse a request kmsg would decode.
				if req.ReadFrom(body) == nil {
					t.Fatalf("the %s v%d walk refuses a body kmsg decodes: %v", kmsg.NameForKey(h.key), h.version, err)
				}
				return
			}
		}
		resp, err := s.answer(context.Background(), h, req, body)
		if err == nil && resp != nil {
			resp.AppendTo(nil)
		}
	})
}
