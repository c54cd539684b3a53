package topicconfig

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// brokerReadKeys are the broker settings some reader takes, besides the
// topic defaults of brokerMappings. A reader of a new key must add it here,
// or CheckBrokerKeys refuses the key at startup.
var brokerReadKeys = []string{
	// Kafka listener (kafkalistener.go, bounds.go, broker.go).
	"auto.create.topics.enable",
	"connections.max.idle.ms",
	"max.connections",
	"max.connections.per.ip",
	FetchSessionCacheSlotsKey,
	"queued.max.request.bytes",
	"socket.request.max.bytes",
	"socket.request.max.bytes.non.produce",
	"socket.request.timeout.ms",
	// Growth and limits (growth.go, groups.go, producers.go, offline.go).
	AutoCreateMaxPerRequestKey,
	MaxPartitionsKey,
	SegmentMinBytesKey,
	SegmentOpenFilesMaxKey,
	"group.max.size",
	// Share and consumer group bounds (broker/sharegroup/config.go).
	"group.share.max.size",
	"group.share.record.lock.duration.ms",
	"group.share.min.record.lock.duration.ms",
	"group.share.max.record.lock.duration.ms",
	"group.share.session.timeout.ms",
	"group.share.min.session.timeout.ms",
	"group.share.max.session.timeout.ms",
	"group.share.heartbeat.interval.ms",
	"group.share.min.heartbeat.interval.ms",
	"group.share.max.heartbeat.interval.ms",
	"group.consumer.session.timeout.ms",
	"group.consumer.min.session.timeout.ms",
	"group.consumer.max.session.timeout.ms",
	"group.consumer.heartbeat.interval.ms",
	"group.consumer.min.heartbeat.interval.ms",
	"group.consumer.max.heartbeat.interval.ms",
	"log.dir.failure.retry.ms",
	"offset.metadata.max.bytes",
	"producer.state.max.entries",
	// The broker core (package broker).
	"default.replication.factor",
	"group.consumer.assignors",
	"group.consumer.heartbeat.interval.ms",
	"group.consumer.session.timeout.ms",
	"group.initial.rebalance.delay.ms",
	"group.max.session.timeout.ms",
	"group.min.session.timeout.ms",
	"log.cleaner.backoff.ms",
	"log.cleaner.dedupe.buffer.size",
	"log.cleaner.enable",
	"log.cleaner.io.max.bytes.per.second",
	"log.retention.check.interval.ms",
	"num.partitions",
	"offsets.retention.minutes",
	"offsets.topic.num.partitions",
	"producer.id.expiration.ms",
	"remote.log.manager.task.interval.ms",
	"replica.lag.time.max.ms",
	// Replication throttle (replication.go).
	FollowerReplicationThrottledRateKey,
	LeaderReplicationThrottledRateKey,
	// TLS of the Kafka listener and, prefixed grpc., of the gRPC port
	// (ssl.go). The password and inline-PEM keys are read only to be
	// refused with a reason.
	"ssl.client.auth",
	"ssl.key.password",
	"ssl.keystore.certificate.chain",
	"ssl.keystore.key",
	"ssl.keystore.location",
	"ssl.keystore.password",
	"ssl.keystore.type",
	"ssl.principal.mapping.rules",
	"ssl.truststore.certificates",
	"ssl.truststore.location",
	"ssl.truststore.password",
	"ssl.truststore.type",
	"grpc.ssl.client.auth",
	"grpc.ssl.key.password",
	"grpc.ssl.keystore.certificate.chain",
	"grpc.ssl.keystore.key",
	"grpc.ssl.keystore.location",
	"grpc.ssl.keystore.password",
	"grpc.ssl.keystore.type",
	"grpc.ssl.principal.mapping.rules",
	"grpc.ssl.truststore.certificates",
	"grpc.ssl.truststore.location",
	"grpc.ssl.truststore.password",
	"grpc.ssl.truststore.type",
	// The gRPC port's server reflection (grpcreflection.go).
	GRPCReflectionEnableKey,
	// OAUTHBEARER token validation (oauthbearer.go).
	OAuthBearerClockSkewKey,
	OAuthBearerExpectedAudienceKey,
	OAuthBearerExpectedIssuerKey,
	OAuthBearerJWKSRefreshKey,
	OAuthBearerJWKSRetryBackoffKey,
	OAuthBearerJWKSRetryBackoffMaxKey,
	OAuthBearerJWKSURLKey,
	OAuthBearerPublicKeyLocationKey,
	OAuthBearerScopeClaimNameKey,
	OAuthBearerSubClaimNameKey,
	OAuthBearerUnsecuredKey,
	// SASL listeners (sasl.go).
	"connection.failed.authentication.delay.ms",
	"connections.max.reauth.ms",
	"sasl.enabled.mechanisms",
	"sasl.server.max.receive.size",
	// Named Kafka listeners (listeners.go); a listener's own ssl.* keys,
	// listener.name.<name>.ssl.*, are accepted by isListenerKey.
	AdvertisedListenersKey,
	ListenerSecurityProtocolMapKey,
	ListenersKey,
	// The controller's leader balancing (leaders.go).
	AutoLeaderRebalanceEnableKey,
	LeaderImbalanceCheckIntervalKey,
	LeaderImbalancePerBrokerPercentKey,
	// Where the broker runs, and who serves consumers in its rack (broker.go).
	"broker.rack",
	"replica.selector.class",
	// The transaction coordinator (transactions.go).
	TransactionMaxTimeoutKey,
	TransactionalIDExpirationKey,
	// Logs opened at once (recovery.go).
	RecoveryThreadsKey,
	// Share partitions (shares.go).
	ShareDeliveryCountLimitKey,
	ShareMaxSessionsKey,
	SharePartitionMaxLocksKey,
	ShareRecordLockDurationKey,
	// Authorization (authorizer.go).
	"allow.everyone.if.no.acl.found",
	"authorizer.class.name",
	"super.users",
}

// IgnoredBrokerKeys are Kafka broker settings Strata accepts and does not
// read, because Kafka's own tooling and copied server.properties files
// commonly set them and they have nothing to configure here: thread and
// socket-buffer counts (the Go scheduler and the kernel size these), the
// internal topics' replication (group offsets and transaction state live in
// etcd). Any other key a broker does not read is refused at
// startup.
var IgnoredBrokerKeys = []string{
	"background.threads",
	"num.io.threads",
	"num.network.threads",
	"num.replica.fetchers",
	"offsets.topic.replication.factor",
	"socket.receive.buffer.bytes",
	"socket.send.buffer.bytes",
	"transaction.state.log.min.isr",
	"transaction.state.log.replication.factor",
}

// flagKeys are Kafka broker settings whose job a command-line flag does in
// Strata; the refusal names the flag.
var flagKeys = map[string]string{
	"broker.id":         "--node-id",
	"log.dir":           "--data-dir",
	"log.dirs":          "--data-dir",
	"node.id":           "--node-id",
	"zookeeper.connect": "--etcd-endpoints",
}

// UnknownBrokerKeyError is a broker setting no part of Strata reads and
// IgnoredBrokerKeys does not list. It is refused rather than kept: a
// misspelt key would leave its setting silently at the default, and a key
// kept verbatim would be shown to anyone who describes the broker.
type UnknownBrokerKeyError struct {
	Key string
	// Hint says what to use instead, when something is close: a flag, or
	// known keys.
	Hint string
}

func (e *UnknownBrokerKeyError) Error() string {
	msg := fmt.Sprintf("unknown broker setting %q", e.Key)
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

// CheckBrokerKeys refuses every key of brokerSettings that Strata neither
// reads nor lists in IgnoredBrokerKeys (errors.Join of
// *UnknownBrokerKeyError, in key order). Values are not checked here: each
// reader checks its own.
func CheckBrokerKeys(brokerSettings map[string]string) error {
	keys := make([]string, 0, len(brokerSettings))
	for k := range brokerSettings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var errs []error
	for _, k := range keys {
		if !IsBrokerKey(k) {
			errs = append(errs, &UnknownBrokerKeyError{Key: k, Hint: brokerKeyHint(k)})
		}
	}
	return errors.Join(errs...)
}

// IsBrokerKey reports whether a broker accepts key as a setting: it reads
// it, or ignores it on purpose (IgnoredBrokerKeys).
func IsBrokerKey(key string) bool {
	return slices.Contains(brokerReadKeys, key) || slices.Contains(IgnoredBrokerKeys, key) || isMappedBrokerKey(key) ||
		isListenerKey(key)
}

func isMappedBrokerKey(key string) bool {
	for _, m := range brokerMappings {
		if slices.Contains(m.brokerKeys, key) {
			return true
		}
	}
	return false
}

// brokerKeyHint points from an unknown key to what was likely meant: the
// flag that does its job, the broker settings that give a topic key's
// default (a topic key is a common slip), or known keys close in spelling.
func brokerKeyHint(key string) string {
	if flag, ok := flagKeys[key]; ok {
		return "set by the flag " + flag
	}
	var near []string
	for _, m := range brokerMappings {
		if m.topicKey == key {
			near = append(near, m.brokerKeys[0])
		}
	}
	if len(near) == 0 {
		lower := strings.ToLower(key)
		maxDist := max(2, len(key)/6)
		known := slices.Concat(brokerReadKeys, IgnoredBrokerKeys)
		for _, m := range brokerMappings {
			known = append(known, m.brokerKeys...)
		}
		slices.Sort(known)
		for _, k := range known {
			if editDistance(lower, k) <= maxDist {
				near = append(near, k)
			}
		}
	}
	if len(near) == 0 {
		return ""
	}
	return "did you mean " + strings.Join(near, " or ") + "?"
}

// sensitiveSuffixes end the names of Kafka's PASSWORD-type settings, also
// under a listener.name.<listener>. prefix.
var sensitiveSuffixes = []string{
	".password",
	".secret",
	".secret.key",
	".master.key",
	"sasl.jaas.config",
	"ssl.keystore.key",
	"ssl.keystore.certificate.chain",
	"ssl.truststore.certificates",
}

// IsSensitiveBrokerKey reports whether a broker setting holds a secret, as
// Kafka's PASSWORD type does: its value is never shown (DescribeConfigs
// returns it as null with IsSensitive) nor logged.
func IsSensitiveBrokerKey(key string) bool {
	for _, s := range sensitiveSuffixes {
		if strings.HasSuffix(key, s) {
			return true
		}
	}
	return false
}

const (
	// FetchSessionCacheSlotsKey bounds the incremental fetch sessions
	// (KIP-227) a broker holds; 0 turns them off, as in Kafka.
	FetchSessionCacheSlotsKey     = "max.incremental.fetch.session.cache.slots"
	DefaultFetchSessionCacheSlots = 1000
)

// FetchSessionCacheSlots reads max.incremental.fetch.session.cache.slots.
func FetchSessionCacheSlots(brokerSettings map[string]string) (int, error) {
	raw, ok := brokerSettings[FetchSessionCacheSlotsKey]
	if !ok {
		return DefaultFetchSessionCacheSlots, nil
	}
	v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 32)
	if err != nil || v < 0 {
		return 0, &ValueError{Key: FetchSessionCacheSlotsKey, Value: raw, Reason: fmt.Sprintf("must be an integer from 0 to %d", math.MaxInt32)}
	}
	return int(v), nil
}
