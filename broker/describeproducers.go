package broker

import (
	"fmt"

	"github.com/strata-broker/strata/partlog"
)

// ActiveProducer is one producer of a partition as Kafka's
// DescribeProducers shows it.
type ActiveProducer struct {
	partlog.ProducerInfo
	// TxnStartOffset is the first offset of the producer's open
	// transaction, -1 when it has none.
	TxnStartOffset int64
}

// DescribeProducers lists the idempotent and transactional producers a
// partition hosted here remembers. Kafka answers from any replica's
// producer state (an admin client asks the leader unless told otherwise),
// and so does this: followers track producers from what they replicate.
func (b *Broker) DescribeProducers(topicName string, partition int32) ([]ActiveProducer, error) {
	if b.virtualTopic(topicName) {
		if partition < 0 || partition >= b.offsetsPartitions {
			return nil, fmt.Errorf("%s-%d: %w", topicName, partition, ErrUnknownTopicOrPartition)
		}
		return nil, nil
	}
	p, err := b.hosted.partition(topicName, partition)
	if err != nil {
		// Not hosted: leaderPartition tells a partition led elsewhere.
		if _, lerr := b.hosted.leaderPartition(topicName, partition); lerr != nil {
			return nil, lerr
		}
		return nil, err
	}
	ps := p.producers
	ps.mu.Lock()
	infos := ps.table.Producers(ps.now())
	ps.mu.Unlock()
	open := map[int64]int64{}
	for _, t := range p.log.OpenTransactions() {
		open[t.ProducerID] = t.FirstOffset
	}
	out := make([]ActiveProducer, len(infos))
	for i, info := range infos {
		out[i] = ActiveProducer{ProducerInfo: info, TxnStartOffset: -1}
		if first, ok := open[info.ID]; ok {
			out[i].TxnStartOffset = first
		}
	}
	return out, nil
}
