package topicconfig

import (
	"errors"
	"fmt"
)

// Resolve computes the effective configuration of a topic: for every known
// key, the topic's override if it has one, else the broker's default, else
// the built-in default. It returns the typed config and one Entry per known
// key, sorted by name, saying where each value came from.
//
// The error reports every unknown key and invalid value in overrides and
// brokerDefaults (the latter wrapped with "broker default"), and Kafka's
// rules between keys. Even with an error the returned config is usable: an
// invalid value is replaced by the next source's, and unknown keys are
// ignored. So a request handler (CreateTopics, AlterConfigs) rejects the
// request on error, while a broker loading a topic stored before the rules
// changed can log the error and serve the topic.
func Resolve(overrides, brokerDefaults map[string]string) (Topic, []Entry, error) {
	var errs []error
	for _, k := range sortedKeys(overrides) {
		if _, ok := byName[k]; !ok {
			errs = append(errs, unknownKey(k))
		}
	}
	for _, k := range sortedKeys(brokerDefaults) {
		if _, ok := byName[k]; !ok {
			errs = append(errs, fmt.Errorf("broker default: %w", unknownKey(k)))
		}
	}

	var t Topic
	entries := make([]Entry, 0, len(defs))
	values := make(map[string]string, len(defs))
	for _, d := range defs {
		entry := Entry{Name: d.name, Type: d.typ}
		if raw, ok := overrides[d.name]; ok {
			if v, reason := d.apply(&t, raw); reason == "" {
				entry.Value, entry.Source = v, SourceTopic
			} else {
				errs = append(errs, &ValueError{Key: d.name, Value: raw, Reason: reason})
			}
		}
		if raw, ok := brokerDefaults[d.name]; ok {
			// Validated even when overridden: a bad broker default is a
			// configuration error whichever topic finds it.
			var scratch Topic
			if v, reason := d.apply(&scratch, raw); reason != "" {
				errs = append(errs, fmt.Errorf("broker default: %w", &ValueError{Key: d.name, Value: raw, Reason: reason}))
			} else if entry.Source == "" {
				d.apply(&t, raw)
				entry.Value, entry.Source = v, SourceBroker
			}
		}
		if entry.Source == "" {
			// The package's tests check that every built-in default applies.
			entry.Value, _ = d.apply(&t, d.dflt)
			entry.Source = SourceDefault
		}
		values[d.name] = entry.Value
		entries = append(entries, entry)
	}
	errs = append(errs, checkConsistency(t, func(k string) string { return values[k] })...)
	return t, entries, errors.Join(errs...)
}
