// DescribeCluster (key 60), versions 0-2.
//
// Brokers answer for brokers: there is no separate controller endpoint, so
// v1 asking for one gets UNSUPPORTED_ENDPOINT_TYPE. The brokers and the
// controller are those Metadata reports, on the request's listener.
// Authorized operations are not computed. v2 (KIP-1073) may ask for fenced
// brokers too: a broker is listed only while its registration lease lives,
// and a registered broker is never fenced here, so the answer is the same
// and every broker's IsFenced is false.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
)

func (s *Server) describeClusterAPI() api {
	return api{key: 60, min: 0, max: 2, amplification: 55, handle: decodedWithHeader(s.describeCluster),
		auth: onCluster(acl.OpDescribe)}
}

func (s *Server) describeCluster(ctx context.Context, h header, req *kmsg.DescribeClusterRequest) *kmsg.DescribeClusterResponse {
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
	brokers, live := s.liveBrokers(md, h.listener)
	for _, b := range brokers {
		db := kmsg.NewDescribeClusterResponseBroker()
		db.NodeID, db.Host, db.Port, db.Rack = b.NodeID, b.Host, b.Port, b.Rack
		resp.Brokers = append(resp.Brokers, db)
	}
	resp.ControllerID = s.controllerFor(md, live)
	if id, err := s.core.ClusterID(ctx); err == nil {
		resp.ClusterID = id
	}
	return resp
}
