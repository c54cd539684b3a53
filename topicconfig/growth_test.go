package topicconfig

import (
	"errors"
	"strings"
	"testing"
)

func TestSegmentMinBytes(t *testing.T) {
	tests := []struct {
		name     string
		settings map[string]string
		want     int64
		errKey   string // the key the error must name; "" for none
	}{
		{"Kafka's by default", nil, 1 << 20, ""},
		{"lowered for tests", map[string]string{"log.segment.min.bytes": "1024"}, 1024, ""},
		{"raised", map[string]string{"log.segment.min.bytes": "8388608"}, 8 << 20, ""},
		{"below what the log supports", map[string]string{"log.segment.min.bytes": "1023"}, 0, "log.segment.min.bytes"},
		{"not a number", map[string]string{"log.segment.min.bytes": "1MiB"}, 0, "log.segment.min.bytes"},
		{"beyond 32 bits", map[string]string{"log.segment.min.bytes": "2147483648"}, 0, "log.segment.min.bytes"},
		{"default segments meet it", map[string]string{"log.segment.bytes": "1048576"}, 1 << 20, ""},
		{"default segments below it", map[string]string{"log.segment.bytes": "1048575"}, 0, "log.segment.bytes"},
		{"default segments below a raised one", map[string]string{"log.segment.min.bytes": "4096", "log.segment.bytes": "2048"}, 0, "log.segment.bytes"},
		{"default segments lowered with it", map[string]string{"log.segment.min.bytes": "2048", "log.segment.bytes": "2048"}, 2048, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SegmentMinBytes(tt.settings)
			if tt.errKey != "" {
				var ve *ValueError
				if !errors.As(err, &ve) || ve.Key != tt.errKey {
					t.Fatalf("got %d, %v; want an error for %s", got, err, tt.errKey)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestCheckSegmentBytes(t *testing.T) {
	cfg, _, err := Resolve(map[string]string{"segment.bytes": "1024"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckSegmentBytes(cfg, 1024); err != nil {
		t.Errorf("1024 against a minimum of 1024: %v", err)
	}
	err = CheckSegmentBytes(cfg, KafkaMinSegmentBytes)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "segment.bytes") || !strings.Contains(err.Error(), "1048576") {
		t.Errorf("1024 against Kafka's minimum: %v", err)
	}
	err = CheckSegmentBytes(cfg, 2048)
	if err == nil || !strings.Contains(err.Error(), "log.segment.min.bytes") {
		t.Errorf("1024 against a lowered minimum of 2048: %v, want the setting named", err)
	}
}

func TestGrowthCounts(t *testing.T) {
	readers := map[string]func(map[string]string) (int, error){
		SegmentOpenFilesMaxKey:     SegmentOpenFilesMax,
		AutoCreateMaxPerRequestKey: AutoCreateMaxPerRequest,
		MaxPartitionsKey:           MaxPartitions,
	}
	for key, read := range readers {
		t.Run(key, func(t *testing.T) {
			if v, err := read(nil); err != nil || v < 1 {
				t.Errorf("default: %d, %v", v, err)
			}
			if v, err := read(map[string]string{key: " 7 "}); err != nil || v != 7 {
				t.Errorf("7: %d, %v", v, err)
			}
			for _, bad := range []string{"0", "-1", "many", "2147483648"} {
				_, err := read(map[string]string{key: bad})
				var ve *ValueError
				if !errors.As(err, &ve) || ve.Key != key {
					t.Errorf("%q: %v, want an error naming %s", bad, err, key)
				}
			}
		})
	}
}
