// Package compaction will run the background workers that bound a log:
// time and size retention (retention.ms, retention.bytes, and the local-tier
// limits) and log compaction for cleanup.policy=compact, on both tiers.
//
// Not built yet: the partition log already offers what they need
// (DeleteSegmentsBelow, which advances and persists the log start offset);
// see ARCHITECTURE.md.
package compaction
