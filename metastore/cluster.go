package metastore

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func (s *Store) clusterIDKey() string { return s.prefix + "/cluster-id" }

// ClusterID returns the cluster's id, creating it on first use. Like
// Kafka's, it is 16 random bytes in unpadded base64url (22 characters);
// every broker of the cluster reports the same one, and it never changes.
func (s *Store) ClusterID(ctx context.Context) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("metastore: cluster id: %w", err)
	}
	fresh := base64.RawURLEncoding.EncodeToString(b[:])
	key := s.clusterIDKey()
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, fresh)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return "", fmt.Errorf("metastore: cluster id: %w", err)
	}
	if resp.Succeeded {
		return fresh, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) != 1 || len(kvs[0].Value) == 0 {
		return "", fmt.Errorf("metastore: cluster id: key %s is empty", key)
	}
	return string(kvs[0].Value), nil
}
