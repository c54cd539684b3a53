package client

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

func TestPartitionErrorCarriesItsCode(t *testing.T) {
	if newPartitionError("t", 0, nil, -1, -1) != nil {
		t.Fatal("absent error became an error")
	}
	if newPartitionError("t", 0, &stratav1.PartitionError{Code: int32(codes.OK)}, -1, -1) != nil {
		t.Fatal("OK became an error")
	}
	perr := newPartitionError("orders", 3, &stratav1.PartitionError{Code: int32(codes.OutOfRange), Message: "offset 9 is beyond the log end 5"}, 9, 9)
	if perr == nil {
		t.Fatal("no error")
	}
	wrapped := fmt.Errorf("poll: %w", perr)
	if got := status.Code(wrapped); got != codes.OutOfRange {
		t.Errorf("status.Code(wrapped) = %v, want OutOfRange", got)
	}
	var pe *PartitionError
	if !errors.As(wrapped, &pe) || pe.Topic != "orders" || pe.Partition != 3 || pe.NextOffset != -1 {
		t.Errorf("errors.As: %+v", pe)
	}
	if msg := perr.Error(); !strings.Contains(msg, `topic "orders" partition 3`) || !strings.Contains(msg, "offset 9") || !strings.Contains(msg, "OutOfRange") {
		t.Errorf("message %q", msg)
	}
}

func TestDataLossErrorNamesTheOffsets(t *testing.T) {
	ranged := &PartitionError{Topic: "t", Partition: 1, Code: codes.DataLoss, Message: "crc mismatch", Offset: 100, NextOffset: 150}
	if msg := ranged.Error(); !strings.Contains(msg, "offsets 100 to 149 cannot be read") || !strings.Contains(msg, "next readable offset 150") {
		t.Errorf("message %q", msg)
	}
	at := &PartitionError{Topic: "t", Partition: 1, Code: codes.DataLoss, Message: "crc mismatch", Offset: 100, NextOffset: -1}
	if msg := at.Error(); !strings.Contains(msg, "data loss at offset 100") {
		t.Errorf("message %q", msg)
	}
	if status.Code(at) != codes.DataLoss {
		t.Errorf("code %v", status.Code(at))
	}
}

// An RPC error wrapped with context keeps its code through the wrapping.
func TestWrappedStatusErrorKeepsCode(t *testing.T) {
	err := fmt.Errorf("describe topic %q: %w", "x", status.Error(codes.NotFound, "no such topic"))
	if status.Code(err) != codes.NotFound {
		t.Fatalf("code %v", status.Code(err))
	}
}

// Kafka's error name travels with the code, for people and for retries.
func TestPartitionErrorKeepsKafkasReason(t *testing.T) {
	perr := newPartitionError("t", 2, &stratav1.PartitionError{Code: int32(codes.Unavailable), Reason: ReasonNotLeaderOrFollower, Message: "broker 1 does not lead"}, -1, -1)
	if perr.Reason != ReasonNotLeaderOrFollower || !perr.leaderMoved() {
		t.Fatalf("%+v", perr)
	}
	if msg := perr.Error(); !strings.Contains(msg, "Unavailable (NOT_LEADER_OR_FOLLOWER)") {
		t.Errorf("message %q", msg)
	}
	other := &PartitionError{Code: codes.FailedPrecondition, Message: "x"}
	if other.leaderMoved() || other.produceRetriable() {
		t.Errorf("%v taken for a leader change", other)
	}
}
