package client

import (
	"math/rand/v2"

	"github.com/strata-broker/strata/record"
)

// Partition choice follows Kafka's default partitioner, so records spread as
// a Kafka client would spread them:
//   - an explicit partition (>= 0) is used as given;
//   - a record with a non-null key goes to murmur2(key) mod partitions
//     (record.KeyPartition), the same partition as with any Kafka client;
//   - unkeyed records stick to one partition until that partition's batch is
//     sent (sealed), then the producer picks another partition at random
//     (KIP-480's sticky partitioner). This fills batches instead of spreading
//     every linger period's records across all partitions in tiny batches.

// keyedPartition is the partition of a keyed record among n partitions.
func keyedPartition(key []byte, n int32) int32 { return record.KeyPartition(key, n) }

// nextSticky picks the next sticky partition among n at random, different
// from prev when there is another one (prev < 0: no previous partition).
func nextSticky(rng *rand.Rand, prev, n int32) int32 {
	if n <= 1 {
		return 0
	}
	if prev < 0 || prev >= n {
		return rng.Int32N(n)
	}
	p := rng.Int32N(n - 1)
	if p >= prev {
		p++
	}
	return p
}
