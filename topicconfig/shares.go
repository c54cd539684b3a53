package topicconfig

import (
	"strconv"
	"strings"
	"time"
)

// Broker settings of share partitions (share groups' records on the
// partition leaders), with Kafka's names and defaults. The group configs
// share.record.lock.duration.ms and share.delivery.count.limit override the
// first two per group.
const (
	ShareRecordLockDurationKey = "group.share.record.lock.duration.ms"
	ShareDeliveryCountLimitKey = "group.share.delivery.count.limit"
	SharePartitionMaxLocksKey  = "group.share.partition.max.record.locks"
	ShareMaxSessionsKey        = "group.share.max.share.sessions"
)

// ShareSettings are the broker's share-partition settings.
type ShareSettings struct {
	// RecordLockDuration is how long a consumer holds the records it is
	// given before they are offered again.
	RecordLockDuration time.Duration
	// DeliveryCountLimit is how often a record is delivered before it is
	// archived instead of offered again.
	DeliveryCountLimit int
	// PartitionMaxRecordLocks bounds a share partition's records between
	// its start and end offsets (acquired, or waiting behind one that is).
	PartitionMaxRecordLocks int
	// MaxShareSessions bounds the share sessions (ShareFetch) a broker
	// keeps.
	MaxShareSessions int
}

// DefaultShareSettings are Kafka's defaults.
var DefaultShareSettings = ShareSettings{
	RecordLockDuration:      30 * time.Second,
	DeliveryCountLimit:      5,
	PartitionMaxRecordLocks: 2000,
	MaxShareSessions:        2000,
}

// Share settings' bounds. The lock duration is Kafka's
// group.share.{min,max}.record.lock.duration.ms defaults; the delivery
// limit Kafka's range; record locks at most 10000 also keep a partition's
// persisted state (one etcd value) small.
const (
	minShareLockMs, maxShareLockMs       = 15000, 60000
	minShareDeliveries, maxShareDelivery = 2, 10
	minShareLocks, maxShareLocks         = 100, 10000
	maxShareSessions                     = 100000
)

// Shares reads the share-partition settings.
func Shares(brokerSettings map[string]string) (ShareSettings, error) {
	s := DefaultShareSettings
	read := func(key string, lo, hi int64, set func(int64)) error {
		raw, ok := brokerSettings[key]
		if !ok {
			return nil
		}
		v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
		if err != nil || v < lo || v > hi {
			return &ValueError{Key: key, Value: raw, Reason: "must be an integer from " + strconv.FormatInt(lo, 10) + " to " + strconv.FormatInt(hi, 10)}
		}
		set(v)
		return nil
	}
	for _, e := range []error{
		read(ShareRecordLockDurationKey, minShareLockMs, maxShareLockMs, func(v int64) { s.RecordLockDuration = time.Duration(v) * time.Millisecond }),
		read(ShareDeliveryCountLimitKey, minShareDeliveries, maxShareDelivery, func(v int64) { s.DeliveryCountLimit = int(v) }),
		read(SharePartitionMaxLocksKey, minShareLocks, maxShareLocks, func(v int64) { s.PartitionMaxRecordLocks = int(v) }),
		read(ShareMaxSessionsKey, 1, maxShareSessions, func(v int64) { s.MaxShareSessions = int(v) }),
	} {
		if e != nil {
			return ShareSettings{}, e
		}
	}
	return s, nil
}
