// Package compaction decides what bounds a log: time and size retention
// (retention.ms, retention.bytes, and the local-tier limits; retention.go,
// pure functions the broker's workers and `strata retention preview` share)
// and log compaction for cleanup.policy=compact (cleaner.go): a pass keeps
// the latest record of every key at its original offset, over any Log (the
// local partition log, or its segments in the object store), and drops
// aborted transactions and finished transactions' markers (txn.go). The broker
// applies both to its local logs through two background workers,
// RetentionWorker (retentionworker.go) and CleanerWorker
// (cleanerworker.go), which see the broker only through the interfaces of
// worker.go.
package compaction
