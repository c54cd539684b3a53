package objstore

import "time"

// What the black-box tests in package objstore_test need of the inside.

// TestKnobs lower the S3 store's sizes and backoff so tests take every path
// quickly.
type TestKnobs struct {
	MultipartThreshold int64
	PartSize           int64
	ListPageSize       int32
	DeleteBatchSize    int
	MaxBackoff         time.Duration
}

// WithTestKnobs returns o with the knobs set.
func (o Options) WithTestKnobs(k TestKnobs) Options {
	o.multipartThreshold = k.MultipartThreshold
	o.partSize = k.PartSize
	o.listPageSize = k.ListPageSize
	o.deleteBatchSize = k.DeleteBatchSize
	o.maxBackoff = k.MaxBackoff
	return o
}

const (
	MinPartSize = minPartSize
	MaxAttempts = maxAttempts
	TmpPrefix   = tmpPrefix
)

var (
	CheckKey = checkKey
	AllOps   = allOps
)
