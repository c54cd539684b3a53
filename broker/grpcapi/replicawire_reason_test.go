package grpcapi

import (
	"testing"

	"google.golang.org/protobuf/proto"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// The error reason a leader sends its followers goes through the replica
// wire's own encoder and decoder exactly as protobuf encodes it, values
// this build does not know included.
func TestReplicaFetchErrorReasonMatchesProto(t *testing.T) {
	for name, reason := range map[string]stratav1.ErrorReason{
		"offset out of range": stratav1.ErrorReason_OFFSET_OUT_OF_RANGE,
		"unspecified":         stratav1.ErrorReason_ERROR_REASON_UNSPECIFIED,
		"from a newer broker": stratav1.ErrorReason(1000),
		"negative":            stratav1.ErrorReason(-2),
	} {
		t.Run(name, func(t *testing.T) {
			resp := &stratav1.ReplicaFetchResponse{Partitions: []*stratav1.ReplicaFetchPartitionResult{
				{Topic: "a", Partition: 0, RecordBatches: []byte("batch"), HighWatermark: 4},
				{
					Topic: "a", Partition: 1, LogStartOffset: 10, HighWatermark: 20,
					Error:       &stratav1.PartitionError{Code: 11, Message: "offset 3 out of range", Reason: reason.ReasonName()},
					ErrorReason: reason,
				},
			}}
			data, err := codec{}.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			b := data.Materialize()
			data.Free()
			// receiveBoth has proto and the codec decode what the codec
			// wrote, and checks that they agree.
			var recv []byte
			got, err := receiveBoth(t, b, &recv)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, resp) {
				t.Fatalf("got %v, want %v", got, resp)
			}
			if r := got.GetPartitions()[1].GetErrorReason(); r != reason {
				t.Fatalf("received reason %v, want %v", r, reason)
			}
		})
	}
}
