// Package tiering will move sealed segments to S3-compatible object storage
// and read them back: the object-store interface with S3 and local-directory
// implementations, the leader-only uploader, the per-partition manifest in
// the bucket, remote retention and the remote read path with its chunk cache.
//
// Not built yet. Today every segment stays on the broker's disk; see
// ARCHITECTURE.md.
package tiering
