package sharegroup

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The group configs of Kafka's GROUP config resource served here, with the
// broker settings that bound them.
const (
	ShareAutoOffsetReset        = "share.auto.offset.reset"
	ShareRecordLockDurationMs   = "share.record.lock.duration.ms"
	ShareSessionTimeoutMs       = "share.session.timeout.ms"
	ShareHeartbeatIntervalMs    = "share.heartbeat.interval.ms"
	ShareIsolationLevel         = "share.isolation.level"
	ConsumerSessionTimeoutMs    = "consumer.session.timeout.ms"
	ConsumerHeartbeatIntervalMs = "consumer.heartbeat.interval.ms"
)

// intKey is an int group config: its default is the broker setting Default,
// and a group's value must lie within the settings Min and Max.
type intKey struct {
	Name                    string
	Default, Min, Max       string // broker setting names
	DefaultMs, MinMs, MaxMs int    // Kafka's defaults of those settings
}

var intKeys = []intKey{
	{ShareRecordLockDurationMs, "group.share.record.lock.duration.ms", "group.share.min.record.lock.duration.ms", "group.share.max.record.lock.duration.ms", 30000, 15000, 60000},
	{ShareSessionTimeoutMs, "group.share.session.timeout.ms", "group.share.min.session.timeout.ms", "group.share.max.session.timeout.ms", 45000, 45000, 60000},
	{ShareHeartbeatIntervalMs, "group.share.heartbeat.interval.ms", "group.share.min.heartbeat.interval.ms", "group.share.max.heartbeat.interval.ms", 5000, 5000, 15000},
	{ConsumerSessionTimeoutMs, "group.consumer.session.timeout.ms", "group.consumer.min.session.timeout.ms", "group.consumer.max.session.timeout.ms", 45000, 45000, 60000},
	{ConsumerHeartbeatIntervalMs, "group.consumer.heartbeat.interval.ms", "group.consumer.min.heartbeat.interval.ms", "group.consumer.max.heartbeat.interval.ms", 5000, 5000, 15000},
}

// BrokerKeys are the broker settings this package reads.
func BrokerKeys() []string {
	keys := []string{"group.share.max.size"}
	for _, k := range intKeys {
		keys = append(keys, k.Default, k.Min, k.Max)
	}
	return keys
}

// Names are the group config names, sorted.
func Names() []string {
	names := []string{ShareAutoOffsetReset, ShareIsolationLevel}
	for _, k := range intKeys {
		names = append(names, k.Name)
	}
	slices.Sort(names)
	return names
}

// DefaultMaxSize is group.share.max.size's default, Kafka's.
const DefaultMaxSize = 200

// Bounds are the broker settings of share and consumer groups, in ms.
type Bounds struct {
	def, min, max map[string]int
	// MaxSize is group.share.max.size: members per share group.
	MaxSize int
}

// NewBounds reads the bounds from the broker settings, with Kafka's
// defaults for those unset.
func NewBounds(settings map[string]string) (Bounds, error) {
	b := Bounds{def: map[string]int{}, min: map[string]int{}, max: map[string]int{}, MaxSize: DefaultMaxSize}
	read := func(key string, def int) (int, error) {
		raw, ok := settings[key]
		if !ok {
			return def, nil
		}
		v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 32)
		if err != nil || v < 1 {
			return 0, fmt.Errorf("setting %s=%q: must be an integer from 1 to %d", key, raw, math.MaxInt32)
		}
		return int(v), nil
	}
	var err error
	if b.MaxSize, err = read("group.share.max.size", DefaultMaxSize); err != nil {
		return Bounds{}, err
	}
	for _, k := range intKeys {
		if b.def[k.Name], err = read(k.Default, k.DefaultMs); err != nil {
			return Bounds{}, err
		}
		if b.min[k.Name], err = read(k.Min, k.MinMs); err != nil {
			return Bounds{}, err
		}
		if b.max[k.Name], err = read(k.Max, k.MaxMs); err != nil {
			return Bounds{}, err
		}
		if d := b.def[k.Name]; d < b.min[k.Name] || d > b.max[k.Name] {
			return Bounds{}, fmt.Errorf("setting %s=%d: must lie within %s=%d and %s=%d", k.Default, d, k.Min, b.min[k.Name], k.Max, b.max[k.Name])
		}
	}
	return b, nil
}

// Configs are a group's effective configs: its overrides, the broker's
// defaults for the others.
type Configs struct {
	// Overrides are the group's own values (what DescribeConfigs reports
	// as set on the group).
	Overrides map[string]string
	// AutoOffsetReset is "earliest", "latest" or "by_duration", with
	// ResetDuration for the last.
	AutoOffsetReset string
	ResetDuration   time.Duration
	// IsolationLevel is "read_uncommitted" or "read_committed".
	IsolationLevel                                    string
	RecordLockDuration                                time.Duration
	SessionTimeout, HeartbeatInterval                 time.Duration
	ConsumerSessionTimeout, ConsumerHeartbeatInterval time.Duration
}

// Effective is the configs of a group with the given overrides. A stored
// value that the bounds no longer allow (the broker settings changed) is
// brought within them.
func (b Bounds) Effective(overrides map[string]string) Configs {
	c := Configs{Overrides: overrides, AutoOffsetReset: "latest", IsolationLevel: "read_uncommitted"}
	if v, ok := overrides[ShareAutoOffsetReset]; ok {
		if mode, d, err := parseAutoOffsetReset(v); err == nil {
			c.AutoOffsetReset, c.ResetDuration = mode, d
		}
	}
	if v, ok := overrides[ShareIsolationLevel]; ok && checkIsolation(v) == nil {
		c.IsolationLevel = v
	}
	ms := func(name string) time.Duration {
		v := b.def[name]
		if raw, ok := overrides[name]; ok {
			if n, err := strconv.ParseInt(raw, 10, 32); err == nil {
				v = min(max(int(n), b.min[name]), b.max[name])
			}
		}
		return time.Duration(v) * time.Millisecond
	}
	c.RecordLockDuration = ms(ShareRecordLockDurationMs)
	c.SessionTimeout = ms(ShareSessionTimeoutMs)
	c.HeartbeatInterval = ms(ShareHeartbeatIntervalMs)
	c.ConsumerSessionTimeout = ms(ConsumerSessionTimeoutMs)
	c.ConsumerHeartbeatInterval = ms(ConsumerHeartbeatIntervalMs)
	return c
}

// Value is the effective value of a config by name, and whether the group
// overrides it.
func (b Bounds) Value(overrides map[string]string, name string) (string, bool) {
	if v, ok := overrides[name]; ok {
		return v, true
	}
	switch name {
	case ShareAutoOffsetReset:
		return "latest", false
	case ShareIsolationLevel:
		return "read_uncommitted", false
	}
	return strconv.Itoa(b.def[name]), false
}

// IsInt says whether a config is an int (else a string).
func IsInt(name string) bool {
	return slices.ContainsFunc(intKeys, func(k intKey) bool { return k.Name == name })
}

// Validate checks a group's merged overrides as Kafka does: known names,
// values of their type within the broker's bounds, and each session
// timeout above its heartbeat interval.
func (b Bounds) Validate(overrides map[string]string) error {
	for name, v := range overrides {
		switch name {
		case ShareAutoOffsetReset:
			if _, _, err := parseAutoOffsetReset(v); err != nil {
				return err
			}
		case ShareIsolationLevel:
			if err := checkIsolation(v); err != nil {
				return err
			}
		default:
			i := slices.IndexFunc(intKeys, func(k intKey) bool { return k.Name == name })
			if i < 0 {
				return fmt.Errorf("unknown group config name: %s", name)
			}
			k := intKeys[i]
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
			if err != nil {
				return fmt.Errorf("invalid value %q for configuration %s: not a number of type INT", v, name)
			}
			if int(n) < b.min[name] {
				return fmt.Errorf("%s must be greater than or equal to %s (%d)", name, k.Min, b.min[name])
			}
			if int(n) > b.max[name] {
				return fmt.Errorf("%s must be less than or equal to %s (%d)", name, k.Max, b.max[name])
			}
		}
	}
	c := b.Effective(overrides)
	if c.SessionTimeout <= c.HeartbeatInterval {
		return fmt.Errorf("%s must be greater than %s", ShareSessionTimeoutMs, ShareHeartbeatIntervalMs)
	}
	if c.ConsumerSessionTimeout <= c.ConsumerHeartbeatInterval {
		return fmt.Errorf("%s must be greater than %s", ConsumerSessionTimeoutMs, ConsumerHeartbeatIntervalMs)
	}
	return nil
}

func checkIsolation(v string) error {
	if v != "read_uncommitted" && v != "read_committed" {
		return fmt.Errorf("invalid value %q for configuration %s: must be read_uncommitted or read_committed", v, ShareIsolationLevel)
	}
	return nil
}

// isoDuration is Java's Duration.parse form Kafka takes, PnDTnHnMn.nS,
// without signs (a negative duration is refused).
var isoDuration = regexp.MustCompile(`^[Pp](?:(\d{1,9})[Dd])?(?:[Tt](?:(\d{1,9})[Hh])?(?:(\d{1,9})[Mm])?(?:(\d{1,12})(?:\.(\d{1,9}))?[Ss])?)?$`)

// parseAutoOffsetReset parses share.auto.offset.reset.
func parseAutoOffsetReset(v string) (string, time.Duration, error) {
	switch v {
	case "earliest", "latest":
		return v, 0, nil
	}
	spec, ok := strings.CutPrefix(v, "by_duration:")
	if !ok {
		return "", 0, fmt.Errorf("invalid value %q for configuration %s: must be latest, earliest or by_duration:PnDTnHnMn.nS", v, ShareAutoOffsetReset)
	}
	m := isoDuration.FindStringSubmatch(spec)
	if m == nil || strings.HasSuffix(strings.ToUpper(spec), "T") || spec == "P" || spec == "p" {
		return "", 0, fmt.Errorf("invalid value %q for configuration %s: %q is not an ISO-8601 duration (PnDTnHnMn.nS, not negative)", v, ShareAutoOffsetReset, spec)
	}
	var d time.Duration
	for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute, time.Second} {
		if m[i+1] != "" {
			n, _ := strconv.ParseInt(m[i+1], 10, 64)
			if n > int64(math.MaxInt64/unit) {
				return "", 0, fmt.Errorf("invalid value %q for configuration %s: duration too long", v, ShareAutoOffsetReset)
			}
			d += time.Duration(n) * unit
		}
	}
	if m[5] != "" {
		frac := m[5] + strings.Repeat("0", 9-len(m[5]))
		n, _ := strconv.ParseInt(frac, 10, 64)
		d += time.Duration(n)
	}
	if d < 0 {
		return "", 0, fmt.Errorf("invalid value %q for configuration %s: duration too long", v, ShareAutoOffsetReset)
	}
	return "by_duration", d, nil
}
