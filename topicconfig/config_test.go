package topicconfig

import (
	"errors"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// builtin is the typed form of Defaults().
var builtin = Topic{
	CleanupPolicy:               []string{"delete"},
	RetentionMs:                 604800000,
	RetentionBytes:              -1,
	LocalRetentionMs:            -2,
	LocalRetentionBytes:         -2,
	RemoteStorageEnable:         false,
	SegmentBytes:                1073741824,
	SegmentMs:                   604800000,
	SegmentIndexBytes:           10485760,
	IndexIntervalBytes:          4096,
	FlushMessages:               math.MaxInt64,
	FlushMs:                     math.MaxInt64,
	MaxMessageBytes:             1048588,
	MinInsyncReplicas:           1,
	UncleanLeaderElectionEnable: false,
	DeleteRetentionMs:           86400000,
	MinCompactionLagMs:          0,
	MaxCompactionLagMs:          math.MaxInt64,
	MinCleanableDirtyRatio:      0.5,
	CompressionType:             "producer",
	MessageTimestampType:        "CreateTime",
	FileDeleteDelayMs:           60000,
}

func TestNamesAndDefaults(t *testing.T) {
	names := Names()
	if !slices.IsSorted(names) {
		t.Errorf("Names not sorted: %v", names)
	}
	if len(names) != reflect.TypeFor[Topic]().NumField() {
		t.Errorf("%d names for %d Topic fields", len(names), reflect.TypeFor[Topic]().NumField())
	}
	defaults := Defaults()
	if !slices.Equal(slices.Sorted(maps.Keys(defaults)), names) {
		t.Errorf("Defaults keys %v differ from Names %v", slices.Sorted(maps.Keys(defaults)), names)
	}
	// Every default validates on its own...
	for k, v := range defaults {
		if err := ValidateOverrides(map[string]string{k: v}); err != nil {
			t.Errorf("default of %s: %v", k, err)
		}
	}
	// ...and together they are consistent and mean the documented values.
	got, entries, err := Resolve(defaults, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, builtin) {
		t.Errorf("Resolve(Defaults()) = %+v, want %+v", got, builtin)
	}
	for _, e := range entries {
		if e.Source != SourceTopic || e.Value != defaults[e.Name] {
			t.Errorf("entry %+v, want value %q from topic", e, defaults[e.Name])
		}
	}
	// Defaults returns a copy.
	defaults["retention.ms"] = "1"
	if Defaults()["retention.ms"] != "604800000" {
		t.Error("Defaults shares its map")
	}
}

func TestValidateOverridesAcceptsValidValues(t *testing.T) {
	valid := map[string][]string{
		"cleanup.policy":                 {"delete", "compact", "compact,delete", "delete,compact", " compact , delete "},
		"compression.type":               {"uncompressed", "gzip", "snappy", "lz4", "zstd", "producer"},
		"delete.retention.ms":            {"0", "86400000"},
		"file.delete.delay.ms":           {"0"},
		"flush.messages":                 {"1", "9223372036854775807"},
		"flush.ms":                       {"0", "1000"},
		"index.interval.bytes":           {"0", "4096"},
		"local.retention.bytes":          {"-2", "-1", "0", "1048576"},
		"local.retention.ms":             {"-2", "-1", "0", "3600000"},
		"max.compaction.lag.ms":          {"1"},
		"max.message.bytes":              {"0", "2147483647"},
		"message.timestamp.type":         {"CreateTime", "LogAppendTime"},
		"min.cleanable.dirty.ratio":      {"0", "0.01", "1", "1.0"},
		"min.compaction.lag.ms":          {"0"},
		"min.insync.replicas":            {"1", "3"},
		"remote.storage.enable":          {"true", "false", "TRUE", "False"},
		"retention.bytes":                {"-1", "0", "1073741824"},
		"retention.ms":                   {"-1", "0", "1", " 1000 "},
		"segment.bytes":                  {"1024", "1073741824", "2147483647"},
		"segment.index.bytes":            {"4", "10485760"},
		"segment.ms":                     {"1", "604800000"},
		"unclean.leader.election.enable": {"true", "false"},
	}
	if !slices.Equal(slices.Sorted(maps.Keys(valid)), Names()) {
		t.Fatal("test table does not cover exactly the known keys")
	}
	for key, values := range valid {
		for _, v := range values {
			if err := ValidateOverrides(map[string]string{key: v}); err != nil {
				t.Errorf("%s=%q: %v", key, v, err)
			}
		}
	}
}

func TestValidateOverridesRejectsInvalidValues(t *testing.T) {
	tests := []struct {
		key, value string
		wantReason string
	}{
		{"retention.ms", "abc", "must be an integer (milliseconds, -1 for unlimited)"},
		{"retention.ms", "-2", "must be at least -1 (milliseconds, -1 for unlimited)"},
		{"retention.ms", "1.5", "must be an integer"},
		{"retention.ms", "", "must be an integer"},
		{"retention.ms", "99999999999999999999", "must be at least -1"},
		{"retention.bytes", "-5", "must be at least -1"},
		{"local.retention.ms", "-3", "must be at least -2"},
		{"local.retention.bytes", "x", "must be an integer"},
		{"segment.bytes", "1023", "must be between 1024 and 2147483647 (bytes)"},
		{"segment.bytes", "2147483648", "must be between 1024 and 2147483647"},
		{"segment.ms", "0", "must be at least 1"},
		{"segment.index.bytes", "3", "must be between 4 and"},
		{"index.interval.bytes", "-1", "must be between 0 and"},
		{"flush.messages", "0", "must be at least 1"},
		{"flush.ms", "-1", "must be at least 0"},
		{"max.message.bytes", "-1", "must be between 0 and"},
		{"min.insync.replicas", "0", "must be between 1 and"},
		{"delete.retention.ms", "-1", "must be at least 0"},
		{"min.compaction.lag.ms", "-1", "must be at least 0"},
		{"max.compaction.lag.ms", "0", "must be at least 1"},
		{"file.delete.delay.ms", "soon", "must be an integer"},
		{"min.cleanable.dirty.ratio", "1.5", "must be a number between 0 and 1"},
		{"min.cleanable.dirty.ratio", "-0.1", "must be a number between 0 and 1"},
		{"min.cleanable.dirty.ratio", "NaN", "must be a number between 0 and 1"},
		{"min.cleanable.dirty.ratio", "half", "must be a number between 0 and 1"},
		{"remote.storage.enable", "yes", "must be true or false"},
		{"unclean.leader.election.enable", "1", "must be true or false"},
		{"compression.type", "brotli", "must be one of uncompressed, zstd, lz4, snappy, gzip, producer"},
		{"compression.type", "GZIP", "must be one of"},
		{"message.timestamp.type", "createtime", "must be one of CreateTime, LogAppendTime"},
		{"cleanup.policy", "", `must be a comma-separated list of "compact" and "delete"`},
		{"cleanup.policy", "delete,delete", "each at most once"},
		{"cleanup.policy", "compact,", "must be a comma-separated list"},
		{"cleanup.policy", "retain", "must be a comma-separated list"},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			err := ValidateOverrides(map[string]string{tt.key: tt.value})
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("%v does not match ErrInvalidConfig", err)
			}
			var ve *ValueError
			if !errors.As(err, &ve) || ve.Key != tt.key || ve.Value != tt.value {
				t.Fatalf("error %v: want a *ValueError for %s=%q", err, tt.key, tt.value)
			}
			if !strings.Contains(ve.Reason, tt.wantReason) {
				t.Errorf("reason %q, want it to contain %q", ve.Reason, tt.wantReason)
			}
			if !strings.Contains(err.Error(), tt.key) {
				t.Errorf("message %q does not name the key", err)
			}
		})
	}
}

func TestValidateOverridesMessage(t *testing.T) {
	err := ValidateOverrides(map[string]string{"retention.ms": "abc"})
	want := `invalid value "abc" for retention.ms: must be an integer (milliseconds, -1 for unlimited)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		key         string
		suggestions []string
		message     string
	}{
		{"retention.msx", []string{"retention.ms"}, `unknown topic config "retention.msx" (did you mean retention.ms?)`},
		{"Retention.MS", []string{"retention.ms"}, ""},
		{"segmentbytes", []string{"segment.bytes"}, ""},
		{"log.retention.hours", []string{"retention.ms"}, ""},
		{"log.segment.bytes", []string{"segment.bytes"}, ""},
		{"frobnicate", nil, `unknown topic config "frobnicate"`},
		{"retention", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			err := ValidateOverrides(map[string]string{tt.key: "1"})
			var ue *UnknownKeyError
			if !errors.As(err, &ue) {
				t.Fatalf("error %v: want *UnknownKeyError", err)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Error("does not match ErrInvalidConfig")
			}
			if ue.Key != tt.key || !slices.Equal(ue.Suggestions, tt.suggestions) {
				t.Errorf("got %+v, want suggestions %v", ue, tt.suggestions)
			}
			if tt.message != "" && err.Error() != tt.message {
				t.Errorf("message %q, want %q", err, tt.message)
			}
		})
	}
	// Several suggestions read as a list.
	e := &UnknownKeyError{Key: "x", Suggestions: []string{"a", "b", "c"}}
	if got := e.Error(); got != `unknown topic config "x" (did you mean a, b or c?)` {
		t.Errorf("message %q", got)
	}
}

func TestValidateOverridesReportsAllProblems(t *testing.T) {
	err := ValidateOverrides(map[string]string{
		"retention.ms":   "abc",
		"segment.bytes":  "1",
		"retention.msx":  "1",
		"cleanup.policy": "compact", // valid
	})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{`invalid value "abc" for retention.ms`, `invalid value "1" for segment.bytes`, `unknown topic config "retention.msx"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "cleanup.policy") {
		t.Errorf("error %q mentions a valid key", msg)
	}
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 3 {
		t.Errorf("%d errors joined, want 3", n)
	}
	if err := ValidateOverrides(nil); err != nil {
		t.Errorf("no overrides: %v", err)
	}
}

func TestResolvePrecedence(t *testing.T) {
	overrides := map[string]string{"retention.ms": "1000", "cleanup.policy": "delete,compact", "remote.storage.enable": "TRUE"}
	brokerDefaults := map[string]string{"retention.ms": "2000", "segment.bytes": "4096", "local.retention.ms": "500"}
	got, entries, err := Resolve(overrides, brokerDefaults)
	if err != nil {
		t.Fatal(err)
	}
	want := builtin
	want.RetentionMs = 1000
	want.CleanupPolicy = []string{"compact", "delete"}
	want.RemoteStorageEnable = true
	want.SegmentBytes = 4096
	want.LocalRetentionMs = 500
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Resolve = %+v\nwant %+v", got, want)
	}
	if !got.CompactEnabled() || !got.DeleteEnabled() {
		t.Error("compact and delete not both enabled")
	}
	if len(entries) != len(Names()) || !slices.IsSortedFunc(entries, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) }) {
		t.Fatalf("entries not one per key in name order: %v", entries)
	}
	bySource := map[string]Entry{}
	for _, e := range entries {
		bySource[e.Name] = e
	}
	for _, tt := range []struct {
		name, value string
		source      Source
		typ         Type
	}{
		{"retention.ms", "1000", SourceTopic, TypeLong},
		{"cleanup.policy", "compact,delete", SourceTopic, TypeList},
		{"remote.storage.enable", "true", SourceTopic, TypeBoolean},
		{"segment.bytes", "4096", SourceBroker, TypeInt},
		{"local.retention.ms", "500", SourceBroker, TypeLong},
		{"retention.bytes", "-1", SourceDefault, TypeLong},
		{"min.cleanable.dirty.ratio", "0.5", SourceDefault, TypeDouble},
		{"compression.type", "producer", SourceDefault, TypeString},
	} {
		if e := bySource[tt.name]; e.Value != tt.value || e.Source != tt.source || e.Type != tt.typ {
			t.Errorf("entry %s = %+v, want %q from %s (%s)", tt.name, e, tt.value, tt.source, tt.typ)
		}
	}
	if got.EffectiveLocalRetentionMs() != 500 || got.EffectiveLocalRetentionBytes() != -1 {
		t.Errorf("effective local retention %d ms, %d bytes", got.EffectiveLocalRetentionMs(), got.EffectiveLocalRetentionBytes())
	}
}

func TestResolveNoOverrides(t *testing.T) {
	got, entries, err := Resolve(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, builtin) {
		t.Errorf("Resolve(nil, nil) = %+v", got)
	}
	for _, e := range entries {
		if e.Source != SourceDefault {
			t.Errorf("%s from %s, want default", e.Name, e.Source)
		}
	}
	if got.EffectiveLocalRetentionMs() != got.RetentionMs {
		t.Error("local.retention.ms -2 does not mean retention.ms")
	}
	if got.CompactEnabled() || !got.DeleteEnabled() {
		t.Error("default cleanup policy is not delete only")
	}
}

// An invalid value is reported, and the config falls back to the next
// source so a stored topic can still be served.
func TestResolveReportsAndFallsBack(t *testing.T) {
	got, entries, err := Resolve(
		map[string]string{"retention.ms": "abc", "segment.bytes": "1", "bogus": "1"},
		map[string]string{"segment.bytes": "2048", "flush.ms": "-5", "also.bogus": "1"},
	)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`invalid value "abc" for retention.ms`,
		`invalid value "1" for segment.bytes`,
		`unknown topic config "bogus"`,
		`broker default: invalid value "-5" for flush.ms`,
		`broker default: unknown topic config "also.bogus"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if got.RetentionMs != builtin.RetentionMs || got.SegmentBytes != 2048 || got.FlushMs != builtin.FlushMs {
		t.Errorf("fallbacks: retention.ms %d, segment.bytes %d, flush.ms %d", got.RetentionMs, got.SegmentBytes, got.FlushMs)
	}
	for _, e := range entries {
		switch e.Name {
		case "retention.ms", "flush.ms":
			if e.Source != SourceDefault {
				t.Errorf("%s from %s, want default", e.Name, e.Source)
			}
		case "segment.bytes":
			if e.Source != SourceBroker {
				t.Errorf("segment.bytes from %s, want broker", e.Source)
			}
		}
	}
}

func TestResolveChecksRulesBetweenKeys(t *testing.T) {
	tests := []struct {
		name           string
		overrides      map[string]string
		brokerDefaults map[string]string
		wantErr        string // "" for valid
	}{
		{"compaction lags ordered", map[string]string{"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "10"}, nil, ""},
		{"min lag above max", map[string]string{"min.compaction.lag.ms": "11", "max.compaction.lag.ms": "10"}, nil,
			`invalid value "11" for min.compaction.lag.ms: must not be greater than max.compaction.lag.ms (10)`},
		{"min lag above broker max", map[string]string{"min.compaction.lag.ms": "11"}, map[string]string{"max.compaction.lag.ms": "10"},
			"must not be greater than max.compaction.lag.ms (10)"},
		{"local within total", map[string]string{"remote.storage.enable": "true", "retention.ms": "100", "local.retention.ms": "100"}, nil, ""},
		{"local above total", map[string]string{"remote.storage.enable": "true", "retention.ms": "100", "local.retention.ms": "101"}, nil,
			`invalid value "101" for local.retention.ms: must not be greater than retention.ms (100)`},
		{"local unlimited, total finite", map[string]string{"remote.storage.enable": "true", "local.retention.ms": "-1"}, nil,
			"must not be -1 (unlimited) while retention.ms is 604800000"},
		{"local bytes above total", map[string]string{"remote.storage.enable": "true", "retention.bytes": "100", "local.retention.bytes": "200"}, nil,
			"must not be greater than retention.bytes (100)"},
		{"total unlimited", map[string]string{"remote.storage.enable": "true", "retention.ms": "-1", "local.retention.ms": "5"}, nil, ""},
		{"local -2", map[string]string{"remote.storage.enable": "true", "retention.ms": "100"}, nil, ""},
		{"not tiered: local unchecked", map[string]string{"retention.ms": "100", "local.retention.ms": "101"}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Resolve(tt.overrides, tt.brokerDefaults)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want it to contain %q", err, tt.wantErr)
			case tt.wantErr != "" && !errors.Is(err, ErrInvalidConfig):
				t.Errorf("%v does not match ErrInvalidConfig", err)
			}
		})
	}
}

func TestBrokerDefaults(t *testing.T) {
	tests := []struct {
		name     string
		settings map[string]string
		want     map[string]string
	}{
		{"none", nil, map[string]string{}},
		{"hours", map[string]string{"log.retention.hours": "168"}, map[string]string{"retention.ms": "604800000"}},
		{"minutes", map[string]string{"log.retention.minutes": "5"}, map[string]string{"retention.ms": "300000"}},
		{"ms", map[string]string{"log.retention.ms": "1234"}, map[string]string{"retention.ms": "1234"}},
		{"minutes beat hours", map[string]string{"log.retention.hours": "1", "log.retention.minutes": "2"}, map[string]string{"retention.ms": "120000"}},
		{"ms beats minutes and hours", map[string]string{"log.retention.hours": "1", "log.retention.minutes": "2", "log.retention.ms": "3"}, map[string]string{"retention.ms": "3"}},
		{"negative hours is unlimited", map[string]string{"log.retention.hours": "-1"}, map[string]string{"retention.ms": "-1"}},
		{"negative ms is unlimited", map[string]string{"log.retention.ms": "-7"}, map[string]string{"retention.ms": "-1"}},
		{"roll hours", map[string]string{"log.roll.hours": "2"}, map[string]string{"segment.ms": "7200000"}},
		{"roll ms beats hours", map[string]string{"log.roll.hours": "2", "log.roll.ms": "60000"}, map[string]string{"segment.ms": "60000"}},
		{"flush interval", map[string]string{"log.flush.interval.ms": "10", "log.flush.scheduler.interval.ms": "20"}, map[string]string{"flush.ms": "10"}},
		{"flush scheduler fallback", map[string]string{"log.flush.scheduler.interval.ms": "20"}, map[string]string{"flush.ms": "20"}},
		{"one to one", map[string]string{
			"log.cleanup.policy":                "compact",
			"log.retention.bytes":               "100",
			"log.local.retention.ms":            "10",
			"log.local.retention.bytes":         "20",
			"log.segment.bytes":                 "2048",
			"log.index.size.max.bytes":          "4096",
			"log.index.interval.bytes":          "100",
			"log.flush.interval.messages":       "1",
			"message.max.bytes":                 "1000",
			"min.insync.replicas":               "2",
			"unclean.leader.election.enable":    "True",
			"log.cleaner.delete.retention.ms":   "5",
			"log.cleaner.min.compaction.lag.ms": "6",
			"log.cleaner.max.compaction.lag.ms": "7",
			"log.cleaner.min.cleanable.ratio":   "0.25",
			"compression.type":                  "zstd",
			"log.message.timestamp.type":        "LogAppendTime",
			"log.segment.delete.delay.ms":       "8",
		}, map[string]string{
			"cleanup.policy":                 "compact",
			"retention.bytes":                "100",
			"local.retention.ms":             "10",
			"local.retention.bytes":          "20",
			"segment.bytes":                  "2048",
			"segment.index.bytes":            "4096",
			"index.interval.bytes":           "100",
			"flush.messages":                 "1",
			"max.message.bytes":              "1000",
			"min.insync.replicas":            "2",
			"unclean.leader.election.enable": "true",
			"delete.retention.ms":            "5",
			"min.compaction.lag.ms":          "6",
			"max.compaction.lag.ms":          "7",
			"min.cleanable.dirty.ratio":      "0.25",
			"compression.type":               "zstd",
			"message.timestamp.type":         "LogAppendTime",
			"file.delete.delay.ms":           "8",
		}},
		{"unknown keys ignored", map[string]string{"broker.id": "1", "listeners": "PLAINTEXT://:9092", "retention.ms": "x"}, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BrokerDefaults(tt.settings)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			// What BrokerDefaults returns is valid input to Resolve.
			if _, _, err := Resolve(nil, got); err != nil {
				t.Errorf("Resolve: %v", err)
			}
		})
	}
}

func TestBrokerDefaultsRejectsBadValues(t *testing.T) {
	tests := []struct {
		name     string
		settings map[string]string
		want     []string
	}{
		{"ill-typed hours", map[string]string{"log.retention.hours": "a week"}, []string{`invalid value "a week" for log.retention.hours: must be an integer`}},
		{"hours beyond 32 bits", map[string]string{"log.retention.hours": "3000000000"}, []string{"log.retention.hours"}},
		{"ill-typed even when shadowed", map[string]string{"log.retention.ms": "1", "log.retention.hours": "x"}, []string{"log.retention.hours"}},
		{"roll hours zero", map[string]string{"log.roll.hours": "0"}, []string{`invalid value "0" for log.roll.hours: must be at least 1 (milliseconds) once converted to segment.ms (0)`}},
		{"segment too small", map[string]string{"log.segment.bytes": "10"}, []string{`invalid value "10" for log.segment.bytes: must be between 1024`}},
		{"bad policy", map[string]string{"log.cleanup.policy": "keep"}, []string{"log.cleanup.policy"}},
		{"bad bool", map[string]string{"unclean.leader.election.enable": "maybe"}, []string{"unclean.leader.election.enable: must be true or false"}},
		{"several", map[string]string{"message.max.bytes": "big", "min.insync.replicas": "0"}, []string{"message.max.bytes", "min.insync.replicas"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BrokerDefaults(tt.settings)
			if err == nil {
				t.Fatalf("no error, got %v", got)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("%v does not match ErrInvalidConfig", err)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestValidTopicName(t *testing.T) {
	valid := []string{"a", "orders", "Orders.v2", "a_b-c.d", "...", ".a", strings.Repeat("x", 249), "0"}
	for _, name := range valid {
		if err := ValidTopicName(name); err != nil {
			t.Errorf("ValidTopicName(%q): %v", name, err)
		}
	}
	invalid := []struct {
		name, want string
	}{
		{"", "invalid topic name: empty"},
		{".", `"." and ".." are not allowed`},
		{"..", `"." and ".." are not allowed`},
		{strings.Repeat("x", 250), "250 characters, at most 249 are allowed"},
		{"a b", `character ' ' at position 1 is not allowed`},
		{"a/b", `character '/' at position 1`},
		{"tópico", `character 'ó' at position 1`},
		{"a\x00", `character '\x00' at position 1`},
		{"a:b", "only ASCII letters, digits, '.', '_' and '-'"},
	}
	for _, tt := range invalid {
		err := ValidTopicName(tt.name)
		if err == nil {
			t.Errorf("ValidTopicName(%q): no error", tt.name)
			continue
		}
		if !errors.Is(err, ErrInvalidTopicName) {
			t.Errorf("ValidTopicName(%q) = %v, not ErrInvalidTopicName", tt.name, err)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ValidTopicName(%q) = %q, want it to contain %q", tt.name, err, tt.want)
		}
	}
	if err := ValidTopicName(strings.Repeat("y", 300)); len(err.Error()) > 200 {
		t.Errorf("message for a long name is %d bytes long", len(err.Error()))
	}
}

func TestTopicNamesCollide(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"a.b", "a_b", true},
		{"a_b", "a.b", true},
		{"a.b_c", "a_b.c", true},
		{"a.b", "a.b", false}, // the same topic, not a collision
		{"a.b", "a-b", false},
		{"ab", "a_b", false},
	}
	for _, tt := range tests {
		if got := TopicNamesCollide(tt.a, tt.b); got != tt.want {
			t.Errorf("TopicNamesCollide(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"retention.msx", "retention.ms", 1}} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
