package broker

import (
	"context"
	"fmt"
	"maps"
	"sync"
)

// clusterID caches the cluster's id: it never changes once created.
type clusterID struct {
	mu sync.Mutex
	id string
}

// ClusterID returns the id every broker of the cluster reports to clients.
func (b *Broker) ClusterID(ctx context.Context) (string, error) {
	b.clusterID.mu.Lock()
	defer b.clusterID.mu.Unlock()
	if b.clusterID.id != "" {
		return b.clusterID.id, nil
	}
	id, err := b.store.ClusterID(ctx)
	if err != nil {
		return "", fmt.Errorf("cluster id: %w", err)
	}
	b.clusterID.id = id
	return id, nil
}

// BrokerSettings returns the broker settings this broker was started with
// (Kafka's server.properties keys).
func (b *Broker) BrokerSettings() map[string]string {
	return maps.Clone(b.cfg.Settings)
}
