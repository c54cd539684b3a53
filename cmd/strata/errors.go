package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/strata-broker/strata/tiering/objstore"
)

// rpcStatusText is how a gRPC status error prints: "rpc error: code =
// NotFound desc = topic ...". Its description runs to the end of the line: a
// status error is the innermost of a wrapped chain, and errors.Join puts
// each error on a line of its own.
var rpcStatusText = regexp.MustCompile(`rpc error: code = (\w+) desc = ([^\n]*)`)

// plainError is err's message with every gRPC status rewritten as its
// description and code, "topic "x": unknown topic or partition (NotFound)":
// the code stays for scripts and searches, the transport's framing goes.
func plainError(err error) string {
	return rewriteStatuses(err.Error(), func(code, desc string) string { return plainStatus(code, desc) })
}

func plainStatus(code, desc string) string {
	desc = strings.TrimSpace(desc)
	switch {
	case desc == "":
		return code
	case code == "Unknown":
		return desc
	}
	return desc + " (" + code + ")"
}

// rewriteStatuses replaces each status in s with what fn makes of its code
// and description, descriptions first, since a broker may pass on a status
// it got from another.
func rewriteStatuses(s string, fn func(code, desc string) string) string {
	var b strings.Builder
	for {
		m := rpcStatusText.FindStringSubmatchIndex(s)
		if m == nil {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:m[0]])
		b.WriteString(fn(s[m[2]:m[3]], rewriteStatuses(s[m[4]:m[5]], fn)))
		s = s[m[1]:]
	}
}

// connectionCauses name, in the words of grpc and net, the ways a
// connection fails before any broker answered; the message tells them
// apart from a broker that answered Unavailable itself (no leader, no live
// brokers).
var connectionCauses = []struct{ text, cause string }{
	{"connection refused", "connection refused"},
	{"produced zero addresses", "the host name does not resolve"},
	{"no such host", "the host name does not resolve"},
	{"error reading server preface", "the server closed the connection without speaking gRPC"},
	{"connection reset by peer", "the server closed the connection"},
	{"broken pipe", "the server closed the connection"},
	{"authentication handshake failed", "the TLS handshake failed"},
	// An HTTP/1 server (the broker's --http-addr, a proxy) answers with a
	// status grpc cannot take for its own.
	{"unexpected HTTP status code received from server", "an HTTP server answered, not gRPC"},
	{"i/o timeout", "timed out"},
	{"while waiting for connections to become ready", "timed out"},
	{"connection error", "cannot connect"},
	{"Error while dialing", "cannot connect"},
}

func connectionCause(code, desc string) (string, bool) {
	if code != "Unavailable" && code != "DeadlineExceeded" && code != "Unimplemented" {
		return "", false
	}
	for _, c := range connectionCauses {
		if strings.Contains(desc, c.text) {
			return c.cause, true
		}
	}
	return "", false
}

// dialedAddr finds the address grpc or the client names in a failure
// ("dial tcp HOST:PORT:", "metadata from HOST:PORT:"): with several brokers
// it may be another than the bootstrap server.
var dialedAddr = regexp.MustCompile(`(?:dial tcp|metadata from|write tcp [^ ]*->|read tcp [^ ]*->) ?([^ ,]+:\d+)`)

// explainError is the one line the CLI prints for err. A broker that cannot
// be reached is named with the address tried, and with why: the CLI speaks
// gRPC, and a Kafka port given to --bootstrap-server is recognised by
// asking it for its API versions as a Kafka client would. bootstrap is the
// resolved --bootstrap-server of a client command, "" for other commands.
func explainError(ctx context.Context, err error, bootstrap string) string {
	msg := err.Error()
	if errors.Is(err, objstore.ErrNoCredentials) {
		// What the SDK adds (the operation, the sources it tried) is not
		// what the user needs; where the call was made is.
		if i := strings.Index(msg, "operation error S3"); i > 0 {
			msg = msg[:i] + objstore.ErrNoCredentials.Error()
		}
	}
	return oneLine(rewriteStatuses(msg, func(code, desc string) string {
		cause, ok := connectionCause(code, desc)
		if !ok || bootstrap == "" {
			return plainStatus(code, desc)
		}
		addrs := bootstrap
		if m := dialedAddr.FindStringSubmatch(msg); m != nil {
			addrs = m[1]
		}
		for _, a := range strings.Split(addrs, ",") {
			if a = strings.TrimSpace(a); isKafkaListener(ctx, a) {
				return fmt.Sprintf("%s is a Kafka listener, not a broker's gRPC address: the strata CLI speaks gRPC; give --bootstrap-server the broker's --grpc-addr (port 9093 by default)", a)
			}
		}
		return fmt.Sprintf("cannot reach a broker at %s (%s): the strata CLI connects to a broker's gRPC address, its --grpc-addr (port 9093 by default), given by --bootstrap-server or $%s", addrs, cause, bootstrapEnv)
	}))
}

// flagError is a usage error in one line: a bad value names the flag and
// what it takes, without the parser's internals ("strconv.ParseInt:
// parsing ...").
func flagError(c *cobra.Command, err error) error {
	var ive *pflag.InvalidValueError
	if errors.As(err, &ive) {
		return fmt.Errorf("%s (see '%s --help')", invalidFlagValue(ive, err), c.CommandPath())
	}
	return fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())
}

func invalidFlagValue(ive *pflag.InvalidValueError, err error) string {
	name := "--" + ive.GetFlag().Name
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		what := "an integer"
		switch ive.GetFlag().Value.Type() {
		case "float32", "float64":
			what = "a number"
		case "uint", "uint8", "uint16", "uint32", "uint64":
			what = "a non-negative integer"
		}
		if errors.Is(ne.Err, strconv.ErrRange) {
			return fmt.Sprintf("%s %q: out of range for %s", name, ive.GetValue(), ive.GetFlag().Value.Type())
		}
		return fmt.Sprintf("%s %q: want %s", name, ive.GetValue(), what)
	}
	return oneLine(fmt.Sprintf("%s %q: %v", name, ive.GetValue(), errors.Unwrap(ive)))
}

// Kafka's ApiVersions request, the first one every Kafka client sends;
// version 0 is answered by every Kafka broker, before any authentication.
const (
	apiVersionsKey    = 18
	probeCorrelation  = 0x5374_7261 // "Stra"
	probeTimeout      = 2 * time.Second
	maxProbeRespBytes = 64 << 10
)

// isKafkaListener reports whether addr answers Kafka's ApiVersions
// request: it is a Kafka listener (of Strata or of Kafka) rather than a
// gRPC port.
func isKafkaListener(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	clientID := "strata-cli"
	// Request header v1: api key, api version, correlation id, client id
	// (a nullable string); ApiVersions v0 has no body.
	req := binary.BigEndian.AppendUint32(nil, uint32(2+2+4+2+len(clientID)))
	req = binary.BigEndian.AppendUint16(req, apiVersionsKey)
	req = binary.BigEndian.AppendUint16(req, 0)
	req = binary.BigEndian.AppendUint32(req, probeCorrelation)
	req = binary.BigEndian.AppendUint16(req, uint16(len(clientID)))
	req = append(req, clientID...)
	if _, err := conn.Write(req); err != nil {
		return false
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return false
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 4+2+4 || n > maxProbeRespBytes {
		return false
	}
	resp := make([]byte, n)
	if _, err := io.ReadFull(conn, resp); err != nil {
		return false
	}
	// Response v0: correlation id, error code, then the array of
	// (api key, min version, max version), which must list ApiVersions.
	if binary.BigEndian.Uint32(resp) != probeCorrelation {
		return false
	}
	count := int32(binary.BigEndian.Uint32(resp[6:]))
	body := resp[10:]
	if count <= 0 || int(count)*6 > len(body) {
		return false
	}
	for i := range int(count) {
		if binary.BigEndian.Uint16(body[i*6:]) == apiVersionsKey {
			return true
		}
	}
	return false
}
