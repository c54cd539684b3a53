package topicconfig

import (
	"errors"
	"testing"
)

func TestQueuedMaxRequestBytes(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		set  bool
		want int64
		bad  bool
	}{
		{set: false, want: DefaultQueuedMaxRequestBytes},
		{raw: "-1", set: true, want: 0},
		{raw: "1048576", set: true, want: 1 << 20},
		{raw: " 536870912 ", set: true, want: 512 << 20},
		{raw: "0", set: true, bad: true},
		{raw: "-2", set: true, bad: true},
		{raw: "1048575", set: true, bad: true},
		{raw: "lots", set: true, bad: true},
	} {
		settings := map[string]string{}
		if tc.set {
			settings["queued.max.request.bytes"] = tc.raw
		}
		got, err := QueuedMaxRequestBytes(settings)
		var ve *ValueError
		switch {
		case tc.bad && (!errors.As(err, &ve) || ve.Key != "queued.max.request.bytes"):
			t.Errorf("%q: %v, want an error naming queued.max.request.bytes", tc.raw, err)
		case !tc.bad && (err != nil || got != tc.want):
			t.Errorf("%q: %d, %v; want %d", tc.raw, got, err, tc.want)
		}
	}
}
