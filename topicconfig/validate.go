package topicconfig

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ErrInvalidConfig matches (errors.Is) every *UnknownKeyError and
// *ValueError, for callers that map them to Kafka's INVALID_CONFIG.
var ErrInvalidConfig = errors.New("invalid topic config")

// UnknownKeyError is a topic config key Strata does not know.
type UnknownKeyError struct {
	Key         string
	Suggestions []string // known keys close to Key, best first
}

func (e *UnknownKeyError) Error() string {
	msg := fmt.Sprintf("unknown topic config %q", e.Key)
	switch n := len(e.Suggestions); n {
	case 0:
	case 1:
		msg += " (did you mean " + e.Suggestions[0] + "?)"
	default:
		msg += " (did you mean " + strings.Join(e.Suggestions[:n-1], ", ") + " or " + e.Suggestions[n-1] + "?)"
	}
	return msg
}

func (e *UnknownKeyError) Is(target error) bool { return target == ErrInvalidConfig }

// ValueError is a value a key does not accept.
type ValueError struct {
	Key    string
	Value  string
	Reason string // "must be ..."
}

func (e *ValueError) Error() string {
	if IsSensitiveBrokerKey(e.Key) {
		// The value may be a secret: an error ends up in logs.
		return fmt.Sprintf("invalid value for %s: %s", e.Key, e.Reason)
	}
	return fmt.Sprintf("invalid value %q for %s: %s", e.Value, e.Key, e.Reason)
}

func (e *ValueError) Is(target error) bool { return target == ErrInvalidConfig }

// ValidateOverrides checks a topic's overrides key by key: every key must be
// known and every value of the key's type and in its range. It reports all
// problems at once (errors.Join of *UnknownKeyError and *ValueError, in key
// order). Rules between keys (min.compaction.lag.ms <= max.compaction.lag.ms,
// local retention within total retention) depend on the broker's defaults
// too and are checked by Resolve; validate a CreateTopics or AlterConfigs
// request with Resolve(overrides, brokerDefaults).
func ValidateOverrides(overrides map[string]string) error {
	var errs []error
	var scratch Topic
	for _, k := range sortedKeys(overrides) {
		d, ok := byName[k]
		if !ok {
			errs = append(errs, unknownKey(k))
			continue
		}
		if _, reason := d.apply(&scratch, overrides[k]); reason != "" {
			errs = append(errs, &ValueError{Key: k, Value: overrides[k], Reason: reason})
		}
	}
	return errors.Join(errs...)
}

func unknownKey(key string) *UnknownKeyError {
	return &UnknownKeyError{Key: key, Suggestions: suggest(key)}
}

// suggest returns known keys the user may have meant by key: the topic keys
// a broker setting of that name maps to, and keys within a small edit
// distance (ignoring case), best first, at most three.
func suggest(key string) []string {
	var out []string
	for _, m := range brokerMappings {
		if slices.Contains(m.brokerKeys, key) && !slices.Contains(out, m.topicKey) {
			out = append(out, m.topicKey)
		}
	}
	lower := strings.ToLower(key)
	maxDist := max(2, len(key)/6)
	type cand struct {
		name string
		dist int
	}
	var cands []cand
	for _, d := range defs {
		if dist := editDistance(lower, d.name); dist <= maxDist && !slices.Contains(out, d.name) {
			cands = append(cands, cand{d.name, dist})
		}
	}
	slices.SortStableFunc(cands, func(a, b cand) int { return a.dist - b.dist })
	for _, c := range cands {
		out = append(out, c.name)
	}
	if len(out) > 3 {
		out = out[:3]
	}
	return out
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// checkConsistency applies Kafka's rules between keys to an effective
// config; value returns a key's effective value, for messages.
func checkConsistency(t Topic, value func(string) string) []error {
	var errs []error
	if t.MinCompactionLagMs > t.MaxCompactionLagMs {
		errs = append(errs, &ValueError{
			Key: "min.compaction.lag.ms", Value: value("min.compaction.lag.ms"),
			Reason: "must not be greater than max.compaction.lag.ms (" + value("max.compaction.lag.ms") + ")",
		})
	}
	// As Kafka: with tiered storage on and a finite total retention, the
	// local retention must be within it (or -2, "same as the total").
	if t.RemoteStorageEnable {
		errs = append(errs, checkLocalRetention(t.RetentionMs, t.LocalRetentionMs, "ms")...)
		errs = append(errs, checkLocalRetention(t.RetentionBytes, t.LocalRetentionBytes, "bytes")...)
	}
	return errs
}

func checkLocalRetention(total, local int64, unit string) []error {
	if total == -1 || local == -2 {
		return nil
	}
	key := "local.retention." + unit
	switch {
	case local == -1:
		return []error{&ValueError{Key: key, Value: "-1",
			Reason: fmt.Sprintf("must not be -1 (unlimited) while retention.%s is %d", unit, total)}}
	case local > total:
		return []error{&ValueError{Key: key, Value: strconv.FormatInt(local, 10),
			Reason: fmt.Sprintf("must not be greater than retention.%s (%d)", unit, total)}}
	}
	return nil
}
