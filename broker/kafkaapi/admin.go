package kafkaapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker"
)

func (s *Server) createTopicsAPI() api {
	return api{key: 19, min: 0, max: 7, handle: decoded(s.createTopics)}
}

func (s *Server) createTopics(ctx context.Context, req *kmsg.CreateTopicsRequest) *kmsg.CreateTopicsResponse {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	ctx, cancel := timeoutCtx(ctx, req.TimeoutMillis)
	defer cancel()
	seen := map[string]int{}
	for _, t := range req.Topics {
		seen[t.Topic]++
	}
	for _, t := range req.Topics {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = t.Topic
		fail := func(code int16, err error) {
			rt.ErrorCode = code
			if req.Version >= 1 {
				rt.ErrorMessage = errorMessage(err)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		if seen[t.Topic] > 1 {
			fail(kerr.InvalidRequest.Code, fmt.Errorf("topic %q appears more than once in the request", t.Topic))
			continue
		}
		if len(t.ReplicaAssignment) > 0 {
			fail(kerr.InvalidReplicaAssignment.Code, errors.New("manual replica assignment is not supported: leave it out and set the replication factor"))
			continue
		}
		spec := broker.TopicSpec{
			Name:              t.Topic,
			Partitions:        t.NumPartitions,
			ReplicationFactor: int32(t.ReplicationFactor),
			Configs:           map[string]string{},
			ValidateOnly:      req.ValidateOnly,
		}
		for _, c := range t.Configs {
			if c.Value != nil {
				spec.Configs[c.Name] = *c.Value
			}
		}
		desc, err := s.core.CreateTopic(ctx, spec)
		if err != nil {
			fail(errorCode(err), err)
			continue
		}
		rt.TopicID = topicID(desc.ID)
		rt.NumPartitions = int32(len(desc.Partitions))
		if rt.NumPartitions == 0 {
			rt.NumPartitions = spec.Partitions
		}
		rt.ReplicationFactor = int16(desc.ReplicationFactor)
		for _, e := range desc.Configs {
			c := kmsg.NewCreateTopicsResponseTopicConfig()
			value := e.Value
			c.Name, c.Value, c.Source = e.Name, &value, int8(configSource(e.Source))
			rt.Configs = append(rt.Configs, c)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (s *Server) deleteTopicsAPI() api {
	return api{key: 20, min: 0, max: 6, handle: decoded(s.deleteTopics)}
}

func (s *Server) deleteTopics(ctx context.Context, req *kmsg.DeleteTopicsRequest) *kmsg.DeleteTopicsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	ctx, cancel := timeoutCtx(ctx, req.TimeoutMillis)
	defer cancel()
	type target struct {
		name string
		id   [16]byte
	}
	var targets []target
	for _, n := range req.TopicNames {
		targets = append(targets, target{name: n})
	}
	for _, t := range req.Topics {
		if t.Topic != nil {
			targets = append(targets, target{name: *t.Topic})
		} else {
			targets = append(targets, target{id: t.TopicID})
		}
	}
	for _, t := range targets {
		rt := kmsg.NewDeleteTopicsResponseTopic()
		rt.TopicID = t.id
		name := t.name
		var err error
		if name == "" {
			if names := s.namesByID(ctx, map[[16]byte]bool{t.id: true}); len(names) == 1 {
				name = names[0]
			} else {
				err = fmt.Errorf("no topic has id %x: %w", t.id, broker.ErrUnknownTopicOrPartition)
			}
		}
		if err == nil {
			rt.Topic = &name
			err = s.core.DeleteTopic(ctx, name)
		}
		if err != nil {
			rt.ErrorCode = errorCode(err)
			if req.Version >= 5 {
				rt.ErrorMessage = errorMessage(err)
			}
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (s *Server) createPartitionsAPI() api {
	return api{key: 37, min: 0, max: 3, handle: decoded(s.createPartitions)}
}

func (s *Server) createPartitions(ctx context.Context, req *kmsg.CreatePartitionsRequest) *kmsg.CreatePartitionsResponse {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	ctx, cancel := timeoutCtx(ctx, req.TimeoutMillis)
	defer cancel()
	for _, t := range req.Topics {
		rt := kmsg.NewCreatePartitionsResponseTopic()
		rt.Topic = t.Topic
		var assignments [][]int32
		for _, a := range t.Assignment {
			assignments = append(assignments, a.Replicas)
		}
		if err := s.core.CreatePartitions(ctx, t.Topic, t.Count, assignments, req.ValidateOnly); err != nil {
			rt.ErrorCode = errorCode(err)
			rt.ErrorMessage = errorMessage(err)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (s *Server) deleteRecordsAPI() api {
	return api{key: 21, min: 0, max: 2, handle: decoded(s.deleteRecords)}
}

func (s *Server) deleteRecords(ctx context.Context, req *kmsg.DeleteRecordsRequest) *kmsg.DeleteRecordsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	ctx, cancel := timeoutCtx(ctx, req.TimeoutMillis)
	defer cancel()
	for _, t := range req.Topics {
		rt := kmsg.NewDeleteRecordsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewDeleteRecordsResponseTopicPartition()
			rp.Partition = p.Partition
			low, err := s.core.DeleteRecords(ctx, t.Topic, p.Partition, p.Offset)
			if err != nil {
				rp.ErrorCode, rp.LowWatermark = errorCode(err), -1
			} else {
				rp.LowWatermark = low
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (s *Server) initProducerIDAPI() api {
	return api{key: 22, min: 0, max: 4, handle: decoded(s.initProducerID)}
}

func (s *Server) initProducerID(ctx context.Context, req *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	ctx, cancel := timeoutCtx(ctx, 0)
	defer cancel()
	txn := ""
	if req.TransactionalID != nil {
		txn = *req.TransactionalID
	}
	id, epoch, err := s.core.InitProducerID(ctx, txn)
	if err != nil {
		s.logger.Info("init producer id refused", "transactional_id", txn, "err", err)
		resp.ErrorCode = errorCode(err)
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, epoch
	return resp
}

func (s *Server) describeClusterAPI() api {
	return api{key: 60, min: 0, max: 1, handle: decoded(s.describeCluster)}
}

func (s *Server) describeCluster(ctx context.Context, req *kmsg.DescribeClusterRequest) *kmsg.DescribeClusterResponse {
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.ClusterAuthorizedOperations = -2147483648 // not requested or not known
	if req.Version >= 1 {
		resp.EndpointType = req.EndpointType
		if req.EndpointType != 1 {
			// Brokers answer for brokers; there is no separate controller
			// endpoint to list.
			resp.ErrorCode = kerr.UnsupportedEndpointType.Code
			msg := "only the brokers endpoint type (1) is served"
			resp.ErrorMessage = &msg
			return resp
		}
	}
	md, err := s.core.Metadata(ctx, []string{})
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = errorCode(err), errorMessage(err)
		return resp
	}
	brokers, live := s.liveBrokers(md)
	for _, b := range brokers {
		db := kmsg.NewDescribeClusterResponseBroker()
		db.NodeID, db.Host, db.Port = b.NodeID, b.Host, b.Port
		resp.Brokers = append(resp.Brokers, db)
	}
	resp.ControllerID = s.controllerFor(md, live)
	if id, err := s.core.ClusterID(ctx); err == nil {
		resp.ClusterID = id
	}
	return resp
}
