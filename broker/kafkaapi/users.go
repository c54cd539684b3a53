package kafkaapi

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/sasl"
)

// scramMechanisms are Kafka's ScramMechanism type values, by which the
// SCRAM credential APIs name mechanisms; 0 is UNKNOWN.
var scramMechanisms = map[int8]string{1: sasl.ScramSHA256, 2: sasl.ScramSHA512}

func scramMechanismName(t int8) string {
	if name, ok := scramMechanisms[t]; ok {
		return name
	}
	return "UNKNOWN"
}

func scramMechanismType(name string) int8 {
	for t, n := range scramMechanisms {
		if n == name {
			return t
		}
	}
	return 0
}

// userCode is Kafka's error code for a SCRAM credential API's refusal.
func userCode(err error) int16 {
	switch {
	case errors.Is(err, broker.ErrResourceNotFound):
		return kerr.ResourceNotFound.Code
	case errors.Is(err, broker.ErrDuplicateResource):
		return kerr.DuplicateResource.Code
	case errors.Is(err, broker.ErrUnsupportedSaslMechanism):
		return kerr.UnsupportedSaslMechanism.Code
	case errors.Is(err, broker.ErrUnacceptableCredential):
		return kerr.UnacceptableCredential.Code
	}
	return errorCode(err)
}
