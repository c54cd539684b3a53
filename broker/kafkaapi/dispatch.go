package kafkaapi

import (
	"context"
	"encoding/hex"
	"reflect"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
)

// api is one Kafka API as this frontend serves it. The versions here are
// the only statement of what is served: ApiVersions advertises them and
// requests outside them close the connection, so the two cannot disagree.
type api struct {
	key      int16
	min, max int16
	// handle answers a request decoded at a version in [min, max]. A nil
	// response means none is sent (acks=0 produce).
	handle func(ctx context.Context, h header, req kmsg.Request) kmsg.Response
	// onConn, when set, is called instead of handle: the SASL APIs change
	// the state of the connection they come on.
	onConn func(c *conn, h header, req kmsg.Request) (kmsg.Response, error)
	// raw, when set, is called instead of handle for every version, with
	// the undecoded body: ApiVersions must answer even a version too new
	// to decode, to tell the client which ones to use.
	raw func(h header, body []byte) kmsg.Response
	// needsGroups marks an API that only a broker with a group
	// coordinator answers. It stays advertised either way; without a
	// coordinator the request closes the connection.
	needsGroups bool
	// needsShareGroups is needsGroups for the share-group coordinator.
	needsShareGroups bool
	// auth is how the API is authorized (authorize.go).
	auth rule
	// amplification bounds the memory a request may take, per byte of its
	// frame, while it is decoded and answered (see memory.go): it is
	// reserved from the request budget before the body is read.
	// TestRequestMemoryBound holds every API to its own.
	amplification int64
	// cost, when set, replaces amplification once the body is read: it
	// walks the body to find what decoding and answering it take beyond
	// the frame itself, or why kmsg could not decode it.
	cost func(version int16, body []byte) (int64, error)
	// releasesFrame marks an API whose request has byte fields (which kmsg
	// leaves pointing into the frame) that nothing keeps once it is
	// answered (Produce: the core has copied the records into the log).
	releasesFrame bool
	// reusesFrame is set by New: the frame's buffer goes back to the pool
	// once the request is answered, because nothing can still point into
	// it. Requests with byte fields (a JoinGroup's protocol metadata, kept
	// by the coordinator) leave their frame to the garbage collector.
	reusesFrame bool
}

func (a *api) supports(version int16) bool { return version >= a.min && version <= a.max }

// hasBytes reports whether a value of type t holds a []byte anywhere:
// decoded by kmsg, it would point into the frame.
func hasBytes(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer:
		return hasBytes(t.Elem())
	case reflect.Slice:
		return t.Elem().Kind() == reflect.Uint8 || hasBytes(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if t.Field(i).Name != "UnknownTags" && hasBytes(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}

// registered lists the APIs served, in the order ApiVersions advertises
// them. Each comes from the file of its key, which holds its versions and
// handler together.
func (s *Server) registered() []api {
	return []api{
		s.produceAPI(),
		s.fetchAPI(),
		s.listOffsetsAPI(),
		s.metadataAPI(),
		s.offsetCommitAPI(),
		s.offsetFetchAPI(),
		s.findCoordinatorAPI(),
		s.joinGroupAPI(),
		s.heartbeatAPI(),
		s.leaveGroupAPI(),
		s.syncGroupAPI(),
		s.describeGroupsAPI(),
		s.listGroupsAPI(),
		s.saslHandshakeAPI(),
		s.apiVersionsAPI(),
		s.createTopicsAPI(),
		s.deleteTopicsAPI(),
		s.deleteRecordsAPI(),
		s.initProducerIDAPI(),
		s.offsetForLeaderEpochAPI(),
		s.addPartitionsToTxnAPI(),
		s.addOffsetsToTxnAPI(),
		s.endTxnAPI(),
		s.txnOffsetCommitAPI(),
		s.describeACLsAPI(),
		s.createACLsAPI(),
		s.deleteACLsAPI(),
		s.describeConfigsAPI(),
		s.alterConfigsAPI(),
		s.describeLogDirsAPI(),
		s.saslAuthenticateAPI(),
		s.createPartitionsAPI(),
		s.electLeadersAPI(),
		s.alterPartitionReassignmentsAPI(),
		s.listPartitionReassignmentsAPI(),
		s.deleteGroupsAPI(),
		// Out of key order: ApiVersions has always listed these two this
		// way, and the response is kept byte for byte.
		s.offsetDeleteAPI(),
		s.incrementalAlterConfigsAPI(),
		s.describeUserScramCredentialsAPI(),
		s.alterUserScramCredentialsAPI(),
		s.describeClusterAPI(),
		s.describeProducersAPI(),
		s.describeTransactionsAPI(),
		s.listTransactionsAPI(),
		s.consumerGroupHeartbeatAPI(),
		s.consumerGroupDescribeAPI(),
		s.shareGroupHeartbeatAPI(),
		s.shareGroupDescribeAPI(),
		s.shareFetchAPI(),
		s.shareAcknowledgeAPI(),
		s.describeShareGroupOffsetsAPI(),
		s.alterShareGroupOffsetsAPI(),
		s.deleteShareGroupOffsetsAPI(),
	}
}

// decoded adapts a handler of one request type to api.handle. Its
// response is converted to kmsg.Response, so a handler that may answer
// nothing must return kmsg.Response itself: a nil pointer of a concrete
// type would become a non-nil response.
func decoded[Req kmsg.Request, Resp kmsg.Response](f func(context.Context, Req) Resp) func(context.Context, header, kmsg.Request) kmsg.Response {
	return func(ctx context.Context, _ header, req kmsg.Request) kmsg.Response {
		return f(ctx, req.(Req))
	}
}

// decodedWithHeader is decoded for a handler that needs the request's
// header: the listener it came on, its client.
func decodedWithHeader[Req kmsg.Request, Resp kmsg.Response](f func(context.Context, header, Req) Resp) func(context.Context, header, kmsg.Request) kmsg.Response {
	return func(ctx context.Context, h header, req kmsg.Request) kmsg.Response {
		return f(ctx, h, req.(Req))
	}
}

// lookup returns the registered API with key.
func (s *Server) lookup(key int16) (*api, bool) {
	if key < 0 || int(key) >= len(s.byKey) || s.byKey[key] == nil {
		return nil, false
	}
	return s.byKey[key], true
}

// indexByKey makes lookup a slice index: it runs on every request. It
// also decides which APIs' frames are reused.
func indexByKey(apis []api) []*api {
	var n int16
	for _, a := range apis {
		n = max(n, a.key+1)
	}
	byKey := make([]*api, n)
	for i := range apis {
		a := &apis[i]
		a.reusesFrame = a.releasesFrame || !hasBytes(reflect.TypeOf(kmsg.RequestForKey(a.key)))
		byKey[a.key] = a
	}
	return byKey
}

// requestLimit is the largest request of the API key and the setting that
// makes it so: Produce alone may be as large as socket.request.max.bytes.
func (s *Server) requestLimit(key int16) (int32, string) {
	if key == produceKey {
		return s.cfg.MaxRequestBytes, "socket.request.max.bytes"
	}
	return s.cfg.NonProduceMaxRequestBytes, "socket.request.max.bytes.non.produce"
}

// supported reports whether version of the API key is served.
func (s *Server) supported(key, version int16) bool {
	a, ok := s.lookup(key)
	return ok && version >= a.min && version <= a.max
}

// answer decodes and answers one request whose header is h and body body
// (req is the empty request of h's key and version). A nil response means
// none is sent (acks=0 produce); an error closes the connection.
func (s *Server) answer(ctx context.Context, h header, req kmsg.Request, body []byte) (kmsg.Response, error) {
	name := kmsg.NameForKey(h.key)
	a, ok := s.lookup(h.key)
	if ok && a.raw != nil {
		return a.raw(h, body), nil
	}
	if !ok || !a.supports(h.version) {
		return nil, protocolErrorf("%s v%d is not supported (client %s)", name, h.version, clientForLog(h.clientID))
	}
	if err := req.ReadFrom(body); err != nil {
		return nil, protocolErrorf("decode %s v%d: %v", name, h.version, err)
	}
	if a.onConn != nil {
		// Only a connection answers these (conn.answer); a request that
		// reaches here has none.
		return nil, protocolErrorf("%s is answered only on a connection", name)
	}
	if a.needsShareGroups && s.shareGroups == nil {
		return nil, protocolErrorf("%s is not served (client %s)", name, clientForLog(h.clientID))
	}
	if a.needsGroups && s.groups == nil {
		return nil, protocolErrorf("%s is not served (client %s)", name, clientForLog(h.clientID))
	}
	if a.auth.kind == ruleCluster && !s.authorized(ctx, a.auth.op, acl.ResourceCluster, acl.ClusterName) {
		if a.auth.deny != nil {
			return a.auth.deny(req), nil
		}
		return clusterDenied(req), nil
	}
	return a.handle(ctx, h, req), nil
}

// adminTimeout bounds admin requests that carry no timeout of their own.
const adminTimeout = 30 * time.Second

// timeoutCtx bounds an admin request by its own timeout, or adminTimeout.
func timeoutCtx(ctx context.Context, millis int32) (context.Context, context.CancelFunc) {
	d := adminTimeout
	if millis > 0 {
		d = time.Duration(millis) * time.Millisecond
	}
	return context.WithTimeout(ctx, d)
}

// topicID turns a topic's UUID string into Kafka's 16 bytes (zero if it
// has none or it does not parse).
func topicID(id string) [16]byte {
	var out [16]byte
	raw, err := hex.DecodeString(strings.ReplaceAll(id, "-", ""))
	if err == nil && len(raw) == 16 {
		copy(out[:], raw)
	}
	return out
}
