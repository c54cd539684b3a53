// ApiVersions (key 18), versions 0-3.
//
// The ranges listed are the registrations in dispatch.go and nothing else:
// every version listed is implemented, because clients pick features from
// the exact ranges and a version advertised but not served correctly breaks
// them. Unlike the other APIs it is handed its undecoded body whatever the
// version, so that a client newer than us still learns which versions to
// use.

package kafkaapi

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const apiVersionsKey = 18

func (s *Server) apiVersionsAPI() api {
	return api{key: apiVersionsKey, min: 0, max: 3, amplification: 55, raw: s.apiVersions,
		auth: noAuthorization()}
}

// apiVersions answers ApiVersions. A version newer than ours gets a v0
// response with UNSUPPORTED_VERSION and our range, so the client retries
// with one we speak; the body of such a request is not read, as its format
// is unknown.
func (s *Server) apiVersions(h header, body []byte) kmsg.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	for _, r := range s.apis {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = r.key, r.min, r.max
		resp.ApiKeys = append(resp.ApiKeys, k)
	}
	if !s.supported(h.key, h.version) {
		resp.SetVersion(0)
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		return resp
	}
	resp.SetVersion(h.version)
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(h.version)
	if err := req.ReadFrom(body); err != nil {
		// Kafka answers a malformed ApiVersions with INVALID_REQUEST rather
		// than closing, so the client can say what went wrong.
		resp.ErrorCode = kerr.InvalidRequest.Code
	}
	return resp
}
