// ElectLeaders (key 43), versions 0-2.
//
// Version 0 elects the preferred replica only; from version 1 the request
// says which election (0 preferred, 1 unclean). Null topics elect in every
// partition. Needs Alter on the cluster, as in Kafka.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/metastore"
)

func (s *Server) electLeadersAPI() api {
	return api{key: 43, min: 0, max: 2, amplification: 130, handle: decoded(s.electLeaders), auth: onCluster(acl.OpAlter)}
}

func (s *Server) electLeaders(ctx context.Context, req *kmsg.ElectLeadersRequest) *kmsg.ElectLeadersResponse {
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	ctx, cancel := timeoutCtx(ctx, req.TimeoutMillis)
	defer cancel()
	unclean := false
	switch req.ElectionType {
	case 0:
	case 1:
		unclean = true
	default:
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp
	}
	var parts []metastore.TopicPartition
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			parts = append(parts, metastore.TopicPartition{Topic: t.Topic, Partition: p})
		}
	}
	if req.Topics != nil && len(parts) == 0 {
		return resp // an empty list elects nothing; only null means all
	}
	results, err := s.core.ElectLeaders(ctx, unclean, parts)
	if err != nil {
		resp.ErrorCode = errorCode(err)
		return resp
	}
	index := map[string]int{}
	for _, r := range results {
		i, ok := index[r.Topic]
		if !ok {
			i = len(resp.Topics)
			index[r.Topic] = i
			rt := kmsg.NewElectLeadersResponseTopic()
			rt.Topic = r.Topic
			resp.Topics = append(resp.Topics, rt)
		}
		rp := kmsg.NewElectLeadersResponseTopicPartition()
		rp.Partition = r.Partition
		if r.Err != nil {
			rp.ErrorCode = errorCode(r.Err)
			rp.ErrorMessage = errorMessage(r.Err)
		}
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, rp)
	}
	return resp
}
