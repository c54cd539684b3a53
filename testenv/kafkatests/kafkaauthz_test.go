package kafkatests_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/internal/tlsconf"
	"github.com/strata-broker/strata/testenv"
)

// TestKafkaACLsEnforcedOnCertificatePrincipals: on an SSL listener with
// ssl.client.auth=required, a client's principal is its certificate's
// subject. The principal granted Write and Read on a topic produces to
// and consumes it; another, with no ACLs, gets TOPIC_AUTHORIZATION_FAILED
// at once rather than a hang, and what it tried to write is not there.
func TestKafkaACLsEnforcedOnCertificatePrincipals(t *testing.T) {
	testCertificatePrincipals(t, "", "User:CN=strata-broker", "User:CN=strata-client")
}

// TestSSLPrincipalMappingRules: with ssl.principal.mapping.rules, the
// principal is the subject as the first matching rule rewrites it, so the
// ACLs name User:strata-client, not User:CN=strata-client.
func TestSSLPrincipalMappingRules(t *testing.T) {
	testCertificatePrincipals(t, "RULE:^CN=(.*?)$/$1/L,DEFAULT", "User:strata-broker", "User:strata-client")
}

// testCertificatePrincipals runs the scenario on a broker with the given
// ssl.principal.mapping.rules, under which the broker's certificate (the
// administrator's) is admin and client.pem's is alice.
func testCertificatePrincipals(t *testing.T, rules, admin, alice string) {
	args := []string{"--tls",
		"--config", "ssl.client.auth=required",
		"--config", "authorizer.class.name=strata",
		"--config", "super.users=" + admin,
	}
	if rules != "" {
		args = append(args, "--config", "ssl.principal.mapping.rules="+rules)
	}
	dev := testenv.StartDev(t, testenv.DevOptions{KafkaProtocol: "SSL", ExtraArgs: args})
	dir := filepath.Join(dev.DataDir, "tls")
	ca := filepath.Join(dir, "ca.pem")
	const topic = "granted"
	mallory := signClientCert(t, dir, "mallory")
	clientFor := func(certPEM string, opts ...kgo.Opt) *kgo.Client {
		t.Helper()
		cfg, err := tlsconf.ClientConfig(ca, certPEM, "")
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(dev.KafkaAddr), kgo.DialTLSConfig(cfg)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	adm := kadm.NewClient(clientFor(filepath.Join(dir, "server.pem")))
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatalf("create topic as a super user: %v", err)
	}
	results, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow(alice).AllowHosts().Topics(topic).
		Operations(kadm.OpWrite, kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("create ACL: %v", r.Err)
		}
	}

	// The ACLs reach the authorizer through the etcd watch: alice's first
	// produce may still be refused, so it is tried until the deadline.
	writer := clientFor(filepath.Join(dir, "client.pem"), kgo.DefaultProduceTopic(topic))
	for {
		err := writer.ProduceSync(ctx, &kgo.Record{Value: []byte("from-alice")}).FirstErr()
		if err == nil {
			break
		}
		if !errors.Is(err, kerr.TopicAuthorizationFailed) || ctx.Err() != nil {
			t.Fatalf("alice, granted Write on %s: %v", topic, err)
		}
	}
	reader := clientFor(filepath.Join(dir, "client.pem"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	var values []string
	for len(values) == 0 {
		fs := reader.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("alice, granted Read on %s, read nothing: %v", topic, ctx.Err())
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("alice's fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) { values = append(values, string(r.Value)) })
	}
	if values[0] != "from-alice" {
		t.Fatalf("alice read %q", values)
	}

	// mallory has no ACLs: refused, promptly.
	refusedCtx, cancelRefused := context.WithTimeout(ctx, 20*time.Second)
	defer cancelRefused()
	intruder := clientFor(mallory, kgo.DefaultProduceTopic(topic))
	err = intruder.ProduceSync(refusedCtx, &kgo.Record{Value: []byte("from-mallory")}).FirstErr()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("mallory's produce without ACLs: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	offsets, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := offsets.Lookup(topic, 0); o.Offset != 1 {
		t.Fatalf("end offset %d after alice's one record and mallory's refused one, want 1", o.Offset)
	}
}

// signClientCert makes a client certificate for CN=name with the CA that
// `strata dev --tls` generated in dir and returns the PEM file (key and
// certificate) it wrote.
func signClientCert(t *testing.T, dir, name string) string {
	t.Helper()
	caCert, err := tls.LoadX509KeyPair(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	parent, err := x509.ParseCertificate(caCert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, caCert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	out := append(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	path := filepath.Join(t.TempDir(), name+".pem")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
