package grpcapi

import (
	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/errcode"
)

// Reasons of group errors the tests look for, from the table.
var (
	reasonIllegalGeneration = errcode.For(broker.KindIllegalGeneration).ReasonName()
	reasonNonEmptyGroup     = errcode.For(broker.KindGroupNotEmpty).ReasonName()
)
