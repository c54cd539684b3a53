package client

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// TieringStatus returns the tiering state of every partition of topic,
// sorted by partition: local and remote offsets and bytes and the upload
// backlog. Only a partition's leader uploads, so each leader is asked for
// the partitions it leads; a partition whose leader moved or is unreachable
// is asked again after a metadata refresh, for up to the client's retry
// timeout.
//
// With topic "", every topic of the cluster is reported, sorted by topic
// then partition, tiered or not (PartitionTiering.RemoteEnabled tells them
// apart); a topic deleted meanwhile is left out.
func (c *Client) TieringStatus(ctx context.Context, topic string) ([]*stratav1.PartitionTiering, error) {
	if topic != "" {
		return c.topicTiering(ctx, topic)
	}
	topics, err := c.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("tiering status: %w", err)
	}
	var out []*stratav1.PartitionTiering
	for _, t := range topics {
		parts, err := c.topicTiering(ctx, t.GetName())
		if status.Code(err) == codes.NotFound && ctx.Err() == nil {
			continue // deleted since the list
		}
		if err != nil {
			return nil, err
		}
		out = append(out, parts...)
	}
	return out, nil
}

// topicTiering asks the leaders of topic's partitions for their tiering
// state.
func (c *Client) topicTiering(ctx context.Context, topic string) ([]*stratav1.PartitionTiering, error) {
	return fromLeaders(ctx, c, topic, "tiering status", func(ctx context.Context, node int32) ([]*stratav1.PartitionTiering, error) {
		return c.tieringStatusAt(ctx, node, topic)
	})
}

// tieringStatusAt asks one broker for the tiering state of the partitions
// of topic it leads.
func (c *Client) tieringStatusAt(ctx context.Context, node int32, topic string) ([]*stratav1.PartitionTiering, error) {
	conn, err := c.nodeConn(node)
	if err != nil {
		return nil, fmt.Errorf("tiering status of topic %q: %w", topic, err)
	}
	resp, err := stratav1.NewStrataClient(conn).TieringStatus(ctx, &stratav1.TieringStatusRequest{Topic: topic})
	if err != nil {
		return nil, fmt.Errorf("tiering status of topic %q from broker %d: %w", topic, node, err)
	}
	return resp.GetPartitions(), nil
}
