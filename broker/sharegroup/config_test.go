package sharegroup

import (
	"strings"
	"testing"
	"time"
)

func TestValidateGroupConfigs(t *testing.T) {
	b, err := NewBounds(map[string]string{"group.share.max.record.lock.duration.ms": "20000", "group.share.record.lock.duration.ms": "20000"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		set  map[string]string
		want string // "" for valid
	}{
		{map[string]string{ShareAutoOffsetReset: "earliest", ShareRecordLockDurationMs: "15000"}, ""},
		{map[string]string{ShareAutoOffsetReset: "by_duration:PT1H30M"}, ""},
		{map[string]string{ShareAutoOffsetReset: "by_duration:P1DT0.5S"}, ""},
		{map[string]string{ShareAutoOffsetReset: "by_duration:-PT1H"}, "ISO-8601"},
		{map[string]string{ShareAutoOffsetReset: "by_duration:PT"}, "ISO-8601"},
		{map[string]string{ShareAutoOffsetReset: "none"}, "must be latest"},
		{map[string]string{ShareIsolationLevel: "read_committed"}, ""},
		{map[string]string{ShareIsolationLevel: "dirty"}, "read_committed"},
		{map[string]string{ShareRecordLockDurationMs: "25000"}, "group.share.max.record.lock.duration.ms"},
		{map[string]string{ShareRecordLockDurationMs: "1000"}, "group.share.min.record.lock.duration.ms"},
		{map[string]string{ShareRecordLockDurationMs: "x"}, "INT"},
		{map[string]string{ShareSessionTimeoutMs: "50000", ShareHeartbeatIntervalMs: "15000"}, ""},
		{map[string]string{"share.unknown": "1"}, "unknown group config"},
		{map[string]string{ConsumerSessionTimeoutMs: "45000", ConsumerHeartbeatIntervalMs: "15000"}, ""},
	} {
		err := b.Validate(c.set)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("Validate(%v) = %v, want %q", c.set, err, c.want)
		}
	}
	tight, err := NewBounds(map[string]string{"group.share.min.session.timeout.ms": "5000", "group.share.session.timeout.ms": "5000"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tight.Validate(map[string]string{ShareSessionTimeoutMs: "5000"}); err == nil || !strings.Contains(err.Error(), "greater than share.heartbeat") {
		t.Errorf("session timeout equal to the heartbeat interval: %v", err)
	}
	e := b.Effective(map[string]string{ShareAutoOffsetReset: "by_duration:PT2M", ShareRecordLockDurationMs: "59000"})
	if e.AutoOffsetReset != "by_duration" || e.ResetDuration != 2*time.Minute || e.RecordLockDuration != 20*time.Second || e.SessionTimeout != 45*time.Second {
		t.Errorf("Effective = %+v", e)
	}
	if _, err := NewBounds(map[string]string{"group.share.session.timeout.ms": "1000"}); err == nil {
		t.Error("a default below its minimum was accepted")
	}
}
