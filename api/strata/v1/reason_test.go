package stratav1

import "testing"

// A reason's name, as PartitionError.reason carries it, parses back to the
// same value: a follower reads it so from a leader that sends no enum.
func TestParseReasonInvertsReasonName(t *testing.T) {
	for v := range ErrorReason_name {
		r := ErrorReason(v)
		if got := ParseReason(r.ReasonName()); got != r {
			t.Errorf("ParseReason(%q) = %v, want %v", r.ReasonName(), got, r)
		}
	}
	if got := ParseReason("SOME_FUTURE_ERROR"); got != ErrorReason_ERROR_REASON_UNSPECIFIED {
		t.Errorf("an unknown name parsed as %v", got)
	}
	if got := ParseReason("OFFSET_OUT_OF_RANGE"); got != ErrorReason_OFFSET_OUT_OF_RANGE {
		t.Errorf("OFFSET_OUT_OF_RANGE parsed as %v", got)
	}
}
