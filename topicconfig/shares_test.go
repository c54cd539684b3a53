package topicconfig

import (
	"errors"
	"testing"
	"time"
)

func TestShares(t *testing.T) {
	got, err := Shares(nil)
	if err != nil || got != DefaultShareSettings {
		t.Fatalf("defaults: %+v, %v", got, err)
	}
	got, err = Shares(map[string]string{
		ShareRecordLockDurationKey: "15000", ShareDeliveryCountLimitKey: "10",
		SharePartitionMaxLocksKey: "100", ShareMaxSessionsKey: "7",
	})
	want := ShareSettings{RecordLockDuration: 15 * time.Second, DeliveryCountLimit: 10, PartitionMaxRecordLocks: 100, MaxShareSessions: 7}
	if err != nil || got != want {
		t.Fatalf("set: %+v, %v; want %+v", got, err, want)
	}
	for key, bad := range map[string]string{
		ShareRecordLockDurationKey: "1000", ShareDeliveryCountLimitKey: "1",
		SharePartitionMaxLocksKey: "10001", ShareMaxSessionsKey: "x",
	} {
		var ve *ValueError
		if _, err := Shares(map[string]string{key: bad}); !errors.As(err, &ve) || ve.Key != key {
			t.Errorf("%s=%s: %v, want a ValueError naming the key", key, bad, err)
		}
	}
}
