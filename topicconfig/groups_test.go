package topicconfig

import (
	"errors"
	"strings"
	"testing"
)

func TestGroupSettings(t *testing.T) {
	for _, c := range []struct {
		settings map[string]string
		metadata int
		size     int
		bad      string // the key an error must name
	}{
		{settings: nil, metadata: DefaultOffsetMetadataMaxBytes, size: DefaultGroupMaxSize},
		{settings: map[string]string{"offset.metadata.max.bytes": "0", "group.max.size": "1"}, metadata: 0, size: 1},
		{settings: map[string]string{"offset.metadata.max.bytes": " 1048576 ", "group.max.size": "2147483647"}, metadata: 1 << 20, size: 1<<31 - 1},
		{settings: map[string]string{"offset.metadata.max.bytes": "1048577"}, bad: "offset.metadata.max.bytes"},
		{settings: map[string]string{"offset.metadata.max.bytes": "-1"}, bad: "offset.metadata.max.bytes"},
		{settings: map[string]string{"offset.metadata.max.bytes": "4k"}, bad: "offset.metadata.max.bytes"},
		{settings: map[string]string{"group.max.size": "0"}, bad: "group.max.size"},
		{settings: map[string]string{"group.max.size": "2147483648"}, bad: "group.max.size"},
	} {
		md, mdErr := OffsetMetadataMaxBytes(c.settings)
		size, sizeErr := GroupMaxSize(c.settings)
		if err := errors.Join(mdErr, sizeErr); c.bad != "" {
			if err == nil || !strings.Contains(err.Error(), c.bad) || !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("%v: error %v, want one naming %s", c.settings, err, c.bad)
			}
			continue
		} else if err != nil {
			t.Errorf("%v: %v", c.settings, err)
			continue
		}
		if md != c.metadata || size != c.size {
			t.Errorf("%v: offset.metadata.max.bytes %d, group.max.size %d; want %d, %d", c.settings, md, size, c.metadata, c.size)
		}
	}
}
