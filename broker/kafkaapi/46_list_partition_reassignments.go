// ListPartitionReassignments (key 46), version 0.
//
// Null topics list every move in progress; named partitions that are not
// moving (or do not exist) are left out, as Kafka leaves them. Needs
// Describe on the cluster.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/metastore"
)

func (s *Server) listPartitionReassignmentsAPI() api {
	return api{key: 46, min: 0, max: 0, amplification: 130, handle: decoded(s.listPartitionReassignments), auth: onCluster(acl.OpDescribe)}
}

func (s *Server) listPartitionReassignments(ctx context.Context, req *kmsg.ListPartitionReassignmentsRequest) *kmsg.ListPartitionReassignmentsResponse {
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	ctx, cancel := timeoutCtx(ctx, req.TimeoutMillis)
	defer cancel()
	var parts []metastore.TopicPartition
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			parts = append(parts, metastore.TopicPartition{Topic: t.Topic, Partition: p})
		}
	}
	if req.Topics != nil && len(parts) == 0 {
		return resp
	}
	states, err := s.core.ListPartitionReassignments(ctx, parts)
	if err != nil {
		resp.ErrorCode = errorCode(err)
		resp.ErrorMessage = errorMessage(err)
		return resp
	}
	index := map[string]int{}
	for _, st := range states {
		i, ok := index[st.Topic]
		if !ok {
			i = len(resp.Topics)
			index[st.Topic] = i
			rt := kmsg.NewListPartitionReassignmentsResponseTopic()
			rt.Topic = st.Topic
			resp.Topics = append(resp.Topics, rt)
		}
		rp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
		rp.Partition = st.Partition
		rp.Replicas, rp.AddingReplicas, rp.RemovingReplicas = st.Replicas, nonNilIDs(st.AddingReplicas), nonNilIDs(st.RemovingReplicas)
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, rp)
	}
	return resp
}

func nonNilIDs(ids []int32) []int32 {
	if ids == nil {
		return []int32{}
	}
	return ids
}
