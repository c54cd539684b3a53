// Package config knows Kafka's topic-level configuration: the keys Strata
// accepts, their types, defaults and valid ranges, how broker-level settings
// become topic defaults, and how the effective value of every key is
// resolved (topic override > broker default > built-in default).
//
// Values are strings, as Kafka's protocol carries them. Names, types,
// defaults and ranges are Kafka's, with three deliberate differences:
// segment.bytes may be as small as 1024 bytes here, while the broker holds
// what clients set to Kafka's 1 MiB unless its log.segment.min.bytes lowers
// that for tests (see SegmentMinBytes); retention.bytes must be >= -1 (Kafka takes any
// number and treats negatives as unlimited); and cleanup.policy must name at
// least one policy (an empty list would silently disable all cleanup).
// Keys Strata does not implement are unknown, and rejected.
package topicconfig

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Source says where an effective value came from.
type Source string

const (
	SourceTopic   Source = "topic"   // the topic's own override
	SourceBroker  Source = "broker"  // the broker's default for the key
	SourceDefault Source = "default" // the built-in default
)

// Type is a config's value type, named as Kafka's DescribeConfigs names them.
type Type string

const (
	TypeBoolean Type = "BOOLEAN"
	TypeString  Type = "STRING"
	TypeInt     Type = "INT"
	TypeLong    Type = "LONG"
	TypeDouble  Type = "DOUBLE"
	TypeList    Type = "LIST"
)

// Entry is one key's effective value.
type Entry struct {
	Name   string
	Value  string // normalized: "true", "1000", "compact,delete"
	Source Source
	Type   Type
}

// Cleanup policies (values of cleanup.policy).
const (
	CleanupCompact = "compact"
	CleanupDelete  = "delete"
)

// Topic is the typed effective configuration of a topic.
type Topic struct {
	CleanupPolicy               []string // cleanup.policy: "delete", "compact" or both, in that canonical order: compact, delete
	RetentionMs                 int64    // retention.ms; -1 unlimited
	RetentionBytes              int64    // retention.bytes; -1 unlimited
	LocalRetentionMs            int64    // local.retention.ms; -2 means retention.ms (see EffectiveLocalRetentionMs)
	LocalRetentionBytes         int64    // local.retention.bytes; -2 means retention.bytes
	RemoteStorageEnable         bool     // remote.storage.enable
	SegmentBytes                int64    // segment.bytes
	SegmentMs                   int64    // segment.ms
	SegmentIndexBytes           int64    // segment.index.bytes
	IndexIntervalBytes          int64    // index.interval.bytes
	FlushMessages               int64    // flush.messages
	FlushMs                     int64    // flush.ms
	MaxMessageBytes             int64    // max.message.bytes
	MinInsyncReplicas           int64    // min.insync.replicas
	UncleanLeaderElectionEnable bool     // unclean.leader.election.enable
	DeleteRetentionMs           int64    // delete.retention.ms
	MinCompactionLagMs          int64    // min.compaction.lag.ms
	MaxCompactionLagMs          int64    // max.compaction.lag.ms
	MinCleanableDirtyRatio      float64  // min.cleanable.dirty.ratio, in [0,1]
	CompressionType             string   // compression.type: uncompressed, gzip, snappy, lz4, zstd or producer
	MessageTimestampType        string   // message.timestamp.type: CreateTime or LogAppendTime
	FileDeleteDelayMs           int64    // file.delete.delay.ms
}

// CompactEnabled reports whether cleanup.policy includes compact.
func (t Topic) CompactEnabled() bool { return slices.Contains(t.CleanupPolicy, CleanupCompact) }

// DeleteEnabled reports whether cleanup.policy includes delete (retention).
func (t Topic) DeleteEnabled() bool { return slices.Contains(t.CleanupPolicy, CleanupDelete) }

// EffectiveLocalRetentionMs is how long data stays on local disk: local.retention.ms,
// or retention.ms when it is -2. -1 is unlimited.
func (t Topic) EffectiveLocalRetentionMs() int64 {
	if t.LocalRetentionMs == -2 {
		return t.RetentionMs
	}
	return t.LocalRetentionMs
}

// EffectiveLocalRetentionBytes is how much data a partition keeps on local
// disk: local.retention.bytes, or retention.bytes when it is -2. -1 is
// unlimited.
func (t Topic) EffectiveLocalRetentionBytes() int64 {
	if t.LocalRetentionBytes == -2 {
		return t.RetentionBytes
	}
	return t.LocalRetentionBytes
}

// def describes one topic config key.
type def struct {
	name string
	typ  Type
	dflt string
	// apply parses raw, checks its range and stores it in t; it returns the
	// normalized value, or the reason the value is invalid ("must be ...").
	apply func(t *Topic, raw string) (string, string)
}

// defs is every topic config key Strata knows, sorted by name.
var defs = []def{
	listDef("cleanup.policy", CleanupDelete, []string{CleanupCompact, CleanupDelete}, func(t *Topic) *[]string { return &t.CleanupPolicy }),
	enumDef("compression.type", "producer", []string{"uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"}, func(t *Topic) *string { return &t.CompressionType }),
	longDef("delete.retention.ms", 86400000, 0, math.MaxInt64, "milliseconds", func(t *Topic) *int64 { return &t.DeleteRetentionMs }),
	longDef("file.delete.delay.ms", 60000, 0, math.MaxInt64, "milliseconds", func(t *Topic) *int64 { return &t.FileDeleteDelayMs }),
	longDef("flush.messages", math.MaxInt64, 1, math.MaxInt64, "messages between fsyncs", func(t *Topic) *int64 { return &t.FlushMessages }),
	longDef("flush.ms", math.MaxInt64, 0, math.MaxInt64, "milliseconds between fsyncs", func(t *Topic) *int64 { return &t.FlushMs }),
	intDef("index.interval.bytes", 4096, 0, "bytes", func(t *Topic) *int64 { return &t.IndexIntervalBytes }),
	longDef("local.retention.bytes", -2, -2, math.MaxInt64, "bytes, -1 for unlimited, -2 to use retention.bytes", func(t *Topic) *int64 { return &t.LocalRetentionBytes }),
	longDef("local.retention.ms", -2, -2, math.MaxInt64, "milliseconds, -1 for unlimited, -2 to use retention.ms", func(t *Topic) *int64 { return &t.LocalRetentionMs }),
	longDef("max.compaction.lag.ms", math.MaxInt64, 1, math.MaxInt64, "milliseconds", func(t *Topic) *int64 { return &t.MaxCompactionLagMs }),
	intDef("max.message.bytes", 1048588, 0, "bytes", func(t *Topic) *int64 { return &t.MaxMessageBytes }),
	enumDef("message.timestamp.type", "CreateTime", []string{"CreateTime", "LogAppendTime"}, func(t *Topic) *string { return &t.MessageTimestampType }),
	doubleDef("min.cleanable.dirty.ratio", 0.5, 0, 1, func(t *Topic) *float64 { return &t.MinCleanableDirtyRatio }),
	longDef("min.compaction.lag.ms", 0, 0, math.MaxInt64, "milliseconds", func(t *Topic) *int64 { return &t.MinCompactionLagMs }),
	intDef("min.insync.replicas", 1, 1, "replicas", func(t *Topic) *int64 { return &t.MinInsyncReplicas }),
	boolDef("remote.storage.enable", false, func(t *Topic) *bool { return &t.RemoteStorageEnable }),
	longDef("retention.bytes", -1, -1, math.MaxInt64, "bytes, -1 for unlimited", func(t *Topic) *int64 { return &t.RetentionBytes }),
	longDef("retention.ms", 604800000, -1, math.MaxInt64, "milliseconds, -1 for unlimited", func(t *Topic) *int64 { return &t.RetentionMs }),
	intDef("segment.bytes", 1073741824, segmentBytesFloor, "bytes", func(t *Topic) *int64 { return &t.SegmentBytes }),
	intDef("segment.index.bytes", 10485760, 4, "bytes", func(t *Topic) *int64 { return &t.SegmentIndexBytes }),
	longDef("segment.ms", 604800000, 1, math.MaxInt64, "milliseconds", func(t *Topic) *int64 { return &t.SegmentMs }),
	boolDef("unclean.leader.election.enable", false, func(t *Topic) *bool { return &t.UncleanLeaderElectionEnable }),
}

// byName indexes defs.
var byName = func() map[string]*def {
	m := make(map[string]*def, len(defs))
	for i := range defs {
		m[defs[i].name] = &defs[i]
	}
	return m
}()

// Names returns the known topic config keys, sorted.
func Names() []string {
	names := make([]string, len(defs))
	for i, d := range defs {
		names[i] = d.name
	}
	slices.Sort(names)
	return names
}

// Defaults returns the built-in default of every known key.
func Defaults() map[string]string {
	m := make(map[string]string, len(defs))
	for _, d := range defs {
		m[d.name] = d.dflt
	}
	return m
}

func rangeReason(min, max int64, hint string) string {
	r := fmt.Sprintf("must be between %d and %d", min, max)
	if max == math.MaxInt64 {
		r = fmt.Sprintf("must be at least %d", min)
	}
	if hint != "" {
		r += " (" + hint + ")"
	}
	return r
}

func integerReason(hint string) string {
	if hint == "" {
		return "must be an integer"
	}
	return "must be an integer (" + hint + ")"
}

func longDef(name string, dflt, min, max int64, hint string, field func(*Topic) *int64) def {
	return numberDef(name, TypeLong, 64, dflt, min, max, hint, field)
}

// intDef is a key Kafka types as INT: it must fit 32 bits.
func intDef(name string, dflt, min int64, hint string, field func(*Topic) *int64) def {
	return numberDef(name, TypeInt, 32, dflt, min, math.MaxInt32, hint, field)
}

func numberDef(name string, typ Type, bits int, dflt, min, max int64, hint string, field func(*Topic) *int64) def {
	return def{
		name: name,
		typ:  typ,
		dflt: strconv.FormatInt(dflt, 10),
		apply: func(t *Topic, raw string) (string, string) {
			v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, bits)
			if err != nil {
				if errors.Is(err, strconv.ErrRange) {
					return "", rangeReason(min, max, hint)
				}
				return "", integerReason(hint)
			}
			if v < min || v > max {
				return "", rangeReason(min, max, hint)
			}
			*field(t) = v
			return strconv.FormatInt(v, 10), ""
		},
	}
}

func doubleDef(name string, dflt, min, max float64, field func(*Topic) *float64) def {
	reason := fmt.Sprintf("must be a number between %g and %g", min, max)
	return def{
		name: name,
		typ:  TypeDouble,
		dflt: strconv.FormatFloat(dflt, 'g', -1, 64),
		apply: func(t *Topic, raw string) (string, string) {
			v, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
			if err != nil || math.IsNaN(v) || v < min || v > max {
				return "", reason
			}
			*field(t) = v
			return strconv.FormatFloat(v, 'g', -1, 64), ""
		},
	}
}

// boolDef accepts true and false in any case, as Kafka does.
func boolDef(name string, dflt bool, field func(*Topic) *bool) def {
	return def{
		name: name,
		typ:  TypeBoolean,
		dflt: strconv.FormatBool(dflt),
		apply: func(t *Topic, raw string) (string, string) {
			switch v := strings.TrimSpace(raw); {
			case strings.EqualFold(v, "true"):
				*field(t) = true
				return "true", ""
			case strings.EqualFold(v, "false"):
				*field(t) = false
				return "false", ""
			}
			return "", "must be true or false"
		},
	}
}

// enumDef is a string key with a fixed set of values, matched exactly as
// Kafka does.
func enumDef(name, dflt string, values []string, field func(*Topic) *string) def {
	reason := "must be one of " + strings.Join(values, ", ")
	return def{
		name: name,
		typ:  TypeString,
		dflt: dflt,
		apply: func(t *Topic, raw string) (string, string) {
			v := strings.TrimSpace(raw)
			if !slices.Contains(values, v) {
				return "", reason
			}
			*field(t) = v
			return v, ""
		},
	}
}

// listDef is a comma-separated list of distinct values from a fixed set, at
// least one. The normalized form lists them in the order of values.
func listDef(name, dflt string, values []string, field func(*Topic) *[]string) def {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = strconv.Quote(v)
	}
	reason := "must be a comma-separated list of " + strings.Join(quoted, " and ") + ", each at most once"
	return def{
		name: name,
		typ:  TypeList,
		dflt: dflt,
		apply: func(t *Topic, raw string) (string, string) {
			seen := map[string]bool{}
			for item := range strings.SplitSeq(raw, ",") {
				item = strings.TrimSpace(item)
				if !slices.Contains(values, item) || seen[item] {
					return "", reason
				}
				seen[item] = true
			}
			var list []string
			for _, v := range values {
				if seen[v] {
					list = append(list, v)
				}
			}
			*field(t) = list
			return strings.Join(list, ","), ""
		},
	}
}

// sortedKeys returns m's keys, sorted.
func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
