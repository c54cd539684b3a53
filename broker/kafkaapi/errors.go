package kafkaapi

import (
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/broker"
)

// errorCode turns an error from the core into Kafka's error code, the one
// each client's retry logic expects for that situation.
func errorCode(err error) int16 {
	if err == nil {
		return 0
	}
	return kindCode(broker.Classify(err))
}

func kindCode(k broker.Kind) int16 {
	switch k {
	case broker.KindUnknownTopicOrPartition:
		return kerr.UnknownTopicOrPartition.Code
	case broker.KindTopicExists:
		return kerr.TopicAlreadyExists.Code
	case broker.KindInvalidTopic:
		return kerr.InvalidTopicException.Code
	case broker.KindInvalidConfig:
		return kerr.InvalidConfig.Code
	case broker.KindInvalidPartitions:
		return kerr.InvalidPartitions.Code
	case broker.KindInvalidReplication:
		return kerr.InvalidReplicationFactor.Code
	case broker.KindInvalidRequest:
		return kerr.InvalidRequest.Code
	case broker.KindCorruptMessage:
		return kerr.CorruptMessage.Code
	case broker.KindInvalidRecord:
		return kerr.InvalidRecord.Code
	case broker.KindRecordTooLarge:
		return kerr.MessageTooLarge.Code
	case broker.KindOffsetOutOfRange:
		return kerr.OffsetOutOfRange.Code
	case broker.KindCorruptStorage:
		return kerr.KafkaStorageError.Code
	case broker.KindNotLeader:
		return kerr.NotLeaderForPartition.Code
	case broker.KindLeaderNotAvailable:
		return kerr.LeaderNotAvailable.Code
	case broker.KindNotEnoughReplicas:
		return kerr.NotEnoughReplicas.Code
	case broker.KindNotEnoughReplicasAfterAppend:
		return kerr.NotEnoughReplicasAfterAppend.Code
	case broker.KindRequestTimedOut, broker.KindCanceled:
		return kerr.RequestTimedOut.Code
	case broker.KindFencedLeaderEpoch:
		return kerr.FencedLeaderEpoch.Code
	case broker.KindUnknownLeaderEpoch:
		return kerr.UnknownLeaderEpoch.Code
	case broker.KindUnavailable:
		// The broker is shutting down or its log failed: the client should
		// refresh metadata and go to the new leader.
		return kerr.NotLeaderForPartition.Code
	case broker.KindOutOfOrderSequence:
		return kerr.OutOfOrderSequenceNumber.Code
	case broker.KindInvalidProducerEpoch:
		return kerr.InvalidProducerEpoch.Code
	case broker.KindTransactionsUnsupported:
		// Fatal to a transactional producer, which is what it must be.
		return kerr.InvalidRequest.Code
	}
	return kerr.UnknownServerError.Code
}

// errorMessage is the text for responses that carry one: the core's
// messages name the topic, partition and reason.
func errorMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}
