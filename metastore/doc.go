// Package metastore is everything Strata keeps in etcd, exposed as verbs of the
// domain: topics and their configuration overrides, partition state (leader,
// leader epoch, replicas, ISR) and broker registrations. No other package
// builds etcd keys or transactions; a new kind of coordination data gets a new
// verb here.
//
// # Key layout
//
// All keys live under a prefix (default "/strata"). Values are JSON.
//
//	<prefix>/topics/<name>                  topic: id, partition count, replication factor, config overrides, creation time
//	<prefix>/partitions/<topic>/<partition> partition state: leader, leader epoch, replicas, ISR (partition in decimal)
//	<prefix>/brokers/<node id>              live broker: addresses, start time; bound to the broker's lease
//	<prefix>/acls/<hash of the binding>     one Kafka ACL binding (resource pattern and entry); the key is a hash of the value, so creating it again is idempotent
//	<prefix>/scram/<user>/<mechanism>       one user's SCRAM credential: salt, iterations, StoredKey, ServerKey (never the password); the user is path-escaped
//	<prefix>/transactions/<transactional id> a transaction coordinator's state of one transactional id (transactions.go); the id is path-escaped
//
// # Consistency
//
//   - A topic and all of its partition states are created in one transaction
//     and deleted in one transaction, so a reader never sees partition states
//     without their topic or the reverse.
//   - Writes to an existing key are compare-and-swap on the key's mod revision
//     (Topic.Revision, PartitionState.Revision); a lost race is ErrConflict.
//   - A broker key exists only while its lease is kept alive, so a broker that
//     dies disappears after its TTL without doing anything itself.
//
// # Limits
//
// CreateTopic writes 1+partitions keys in a single transaction, so a topic can
// have at most etcd's --max-txn-ops minus one partitions (etcd's default is
// 128; StartEmbedded raises it to 4096).
//
// Topic names are not validated against Kafka's rules here (that is
// topicconfig.ValidTopicName); metastore only refuses names that would break
// the key layout (empty, or containing '/').
package metastore
