package topicconfig

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestKafkaListenerSettings(t *testing.T) {
	got, err := KafkaListenerSettings(map[string]string{
		"socket.request.max.bytes.non.produce": "2097152",
		"max.connections":                      "50",
		"max.connections.per.ip":               "5",
		"connections.max.idle.ms":              "1500",
		"socket.request.timeout.ms":            "250",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := KafkaListener{
		NonProduceRequestMaxBytes: 2 << 20,
		MaxConnections:            50,
		MaxConnectionsPerIP:       5,
		ConnectionsMaxIdle:        1500 * time.Millisecond,
		RequestTimeout:            250 * time.Millisecond,
	}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	defaults, err := KafkaListenerSettings(nil)
	if err != nil {
		t.Fatal(err)
	}
	if defaults.ConnectionsMaxIdle != 10*time.Minute || defaults.MaxConnections <= 0 || defaults.MaxConnectionsPerIP <= 0 {
		t.Fatalf("defaults %+v: want Kafka's idle timeout and bounded connections", defaults)
	}
}

func TestBadKafkaListenerSettingsNameTheirKey(t *testing.T) {
	for _, tc := range []struct {
		key      string
		settings map[string]string
	}{
		{"socket.request.max.bytes.non.produce", map[string]string{"socket.request.max.bytes.non.produce": "12"}},
		// Below socket.request.max.bytes, which Kafka refuses too.
		{"queued.max.request.bytes", map[string]string{"queued.max.request.bytes": "2097152", "socket.request.max.bytes": "4194304"}},
		{"max.connections", map[string]string{"max.connections": "0"}},
		{"max.connections.per.ip", map[string]string{"max.connections.per.ip": "-3"}},
		{"connections.max.idle.ms", map[string]string{"connections.max.idle.ms": "soon"}},
		{"socket.request.timeout.ms", map[string]string{"socket.request.timeout.ms": "0"}},
	} {
		_, err := KafkaListenerSettings(tc.settings)
		var ve *ValueError
		if !errors.As(err, &ve) || ve.Key != tc.key {
			t.Errorf("%v: %v, want an error naming %s", tc.settings, err, tc.key)
		}
	}
	// Every bad key is reported, not just the first.
	_, err := KafkaListenerSettings(map[string]string{"max.connections": "x", "socket.request.timeout.ms": "-1"})
	if err == nil || !strings.Contains(err.Error(), "max.connections") || !strings.Contains(err.Error(), "socket.request.timeout.ms") {
		t.Errorf("two bad keys: %v", err)
	}
}
