// Package compaction decides what bounds a log: time and size retention
// (retention.ms, retention.bytes, and the local-tier limits; retention.go,
// pure functions the broker's workers and `strata retention preview` share)
// and log compaction for cleanup.policy=compact, on both tiers.
//
// Log compaction is not built yet: the partition log already offers what it
// needs (DeleteSegmentsBelow, which advances and persists the log start
// offset); see ARCHITECTURE.md.
package compaction
