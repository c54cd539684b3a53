package testenvtest

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/tiering/objstore"
)

// EtcdClient is a client of c's etcd, closed when the test ends.
func EtcdClient(t testing.TB, c *testenv.Cluster) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{c.Etcd().Endpoint()},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// BucketEnd is where a partition's copy in the bucket ends, -1 while there
// is none.
func BucketEnd(t testing.TB, c *testenv.Cluster, topic string, p int32) int64 {
	m, err := ReadBucketManifest(t, c, topic, p)
	if err != nil {
		return -1
	}
	return m.EndOffset()
}

// ReadBucketManifest reads a partition's newest manifest from c's MinIO
// through the project's own object store client.
func ReadBucketManifest(t testing.TB, c *testenv.Cluster, topic string, p int32) (tiering.PartitionManifest, error) {
	s3 := c.MinIO().S3()
	t.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3.SecretKey)
	t.Setenv("AWS_REGION", s3.Region)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := objstore.Open(ctx, testenv.ObjectStoreURL(s3), objstore.Options{})
	if err != nil {
		return tiering.PartitionManifest{}, err
	}
	tm, err := tiering.FindTopic(ctx, st, topic)
	if err != nil {
		return tiering.PartitionManifest{}, err
	}
	m, _, _, err := tiering.LatestManifest(ctx, st, tiering.Layout{Topic: topic, TopicID: tm.ID}, p)
	return m, err
}
