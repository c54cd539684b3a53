package topicconfig

import (
	"errors"
	"strconv"
	"strings"
	"unicode"
)

// brokerMapping is a topic key and the broker settings that give its
// default, highest precedence first.
type brokerMapping struct {
	topicKey   string
	brokerKeys []string
	// convert turns the value of brokerKeys[i] into a topic value, or
	// returns the reason it is invalid. nil: taken as is.
	convert func(i int, raw string) (string, string)
}

// brokerMappings are Kafka's broker settings that provide topic defaults
// (Kafka's LogConfig synonyms).
var brokerMappings = []brokerMapping{
	{topicKey: "cleanup.policy", brokerKeys: []string{"log.cleanup.policy"}},
	{topicKey: "compression.type", brokerKeys: []string{"compression.type"}},
	{topicKey: "delete.retention.ms", brokerKeys: []string{"log.cleaner.delete.retention.ms"}},
	{topicKey: "file.delete.delay.ms", brokerKeys: []string{"log.segment.delete.delay.ms"}},
	{topicKey: "flush.messages", brokerKeys: []string{"log.flush.interval.messages"}},
	// Unset log.flush.interval.ms falls back to log.flush.scheduler.interval.ms.
	{topicKey: "flush.ms", brokerKeys: []string{"log.flush.interval.ms", "log.flush.scheduler.interval.ms"}},
	{topicKey: "index.interval.bytes", brokerKeys: []string{"log.index.interval.bytes"}},
	{topicKey: "local.retention.bytes", brokerKeys: []string{"log.local.retention.bytes"}},
	{topicKey: "local.retention.ms", brokerKeys: []string{"log.local.retention.ms"}},
	{topicKey: "max.compaction.lag.ms", brokerKeys: []string{"log.cleaner.max.compaction.lag.ms"}},
	{topicKey: "max.message.bytes", brokerKeys: []string{"message.max.bytes"}},
	{topicKey: "message.timestamp.type", brokerKeys: []string{"log.message.timestamp.type"}},
	{topicKey: "min.cleanable.dirty.ratio", brokerKeys: []string{"log.cleaner.min.cleanable.ratio"}},
	{topicKey: "min.compaction.lag.ms", brokerKeys: []string{"log.cleaner.min.compaction.lag.ms"}},
	{topicKey: "min.insync.replicas", brokerKeys: []string{"min.insync.replicas"}},
	{topicKey: "retention.bytes", brokerKeys: []string{"log.retention.bytes"}},
	{
		topicKey:   "retention.ms",
		brokerKeys: []string{"log.retention.ms", "log.retention.minutes", "log.retention.hours"},
		// As Kafka: any negative retention means unlimited (-1).
		convert: timeConverter([]int64{1, 60_000, 3_600_000}, true),
	},
	{
		topicKey:   "segment.ms",
		brokerKeys: []string{"log.roll.ms", "log.roll.hours"},
		convert:    timeConverter([]int64{1, 3_600_000}, false),
	},
	{topicKey: "segment.bytes", brokerKeys: []string{"log.segment.bytes"}},
	{topicKey: "segment.index.bytes", brokerKeys: []string{"log.index.size.max.bytes"}},
	{topicKey: "unclean.leader.election.enable", brokerKeys: []string{"unclean.leader.election.enable"}},
}

// timeConverter converts brokerKeys[i] by multiplying by factors[i]; keys
// after the first (minutes, hours) are 32-bit in Kafka.
func timeConverter(factors []int64, negativeIsUnlimited bool) func(int, string) (string, string) {
	return func(i int, raw string) (string, string) {
		bits := 64
		if i > 0 {
			bits = 32
		}
		v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, bits)
		if err != nil {
			return "", "must be an integer"
		}
		v *= factors[i] // a 32-bit count of hours times 3.6e6 fits 64 bits
		if negativeIsUnlimited && v < 0 {
			v = -1
		}
		return strconv.FormatInt(v, 10), ""
	}
}

// BrokerDefaults turns broker settings (Kafka's server.properties keys) into
// the topic defaults they imply, keyed by topic config key, the way Kafka
// does: log.retention.ms over log.retention.minutes over log.retention.hours
// for retention.ms, log.roll.ms over log.roll.hours for segment.ms,
// log.segment.bytes for segment.bytes, and so on. Settings it does not know
// are ignored; an ill-typed or out-of-range value of one it knows is an error
// naming the broker key (all of them, joined), even when a setting of higher
// precedence makes it moot. Keys without a setting are left out: Resolve
// falls back to the built-in default.
func BrokerDefaults(brokerSettings map[string]string) (map[string]string, error) {
	out := map[string]string{}
	var errs []error
	for _, m := range brokerMappings {
		d := byName[m.topicKey]
		chosen := false
		for i, bk := range m.brokerKeys {
			raw, ok := brokerSettings[bk]
			if !ok {
				continue
			}
			v := raw
			if m.convert != nil {
				var reason string
				if v, reason = m.convert(i, raw); reason != "" {
					errs = append(errs, &ValueError{Key: bk, Value: raw, Reason: reason})
					continue
				}
			}
			var scratch Topic
			norm, reason := d.apply(&scratch, v)
			if reason != "" {
				if m.convert != nil && i > 0 { // minutes or hours
					reason += " once converted to " + m.topicKey + " (" + v + ")"
				}
				errs = append(errs, &ValueError{Key: bk, Value: raw, Reason: reason})
				continue
			}
			if !chosen {
				out[m.topicKey] = norm
				chosen = true
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// AutoCreateTopics reads auto.create.topics.enable: whether Metadata creates
// a topic a client asks for that does not exist. Kafka's default is true;
// here it is false, so that a client naming topics cannot make a broker
// create them (`strata dev` turns it on).
func AutoCreateTopics(brokerSettings map[string]string) (bool, error) {
	raw, ok := brokerSettings["auto.create.topics.enable"]
	if !ok {
		return false, nil
	}
	v, err := strconv.ParseBool(strings.TrimSpace(raw))
	if err != nil {
		return false, &ValueError{Key: "auto.create.topics.enable", Value: raw, Reason: "must be true or false"}
	}
	return v, nil
}

// BrokerRack reads broker.rack, where the broker runs (a rack, a zone):
// at most 255 printable characters, empty when unset, as Kafka's.
func BrokerRack(brokerSettings map[string]string) (string, error) {
	raw := brokerSettings["broker.rack"]
	rack := strings.TrimSpace(raw)
	switch {
	case len(rack) > 255:
		return "", &ValueError{Key: "broker.rack", Value: raw, Reason: "at most 255 characters"}
	case strings.IndexFunc(rack, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return "", &ValueError{Key: "broker.rack", Value: raw, Reason: "printable characters only"}
	}
	return rack, nil
}

// RackAwareReplicaSelector is the replica.selector.class value that turns
// on follower fetching (KIP-392): a leader sends a consumer that names its
// rack to an in-sync replica in that rack.
const RackAwareReplicaSelector = "org.apache.kafka.common.replica.RackAwareReplicaSelector"

// ReplicaSelectorRackAware reads replica.selector.class: true for
// RackAwareReplicaSelector. Unset (Kafka's default, which leaves every
// consumer on the leader), empty or Kafka's LeaderSelector is false; any
// other class names a selector Strata does not have and is refused rather
// than silently treated as one of these.
func ReplicaSelectorRackAware(brokerSettings map[string]string) (bool, error) {
	const key = "replica.selector.class"
	switch raw := brokerSettings[key]; strings.TrimSpace(raw) {
	case "", "org.apache.kafka.common.replica.LeaderSelector":
		return false, nil
	case RackAwareReplicaSelector:
		return true, nil
	default:
		return false, &ValueError{Key: key, Value: raw,
			Reason: "the selectors are " + RackAwareReplicaSelector + " and org.apache.kafka.common.replica.LeaderSelector"}
	}
}

// SocketRequestMaxBytes reads socket.request.max.bytes: the largest request
// a client may send; a larger one closes its connection. Kafka's default is
// 100 MiB.
func SocketRequestMaxBytes(brokerSettings map[string]string) (int32, error) {
	const key = "socket.request.max.bytes"
	raw, ok := brokerSettings[key]
	if !ok {
		return 100 << 20, nil
	}
	v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 32)
	if err != nil || v < 1024 {
		return 0, &ValueError{Key: key, Value: raw, Reason: "must be an integer from 1024 to 2147483647"}
	}
	return int32(v), nil
}
