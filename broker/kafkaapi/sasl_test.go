package kafkaapi

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/sasl"
	"github.com/strata-broker/strata/topicconfig"
)

// credStore is a sasl.CredentialStore whose credentials a test changes.
type credStore struct {
	mu    sync.Mutex
	creds map[[2]string]sasl.ScramCredential
}

func (s *credStore) ScramCredential(_ context.Context, user, mechanism string) (sasl.ScramCredential, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.creds[[2]string{user, mechanism}]
	return c, ok, nil
}

func (s *credStore) set(t *testing.T, user, mechanism, password string) {
	t.Helper()
	c, err := sasl.NewScramCredential(mechanism, password, sasl.MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.creds == nil {
		s.creds = map[[2]string]sasl.ScramCredential{}
	}
	s.creds[[2]string{user, mechanism}] = c
}

func (s *credStore) delete(user, mechanism string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.creds, [2]string{user, mechanism})
}

// serveSASL serves a frontend over nullCore on a SASL_PLAINTEXT listener
// offering PLAIN and both SCRAMs, alice's password being "s3cret".
func serveSASL(t *testing.T, cfg SASLConfig) (string, *credStore) {
	t.Helper()
	return serveSASLAuthorized(t, cfg, nil)
}

// serveSASLAuthorized is serveSASL with authz deciding requests.
func serveSASLAuthorized(t *testing.T, cfg SASLConfig, authz *acl.Authorizer) (string, *credStore) {
	t.Helper()
	store := &credStore{}
	store.set(t, "alice", sasl.ScramSHA512, "s3cret")
	store.set(t, "alice", sasl.ScramSHA256, "s3cret")
	s256, _ := sasl.NewScram(sasl.ScramSHA256, store)
	s512, _ := sasl.NewScram(sasl.ScramSHA512, store)
	cfg.Mechanisms = []sasl.Mechanism{s512, s256, sasl.NewPlain(store)}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(nullCore{}, Config{NodeID: 1, SASL: &cfg, Authorizer: authz})
	go s.ServeListener(lis, Listener{Name: "SASL_PLAINTEXT", Protocol: topicconfig.ProtocolSASLPlaintext})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return lis.Addr().String(), store
}

// rawConn speaks the Kafka protocol one request at a time on one
// connection.
type rawConn struct {
	t  *testing.T
	nc net.Conn
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, nc: nc}
}

// do sends req at version and decodes its response; an error means the
// broker closed the connection.
func (c *rawConn) do(req kmsg.Request, version int16) (kmsg.Response, error) {
	c.t.Helper()
	req.SetVersion(version)
	if _, err := c.nc.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("t")).AppendRequest(nil, req, 1)); err != nil {
		return nil, err
	}
	body, err := c.frame()
	if err != nil {
		return nil, err
	}
	resp := req.ResponseKind()
	resp.SetVersion(version)
	skip := 4
	if resp.IsFlexible() && req.Key() != apiVersionsKey {
		skip++
	}
	if err := resp.ReadFrom(body[skip:]); err != nil {
		c.t.Fatalf("decode %s response: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}

func (c *rawConn) frame() ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(c.nc, size[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err := io.ReadFull(c.nc, body)
	return body, err
}

func (c *rawConn) handshake(mechanism string, version int16) *kmsg.SASLHandshakeResponse {
	c.t.Helper()
	req := kmsg.NewPtrSASLHandshakeRequest()
	req.Mechanism = mechanism
	resp, err := c.do(req, version)
	if err != nil {
		c.t.Fatalf("SaslHandshake: %v", err)
	}
	return resp.(*kmsg.SASLHandshakeResponse)
}

func (c *rawConn) authenticate(msg []byte) (*kmsg.SASLAuthenticateResponse, error) {
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.SASLAuthBytes = msg
	resp, err := c.do(req, 2)
	if err != nil {
		return nil, err
	}
	return resp.(*kmsg.SASLAuthenticateResponse), nil
}

func (c *rawConn) metadata() error {
	_, err := c.do(kmsg.NewPtrMetadataRequest(), 9)
	return err
}

// closed asserts that the broker closed the connection.
func (c *rawConn) closed(err error) {
	c.t.Helper()
	if err == nil {
		c.t.Fatal("answered; want the connection closed")
	}
	if !errors.Is(err, io.EOF) && !isClosed(err) {
		c.t.Fatalf("want the connection closed, got %v", err)
	}
}

func TestSASLFranzGoAuthenticates(t *testing.T) {
	addr, _ := serveSASL(t, SASLConfig{})
	for _, m := range []struct {
		name string
		opt  kgo.Opt
	}{
		{"SCRAM-SHA-512", kgo.SASL(scram.Auth{User: "alice", Pass: "s3cret"}.AsSha512Mechanism())},
		{"SCRAM-SHA-256", kgo.SASL(scram.Auth{User: "alice", Pass: "s3cret"}.AsSha256Mechanism())},
		{"PLAIN", kgo.SASL(plain.Auth{User: "alice", Pass: "s3cret"}.AsMechanism())},
	} {
		t.Run(m.name, func(t *testing.T) {
			cl, err := kgo.NewClient(kgo.SeedBrokers(addr), m.opt)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl); err != nil {
				t.Fatalf("Metadata after authenticating: %v", err)
			}
		})
	}
}

// TestSASLNeedsNoACLs: authenticating is not an operation on a resource
// (Kafka authorizes after it): with an authorizer and no ACLs at all, a
// client still authenticates, and then is refused what it has no ACL for.
func TestSASLNeedsNoACLs(t *testing.T) {
	addr, _ := serveSASLAuthorized(t, SASLConfig{}, acl.New(acl.Config{}))
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.SASL(scram.Auth{User: "alice", Pass: "s3cret"}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("t")}}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("Metadata after authenticating: %v", err)
	}
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("Metadata of t without ACLs: %+v, want TOPIC_AUTHORIZATION_FAILED", resp.Topics)
	}
}

// TestSASLBadPasswordIsRefusedAfterTheDelay: a wrong password is answered
// SASL_AUTHENTICATION_FAILED, with a message, no sooner than
// connection.failed.authentication.delay.ms, and the connection is closed.
func TestSASLBadPasswordIsRefusedAfterTheDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	addr, _ := serveSASL(t, SASLConfig{FailedAuthenticationDelay: delay})
	c := dialRaw(t, addr)
	if hs := c.handshake(sasl.Plain, 1); hs.ErrorCode != 0 {
		t.Fatalf("handshake error %d", hs.ErrorCode)
	}
	start := time.Now()
	resp, err := c.authenticate([]byte("\x00alice\x00wrong"))
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	if took := time.Since(start); took < delay {
		t.Errorf("refused after %v, before the %v delay", took, delay)
	}
	if resp.ErrorCode != kerr.SaslAuthenticationFailed.Code || resp.ErrorMessage == nil || !strings.Contains(*resp.ErrorMessage, "invalid credentials") {
		t.Fatalf("error %d %v, want SASL_AUTHENTICATION_FAILED", resp.ErrorCode, resp.ErrorMessage)
	}
	if strings.Contains(*resp.ErrorMessage, "wrong") {
		t.Fatalf("the message %q holds the password", *resp.ErrorMessage)
	}
	c.closed(c.metadata())

	// franz-go reports it as such, rather than hanging.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.SASL(scram.Auth{User: "alice", Pass: "wrong"}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("franz-go with a wrong password: %v", err)
	}
}

// TestSASLOnlyHandshakeBeforeAuthentication: before authenticating, a
// connection may ask ApiVersions; Metadata, or a large frame, closes it.
func TestSASLOnlyHandshakeBeforeAuthentication(t *testing.T) {
	addr, _ := serveSASL(t, SASLConfig{MaxReceiveSize: 1024})
	c := dialRaw(t, addr)
	if _, err := c.do(kmsg.NewPtrApiVersionsRequest(), 3); err != nil {
		t.Fatalf("ApiVersions before authenticating: %v", err)
	}
	c.closed(c.metadata())

	c = dialRaw(t, addr)
	big := kmsg.NewPtrSASLHandshakeRequest()
	big.Mechanism = strings.Repeat("x", 2000)
	_, err := c.do(big, 1)
	c.closed(err)

	// An unknown mechanism is answered, with those enabled, and closed.
	c = dialRaw(t, addr)
	hs := c.handshake("GSSAPI", 1)
	if hs.ErrorCode != kerr.UnsupportedSaslMechanism.Code || strings.Join(hs.SupportedMechanisms, ",") != "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN" {
		t.Fatalf("handshake: %+v", hs)
	}
	c.closed(c.metadata())

	// SaslAuthenticate without a handshake.
	c = dialRaw(t, addr)
	resp, err := c.authenticate([]byte("\x00alice\x00s3cret"))
	if err != nil || resp.ErrorCode != kerr.IllegalSaslState.Code {
		t.Fatalf("authenticate without handshake: %v %v", resp, err)
	}
	c.closed(c.metadata())
}

// TestSASLHandshakeV0: after a v0 handshake the exchange is bare
// length-prefixed frames, as old clients send it; then requests are
// served.
func TestSASLHandshakeV0(t *testing.T) {
	addr, _ := serveSASL(t, SASLConfig{})
	c := dialRaw(t, addr)
	if hs := c.handshake(sasl.Plain, 0); hs.ErrorCode != 0 {
		t.Fatalf("handshake error %d", hs.ErrorCode)
	}
	token := []byte("\x00alice\x00s3cret")
	if _, err := c.nc.Write(binary.BigEndian.AppendUint32(nil, uint32(len(token)))); err != nil {
		t.Fatal(err)
	}
	if _, err := c.nc.Write(token); err != nil {
		t.Fatal(err)
	}
	if reply, err := c.frame(); err != nil || len(reply) != 0 {
		t.Fatalf("reply %q, %v; want an empty frame", reply, err)
	}
	if err := c.metadata(); err != nil {
		t.Fatalf("Metadata after authenticating: %v", err)
	}

	// A refused v0 exchange is closed without an answer.
	c = dialRaw(t, addr)
	c.handshake(sasl.Plain, 0)
	token = []byte("\x00alice\x00nope")
	c.nc.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(token))), token...))
	_, err := c.frame()
	c.closed(err)
}

// scramExchange authenticates c with SCRAM-SHA-512 through SaslAuthenticate
// and returns the final response.
func scramExchange(t *testing.T, c *rawConn, user, password string) (*kmsg.SASLAuthenticateResponse, error) {
	t.Helper()
	if hs := c.handshake(sasl.ScramSHA512, 1); hs.ErrorCode != 0 {
		t.Fatalf("handshake error %d", hs.ErrorCode)
	}
	ctx := context.Background()
	session, msg, err := scram.Auth{User: user, Pass: password}.AsSha512Mechanism().Authenticate(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := c.authenticate(msg)
		if err != nil || resp.ErrorCode != 0 {
			return resp, err
		}
		done, next, err := session.Challenge(resp.SASLAuthBytes)
		if err != nil {
			t.Fatalf("client: %v", err)
		}
		if done {
			return resp, nil
		}
		msg = next
	}
}

// TestSASLReauthentication (KIP-368): the session lifetime is returned;
// before it ends the client re-authenticates on the same connection;
// after it, a request closes the connection; and a credential deleted
// meanwhile fails the re-authentication.
func TestSASLReauthentication(t *testing.T) {
	const life = 400 * time.Millisecond
	addr, store := serveSASL(t, SASLConfig{MaxReauth: life})
	c := dialRaw(t, addr)
	resp, err := scramExchange(t, c, "alice", "s3cret")
	if err != nil || resp.ErrorCode != 0 {
		t.Fatalf("authenticate: %v %v", resp, err)
	}
	if ms := resp.SessionLifetimeMillis; ms <= 0 || ms > life.Milliseconds() {
		t.Fatalf("session lifetime %d ms, want up to %d", ms, life.Milliseconds())
	}
	if err := c.metadata(); err != nil {
		t.Fatal(err)
	}
	// Re-authenticating on the same connection starts a new lifetime.
	if resp, err := scramExchange(t, c, "alice", "s3cret"); err != nil || resp.ErrorCode != 0 {
		t.Fatalf("re-authenticate: %v %v", resp, err)
	}
	expires := time.Now().Add(life)
	if err := c.metadata(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(expires)) // the session's lifetime is what is tested
	c.closed(c.metadata())

	// Deleted while the connection is open: the re-authentication fails.
	c = dialRaw(t, addr)
	if resp, err := scramExchange(t, c, "alice", "s3cret"); err != nil || resp.ErrorCode != 0 {
		t.Fatalf("authenticate: %v %v", resp, err)
	}
	store.delete("alice", sasl.ScramSHA512)
	resp, err = scramExchange(t, c, "alice", "s3cret")
	if err != nil || resp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("re-authentication after deletion: %v %v", resp, err)
	}
	c.closed(c.metadata())
}

// FuzzSASLExchange feeds a SASL listener's connection a handshake and
// arbitrary SaslAuthenticate messages: nothing may panic, and no fuzzed
// message may authenticate.
func FuzzSASLExchange(f *testing.F) {
	f.Add("SCRAM-SHA-512", []byte("n,,n=alice,r=abc"), []byte("c=biws,r=abc,p=AAAA"))
	f.Add("PLAIN", []byte("\x00alice\x00guess"), []byte(nil))
	f.Add("SCRAM-SHA-256", []byte("n,a=alice,n=alice,r=x"), []byte("c=bixhPWFsaWNlLA==,r=x,p="))
	store := &credStore{}
	store.set(&testing.T{}, "alice", sasl.ScramSHA512, "a password no fuzzer finds")
	s256, _ := sasl.NewScram(sasl.ScramSHA256, store)
	s512, _ := sasl.NewScram(sasl.ScramSHA512, store)
	s := New(nullCore{}, Config{NodeID: 1, SASL: &SASLConfig{Mechanisms: []sasl.Mechanism{s512, s256, sasl.NewPlain(store)}}})
	f.Fuzz(func(t *testing.T, mechanism string, first, second []byte) {
		client, server := net.Pipe()
		defer client.Close()
		c := newConn(s, server, Listener{Name: "SASL_PLAINTEXT", Protocol: topicconfig.ProtocolSASLPlaintext})
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.serve()
		}()
		rc := &rawConn{t: t, nc: client}
		client.SetDeadline(time.Now().Add(5 * time.Second))
		req := kmsg.NewPtrSASLHandshakeRequest()
		req.Mechanism = mechanism
		if _, err := rc.do(req, 1); err == nil {
			for _, msg := range [][]byte{first, second} {
				resp, err := rc.authenticate(msg)
				if err != nil || resp.ErrorCode != 0 {
					break
				}
			}
		}
		client.Close()
		<-done
		if c.sasl.authenticated {
			t.Fatalf("authenticated by %s %q %q", mechanism, first, second)
		}
	})
}

// Each mechanism offered has its success and failure series from the
// start, at zero.
func TestSASLAuthenticationSeriesExistFromTheStart(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s := New(nullCore{}, Config{NodeID: 1, Registerer: reg,
		SASL: &SASLConfig{Mechanisms: []sasl.Mechanism{sasl.NewPlain(&credStore{})}}})
	defer s.Shutdown(t.Context())
	if got := testutil.CollectAndCount(reg, "strata_kafka_sasl_authentications_total"); got != 2 {
		t.Fatalf("strata_kafka_sasl_authentications_total series: %d, want 2 (PLAIN success and failure)", got)
	}
}
