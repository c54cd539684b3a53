package kafkatests_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/internal/tlsconf"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// startSASLDev starts `strata dev` with a SASL_PLAINTEXT Kafka listener
// and creates alice (SCRAM-SHA-512, password from a file) and bob (both
// SCRAMs, password on stdin) with `strata users create`.
func startSASLDev(t *testing.T, extra ...string) *testenv.Dev {
	t.Helper()
	dev := testenv.StartDev(t, testenv.DevOptions{KafkaProtocol: "SASL_PLAINTEXT", ExtraArgs: append([]string{
		"--config", "sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
	}, extra...)})
	pwFile := filepath.Join(t.TempDir(), "alice.pw")
	if err := os.WriteFile(pwFile, []byte("alice-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	testenvtest.StrataCLI(t, dev, "", "users", "create", "alice", "--mechanism", "SCRAM-SHA-512", "--iterations", "8192", "--password-file", pwFile)
	testenvtest.StrataCLI(t, dev, "bob-secret\n", "users", "create", "bob")
	out := testenvtest.StrataCLI(t, dev, "", "users", "list")
	for _, want := range []string{"alice  SCRAM-SHA-512  8192", "bob    SCRAM-SHA-256  4096", "bob    SCRAM-SHA-512  4096"} {
		if !strings.Contains(out, want) {
			t.Fatalf("strata users list:\n%s\nlacks %q", out, want)
		}
	}
	return dev
}

// TestSASLListener: on a SASL_PLAINTEXT listener franz-go and kcat
// authenticate with SCRAM-SHA-512 and produce and consume; a wrong
// password is refused with SASL_AUTHENTICATION_FAILED rather than left
// hanging; an unauthenticated Metadata request closes the connection.
func TestSASLListener(t *testing.T) {
	dev := startSASLDev(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic = "sasl-topic"
	cl, err := kgo.NewClient(kgo.SeedBrokers(dev.KafkaAddr),
		kgo.SASL(scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha512Mechanism()),
		kgo.AllowAutoTopicCreation(), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("from-franz")}).FirstErr(); err != nil {
		t.Fatalf("produce with SCRAM-SHA-512: %v", err)
	}

	if kcat, err := exec.LookPath("kcat"); err != nil {
		t.Log("kcat not installed; skipping its rows")
	} else {
		args := func(user, pass string) []string {
			return []string{"-b", dev.KafkaAddr, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-512",
				"-X", "sasl.username=" + user, "-X", "sasl.password=" + pass, "-t", topic}
		}
		p := exec.CommandContext(ctx, kcat, append(args("alice", "alice-secret"), "-P")...)
		p.Stdin = strings.NewReader("from-kcat\n")
		if out, err := p.CombinedOutput(); err != nil {
			t.Fatalf("kcat produce with SCRAM-SHA-512: %v: %s", err, out)
		}
		c := exec.CommandContext(ctx, kcat, append(args("bob", "bob-secret"), "-C", "-o", "beginning", "-e", "-q")...)
		var stdout, stderr bytes.Buffer
		c.Stdout, c.Stderr = &stdout, &stderr
		if err := c.Run(); err != nil {
			t.Fatalf("kcat consume with SCRAM-SHA-512: %v: %s", err, stderr.String())
		}
		if !strings.Contains(stdout.String(), "from-kcat") || !strings.Contains(stdout.String(), "from-franz") {
			t.Fatalf("kcat consumed %q; want both records", stdout.String())
		}
		// A wrong password: kcat gives up with the broker's error.
		bad := exec.CommandContext(ctx, kcat, append(args("alice", "wrong"), "-L", "-m", "10")...)
		out, err := bad.CombinedOutput()
		if err == nil || !strings.Contains(strings.ToLower(string(out)), "authentication") {
			t.Fatalf("kcat with a wrong password: %v: %s", err, out)
		}
	}

	// franz-go consumes what both produced.
	seen := map[string]bool{}
	for !seen["from-franz"] {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consume with SCRAM-SHA-512: %v (seen %v)", err, seen)
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}

	bad, err := kgo.NewClient(kgo.SeedBrokers(dev.KafkaAddr), kgo.SASL(scram.Auth{User: "alice", Pass: "wrong"}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	defer pcancel()
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(pctx, bad); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}

	// Kafka's SCRAM credential APIs, as an authenticated client: carol
	// is created and can log in; deleting what does not exist is refused
	// per user.
	adm := kadm.NewClient(cl)
	altered, err := adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "nobody", Mechanism: kadm.ScramSha256}},
		[]kadm.UpsertSCRAM{{User: "carol", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "carol-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := altered["carol"]; r.Err != nil {
		t.Fatalf("AlterUserScramCredentials carol: %v", r.Err)
	}
	if r := altered["nobody"]; !errors.Is(r.Err, kerr.ResourceNotFound) {
		t.Fatalf("deleting a missing credential: %v, want RESOURCE_NOT_FOUND", r.Err)
	}
	described, err := adm.DescribeUserSCRAMs(ctx, "carol", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if d := described["alice"]; d.Err != nil || len(d.CredInfos) != 1 || d.CredInfos[0].Mechanism != kadm.ScramSha512 || d.CredInfos[0].Iterations != 8192 {
		t.Fatalf("DescribeUserScramCredentials alice: %+v", d)
	}
	await.True(t, 10*time.Second, "carol to log in with PLAIN", func() bool {
		nc := dialSASL(t, dev.KafkaAddr)
		return plainOnConn(t, nc, "carol", "carol-secret") == 0
	})

	// Metadata before authenticating closes the connection.
	nc := dialSASL(t, dev.KafkaAddr)
	if _, err := kafkaRoundTrip(nc, kmsg.NewPtrMetadataRequest(), 9); !isConnClosed(err) {
		t.Fatalf("unauthenticated Metadata: %v, want the connection closed", err)
	}
}

// TestSASLReauthAfterDeletion (KIP-368): with connections.max.reauth.ms
// set, a connection that authenticated re-authenticates on the same
// connection; once `strata users delete` removed the user, its
// re-authentication is refused and the connection closed.
func TestSASLReauthAfterDeletion(t *testing.T) {
	dev := startSASLDev(t, "--config", "connections.max.reauth.ms=60000")
	nc := dialSASL(t, dev.KafkaAddr)
	resp, err := scramOnConn(t, nc, "bob", "bob-secret")
	if err != nil || resp.ErrorCode != 0 {
		t.Fatalf("authenticate: %+v %v", resp, err)
	}
	if ms := resp.SessionLifetimeMillis; ms <= 0 || ms > 60000 {
		t.Fatalf("session lifetime %d ms, want up to 60000", ms)
	}
	if resp, err := scramOnConn(t, nc, "bob", "bob-secret"); err != nil || resp.ErrorCode != 0 {
		t.Fatalf("re-authenticate: %+v %v", resp, err)
	}
	testenvtest.StrataCLI(t, dev, "", "users", "delete", "bob")
	if out := testenvtest.StrataCLI(t, dev, "", "users", "list"); strings.Contains(out, "bob") {
		t.Fatalf("bob still listed after delete:\n%s", out)
	}
	// The broker learns of the deletion through its watch.
	await.True(t, 10*time.Second, "a new connection as bob to be refused", func() bool {
		resp, err := scramOnConn(t, dialSASL(t, dev.KafkaAddr), "bob", "bob-secret")
		return err == nil && resp.ErrorCode == kerr.SaslAuthenticationFailed.Code
	})
	resp, err = scramOnConn(t, nc, "bob", "bob-secret")
	if err != nil || resp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("re-authentication after deletion: %+v %v, want SASL_AUTHENTICATION_FAILED", resp, err)
	}
	if _, err := kafkaRoundTrip(nc, kmsg.NewPtrMetadataRequest(), 9); !isConnClosed(err) {
		t.Fatalf("Metadata after a failed re-authentication: %v, want the connection closed", err)
	}
}

func dialSASL(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	return nc
}

// kafkaRoundTrip sends req on nc and decodes the response; an error means
// the connection ended.
func kafkaRoundTrip(nc net.Conn, req kmsg.Request, version int16) (kmsg.Response, error) {
	req.SetVersion(version)
	if _, err := nc.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("t")).AppendRequest(nil, req, 1)); err != nil {
		return nil, err
	}
	var size [4]byte
	if _, err := io.ReadFull(nc, size[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(nc, body); err != nil {
		return nil, err
	}
	resp := req.ResponseKind()
	resp.SetVersion(version)
	skip := 4 // correlation id
	if resp.IsFlexible() {
		skip++ // header tags
	}
	return resp, resp.ReadFrom(body[skip:])
}

func isConnClosed(err error) bool {
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout()) &&
		(errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "connection reset"))
}

// plainOnConn authenticates with PLAIN on nc and returns the error code.
func plainOnConn(t *testing.T, nc net.Conn, user, pass string) int16 {
	t.Helper()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Mechanism = "PLAIN"
	if _, err := kafkaRoundTrip(nc, hs, 1); err != nil {
		t.Fatalf("SaslHandshake: %v", err)
	}
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.SASLAuthBytes = []byte("\x00" + user + "\x00" + pass)
	r, err := kafkaRoundTrip(nc, req, 1)
	if err != nil {
		t.Fatalf("SaslAuthenticate: %v", err)
	}
	return r.(*kmsg.SASLAuthenticateResponse).ErrorCode
}

// TestSASLSSL: a SASL_SSL listener takes the ssl.* keys of an SSL one;
// franz-go authenticates with SCRAM-SHA-512 over TLS and produces.
func TestSASLSSL(t *testing.T) {
	g, err := tlsconf.Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dev := testenv.StartDev(t, testenv.DevOptions{KafkaProtocol: "SASL_SSL", ExtraArgs: []string{
		"--config", "ssl.keystore.location=" + g.Server,
	}})
	testenvtest.StrataCLI(t, dev, "dana-secret\n", "users", "create", "dana", "--mechanism", "SCRAM-SHA-512")
	tlsCfg, err := tlsconf.ClientConfig(g.CA, "", "")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(dev.KafkaAddr), kgo.DialTLSConfig(tlsCfg),
		kgo.SASL(scram.Auth{User: "dana", Pass: "dana-secret"}.AsSha512Mechanism()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "sasl-ssl", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce over SASL_SSL: %v", err)
	}
}

// scramOnConn runs SaslHandshake v1 and a SCRAM-SHA-512 exchange in
// SaslAuthenticate v2 requests on nc; it returns the last response.
func scramOnConn(t *testing.T, nc net.Conn, user, pass string) (*kmsg.SASLAuthenticateResponse, error) {
	t.Helper()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Mechanism = "SCRAM-SHA-512"
	r, err := kafkaRoundTrip(nc, hs, 1)
	if err != nil {
		return nil, err
	}
	if code := r.(*kmsg.SASLHandshakeResponse).ErrorCode; code != 0 {
		t.Fatalf("SaslHandshake: error %d", code)
	}
	session, msg, err := scram.Auth{User: user, Pass: pass}.AsSha512Mechanism().Authenticate(context.Background(), nc.RemoteAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	for {
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.SASLAuthBytes = msg
		r, err := kafkaRoundTrip(nc, req, 2)
		if err != nil {
			return nil, err
		}
		resp := r.(*kmsg.SASLAuthenticateResponse)
		if resp.ErrorCode != 0 {
			return resp, nil
		}
		done, next, err := session.Challenge(resp.SASLAuthBytes)
		if err != nil {
			t.Fatalf("SCRAM client: %v", err)
		}
		if done {
			return resp, nil
		}
		msg = next
	}
}
