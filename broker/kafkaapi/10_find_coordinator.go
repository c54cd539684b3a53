// FindCoordinator (key 10), versions 0-4. Needs the group coordinator.
//
// Groups (key type 0) and transactional ids (key type 1) are coordinated
// by the same broker for the same key: the live broker that scores highest
// with it (rendezvous hashing). Other key types (KIP-932's share
// groups) get INVALID_REQUEST. v4 looks up several
// keys at once; older versions get the single answer at the top level.
// The coordinator's address is the one on the request's listener.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
)

func (s *Server) findCoordinatorAPI() api {
	return api{key: 10, min: 0, max: 4, amplification: 265, handle: decodedWithHeader(s.findCoordinator), needsGroups: true,
		auth: checkedInHandler()}
}

func (s *Server) findCoordinator(ctx context.Context, h header, req *kmsg.FindCoordinatorRequest) *kmsg.FindCoordinatorResponse {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	for _, key := range keys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key, c.NodeID = key, -1
		switch {
		case req.CoordinatorType == 0 && !s.authorized(ctx, acl.OpDescribe, acl.ResourceGroup, key):
			c.ErrorCode = kerr.GroupAuthorizationFailed.Code
		case req.CoordinatorType == 1 && !s.authorized(ctx, acl.OpDescribe, acl.ResourceTransactionalID, key):
			c.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		case req.CoordinatorType != 0 && req.CoordinatorType != 1:
			c.ErrorCode = kerr.InvalidRequest.Code
			c.ErrorMessage = strPtr("only group (0) and transaction (1) coordinators are served")
		case key == "" && req.CoordinatorType == 0:
			c.ErrorCode = kerr.InvalidGroupID.Code
		case key == "":
			c.ErrorCode = kerr.InvalidRequest.Code
			c.ErrorMessage = strPtr("empty transactional id")
		default:
			br := s.core.GroupCoordinator(key)
			// The coordinator's address on the listener the request came in
			// on; a coordinator without that listener is not available to
			// this client.
			host, port, err := hostPort(br.KafkaAddrFor(h.listener))
			if br.NodeID < 0 || err != nil {
				c.ErrorCode = kerr.CoordinatorNotAvailable.Code
				break
			}
			c.NodeID, c.Host, c.Port = br.NodeID, host, port
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	if req.Version < 4 && len(resp.Coordinators) == 1 {
		c := resp.Coordinators[0]
		resp.ErrorCode, resp.ErrorMessage, resp.NodeID, resp.Host, resp.Port = c.ErrorCode, c.ErrorMessage, c.NodeID, c.Host, c.Port
		resp.Coordinators = nil
	}
	return resp
}
