// AlterPartitionReassignments (key 45), versions 0-1.
//
// Each partition's target replicas start its move; null replicas cancel
// it. The moves are recorded before the answer; the controller carries
// them out (broker/reassign.go). Version 1's
// allow_replication_factor_change=false refuses a target whose size
// differs from the partition's replica count, as Kafka does. Needs Alter on
// the cluster.

package kafkaapi

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker"
)

func (s *Server) alterPartitionReassignmentsAPI() api {
	return api{key: 45, min: 0, max: 1, amplification: 170, handle: decoded(s.alterPartitionReassignments), auth: onCluster(acl.OpAlter)}
}

func (s *Server) alterPartitionReassignments(ctx context.Context, req *kmsg.AlterPartitionAssignmentsRequest) *kmsg.AlterPartitionAssignmentsResponse {
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	resp.AllowReplicationFactorChange = req.AllowReplicationFactorChange
	ctx, cancel := timeoutCtx(ctx, req.TimeoutMillis)
	defer cancel()
	var moves []broker.Reassignment
	// Refused before anything is recorded: index of the move → its error.
	refused := map[int]error{}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			m := broker.Reassignment{Topic: t.Topic, Partition: p.Partition, Replicas: p.Replicas}
			if p.Replicas != nil && len(p.Replicas) == 0 {
				refused[len(moves)] = fmt.Errorf("%s-%d: an empty replica list: %w", t.Topic, p.Partition, broker.ErrInvalidReplicaAssignment)
			} else if req.Version >= 1 && !req.AllowReplicationFactorChange && p.Replicas != nil {
				if err := s.sameReplicationFactor(ctx, m); err != nil {
					refused[len(moves)] = err
				}
			}
			moves = append(moves, m)
		}
	}
	todo := make([]broker.Reassignment, 0, len(moves))
	at := make([]int, 0, len(moves))
	for i, m := range moves {
		if _, ok := refused[i]; !ok {
			todo = append(todo, m)
			at = append(at, i)
		}
	}
	errs := make([]error, len(moves))
	for j, err := range s.core.AlterPartitionReassignments(ctx, todo) {
		errs[at[j]] = err
	}
	for i, err := range refused {
		errs[i] = err
	}
	index := map[string]int{}
	for i, m := range moves {
		ti, ok := index[m.Topic]
		if !ok {
			ti = len(resp.Topics)
			index[m.Topic] = ti
			rt := kmsg.NewAlterPartitionAssignmentsResponseTopic()
			rt.Topic = m.Topic
			resp.Topics = append(resp.Topics, rt)
		}
		rp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
		rp.Partition = m.Partition
		if errs[i] != nil {
			rp.ErrorCode = errorCode(errs[i])
			rp.ErrorMessage = errorMessage(errs[i])
		}
		resp.Topics[ti].Partitions = append(resp.Topics[ti].Partitions, rp)
	}
	return resp
}

// sameReplicationFactor refuses a target whose size is not the partition's
// replica count (of the target of a move in progress).
func (s *Server) sameReplicationFactor(ctx context.Context, m broker.Reassignment) error {
	d, err := s.core.DescribeTopic(ctx, m.Topic)
	if err != nil {
		return err
	}
	for _, p := range d.Partitions {
		if p.Partition != m.Partition {
			continue
		}
		if n := len(p.TargetReplicas()); n != len(m.Replicas) {
			return fmt.Errorf("%s-%d: the target has %d replicas, the partition %d, and the request does not allow a change of replication factor: %w",
				m.Topic, m.Partition, len(m.Replicas), n, broker.ErrInvalidReplicaAssignment)
		}
		return nil
	}
	return fmt.Errorf("topic %q has no partition %d: %w", m.Topic, m.Partition, broker.ErrUnknownTopicOrPartition)
}
