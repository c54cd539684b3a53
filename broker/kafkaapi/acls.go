package kafkaapi

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker"
)

// aclCode is Kafka's error code for an ACL API's failure.
func aclCode(err error) int16 {
	switch {
	case errors.Is(err, broker.ErrSecurityDisabled):
		return kerr.SecurityDisabled.Code
	case errors.Is(err, acl.ErrInvalid):
		return kerr.InvalidRequest.Code
	}
	return errorCode(err)
}

// aclPatternType is the pattern type a request carries: version 0 has
// none, and means LITERAL.
func aclPatternType(version int16, pt int8) acl.PatternType {
	if version == 0 {
		return acl.PatternLiteral
	}
	return acl.PatternType(pt)
}
