package client

import (
	"context"
	"fmt"
	"slices"
	"time"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// DescribeLogDirs asks every live broker of the cluster for the replicas
// it hosts and the size of each one's local log (Kafka's DescribeLogDirs
// sent to each broker), and returns the answers in node id order. A broker
// that does not answer fails the call: sizes missing a broker would make
// it look empty. It needs Describe on the cluster.
func (c *Client) DescribeLogDirs(ctx context.Context) ([]*stratav1.DescribeLogDirsResponse, error) {
	if err := c.refreshMetadata(ctx, nil, time.Now()); err != nil {
		return nil, fmt.Errorf("describe log dirs: %w", err)
	}
	brokers := c.meta.Load().brokers
	nodes := make([]int32, 0, len(brokers))
	for id := range brokers {
		nodes = append(nodes, id)
	}
	slices.Sort(nodes)
	out := make([]*stratav1.DescribeLogDirsResponse, 0, len(nodes))
	for _, id := range nodes {
		conn, err := c.nodeConn(id)
		if err != nil {
			return nil, fmt.Errorf("describe log dirs of broker %d: %w", id, err)
		}
		resp, err := stratav1.NewStrataClient(conn).DescribeLogDirs(ctx, &stratav1.DescribeLogDirsRequest{})
		if err != nil {
			return nil, fmt.Errorf("describe log dirs of broker %d: %w", id, err)
		}
		out = append(out, resp)
	}
	return out, nil
}
