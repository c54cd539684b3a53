// DescribeProducers (key 61), version 0.
//
// Lists the producers a partition's producer state remembers (producer id
// and epoch, last sequence, when it last wrote, the coordinator epoch of
// its last transaction marker, and the first offset of its open
// transaction), as `kafka-transactions describe-producers` shows them.
// Kafka answers from any replica hosting the partition, and so does this.
// LastTimestamp is when the broker appended the producer's last batch:
// Kafka keeps the batch's own max timestamp, which the producer state here
// does not record. Needs READ on the topic, as Kafka. A partition named
// twice is answered once: each answer may list thousands of producers.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/metastore"
)

func (s *Server) describeProducersAPI() api {
	return api{key: 61, min: 0, max: 0, amplification: 110, handle: decoded(s.describeProducers), auth: checkedInHandler()}
}

func (s *Server) describeProducers(ctx context.Context, req *kmsg.DescribeProducersRequest) *kmsg.DescribeProducersResponse {
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	seen := map[metastore.TopicPartition]bool{}
	for _, t := range req.Topics {
		rt := kmsg.NewDescribeProducersResponseTopic()
		rt.Topic = t.Topic
		allowed := s.authorized(ctx, acl.OpRead, acl.ResourceTopic, t.Topic)
		for _, p := range t.Partitions {
			tp := metastore.TopicPartition{Topic: t.Topic, Partition: p}
			if seen[tp] {
				continue
			}
			seen[tp] = true
			rp := kmsg.NewDescribeProducersResponseTopicPartition()
			rp.Partition = p
			if !allowed {
				rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			producers, err := s.core.DescribeProducers(t.Topic, p)
			if err != nil {
				rp.ErrorCode = errorCode(err)
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			rp.ActiveProducers = make([]kmsg.DescribeProducersResponseTopicPartitionActiveProducer, 0, len(producers))
			for _, ap := range producers {
				a := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
				a.ProducerID, a.ProducerEpoch = ap.ID, int32(ap.Epoch)
				a.LastSequence, a.LastTimestamp = ap.LastSequence, ap.LastSeen.UnixMilli()
				a.CoordinatorEpoch, a.CurrentTxnStartOffset = ap.CoordinatorEpoch, ap.TxnStartOffset
				rp.ActiveProducers = append(rp.ActiveProducers, a)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
