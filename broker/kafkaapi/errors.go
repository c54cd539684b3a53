package kafkaapi

import (
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/broker/errcode"
)

// errorCode turns an error from the core into Kafka's error code, the one
// each client's retry logic expects for that situation (see broker/errcode).
func errorCode(err error) int16 {
	return errcode.Of(err).Kafka
}

// groupCode maps the coordinator's errors to Kafka's codes, which group
// clients read differently from other calls' (see errcode.KafkaGroup).
func groupCode(err error) int16 {
	return errcode.KafkaGroup(err)
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

// txnErrorCode is errorCode for the transactional APIs: PRODUCER_FENCED
// (KIP-588) only where the request version knows it (fencedKnown),
// INVALID_PRODUCER_EPOCH before, as Kafka answers older clients.
func txnErrorCode(err error, fencedKnown bool) int16 {
	code := errorCode(err)
	if code == kerr.ProducerFenced.Code && !fencedKnown {
		return kerr.InvalidProducerEpoch.Code
	}
	return code
}
