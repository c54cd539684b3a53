package kafkatests_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/strata-broker/strata/api/client"
	"github.com/strata-broker/strata/internal/tlsconf"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// TestDevTLS is README's secured walk-through: `strata dev --tls` serves
// Kafka as SASL_SSL and gRPC over TLS with ACLs enforced; the CLI, its
// client certificate a super user, creates topics, a SCRAM user and an ACL
// letting it write and read one topic; kcat as that user produces and
// consumes that topic over SASL_SSL and is refused the other; a plaintext
// Kafka client is cut off at once, the CLI without TLS or without its
// certificate gets nothing; a restart keeps the CA, the user and its ACL.
func TestDevTLS(t *testing.T) {
	compatInstall(t) // kcat
	dev := testenv.StartDev(t, testenv.DevOptions{ExtraArgs: []string{"--tls"}})
	dir := filepath.Join(dev.DataDir, "tls")
	ca, cert := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem")
	admin := []string{"--tls-ca", ca, "--tls-cert", cert}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	testenvtest.StrataCLI(t, dev, "", append([]string{"topics", "create", "orders", "--partitions", "3"}, admin...)...)
	testenvtest.StrataCLI(t, dev, "", append([]string{"topics", "create", "payments"}, admin...)...)
	testenvtest.StrataCLI(t, dev, "alice-secret\n", append([]string{"users", "create", "alice", "--mechanism", "SCRAM-SHA-512"}, admin...)...)
	testenvtest.StrataCLI(t, dev, "", append([]string{"acls", "add", "--allow-principal", "User:alice",
		"--operation", "Write", "--operation", "Read", "--topic", "orders"}, admin...)...)
	if out := testenvtest.StrataCLI(t, dev, "", append([]string{"acls", "list", "--topic", "orders"}, admin...)...); !strings.Contains(out, "principal=User:alice") {
		t.Fatalf("strata acls list --topic orders:\n%s\nlacks alice's ACLs", out)
	}

	kcat := func(stdin string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.CommandContext(ctx, "kcat", append([]string{"-b", dev.KafkaAddr,
			"-X", "security.protocol=SASL_SSL", "-X", "ssl.ca.location=" + ca, "-X", "sasl.mechanisms=SCRAM-SHA-512",
			"-X", "sasl.username=alice", "-X", "sasl.password=alice-secret", "-X", "message.timeout.ms=20000"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, stderr.String())
		}
		return stdout.String() + stderr.String(), err
	}
	produceConsume := func(value string) {
		t.Helper()
		if out, err := kcat(value+"\n", "-P", "-t", "orders"); err != nil || strings.Contains(strings.ToLower(out), "error") {
			t.Fatalf("kcat as alice, produce to orders over SASL_SSL: %v %s", err, out)
		}
		out, err := kcat("", "-C", "-t", "orders", "-o", "beginning", "-e", "-q")
		if err != nil || !strings.Contains(out, value) {
			t.Fatalf("kcat as alice, consume orders: %v; read %q, want %s", err, out, value)
		}
	}
	produceConsume("first-order")

	// The topic alice has no ACL for: refused, not hung.
	start := time.Now()
	out, _ := kcat("charge\n", "-P", "-t", "payments")
	if !strings.Contains(out, "Topic authorization failed") {
		t.Fatalf("kcat as alice, produce to payments: %q, want Topic authorization failed", out)
	}
	t.Logf("produce to payments refused in %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))

	// A plaintext Kafka request on the TLS port is not a TLS handshake: the
	// broker closes the connection rather than leave the client waiting.
	conn, err := net.Dial("tcp", dev.KafkaAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// ApiVersions v0, correlation id 1, client id "t".
	if _, err := conn.Write([]byte{0, 0, 0, 11, 0, 18, 0, 0, 0, 0, 0, 1, 0, 1, 't'}); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	reply, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("plaintext client left hanging on the TLS listener (read %d bytes)", len(reply))
	}
	if len(reply) >= 4 && reply[0] == 0 {
		t.Fatalf("plaintext client got what looks like a Kafka response: % x", reply)
	}

	// The CLI: without TLS it cannot connect; over TLS without its
	// certificate it is User:ANONYMOUS, which may not touch ACLs.
	cmd := exec.Command(testenv.Binary(t), "topics", "list", "--bootstrap-server", dev.GRPCAddr)
	if plain, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("strata topics list without TLS succeeded against the TLS port: %s", plain)
	}
	cmd = exec.Command(testenv.Binary(t), "acls", "add", "--allow-principal", "User:eve", "--operation", "All", "--topic", "payments",
		"--bootstrap-server", dev.GRPCAddr, "--tls-ca", ca)
	if anon, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(anon), "CLUSTER_AUTHORIZATION_FAILED") {
		t.Fatalf("strata acls add without the client certificate: %v %s, want CLUSTER_AUTHORIZATION_FAILED", err, anon)
	}

	// A restart keeps the generated CA, the user and its ACL.
	dev.Stop()
	dev.Restart(t)
	produceConsume(fmt.Sprintf("after-restart-%d", time.Now().UnixNano()))
}

// TestClusterReplicationOverTLS: with the gRPC port on mutual TLS and an
// authorizer on, brokers replicate to each other when their certificate's
// principal (User:CN=strata-broker) is a super user: an acks=all produce
// to a topic whose three replicas must all be in sync is acknowledged,
// which needs both followers to have fetched over TLS with the cluster's
// CA and their own certificates, and their ReplicaFetch to pass the
// ClusterAction check.
func TestClusterReplicationOverTLS(t *testing.T) {
	g, err := tlsconf.Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3, ExtraArgs: []string{
		"--config", "authorizer.class.name=strata",
		"--config", "super.users=User:CN=strata-broker;User:CN=strata-client",
		"--config", "grpc.ssl.keystore.location=" + g.Server,
		"--config", "grpc.ssl.truststore.location=" + g.CA,
		"--config", "grpc.ssl.client.auth=required",
	}})
	tlsCfg, err := tlsconf.ClientConfig(g.CA, g.Client, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, c.BootstrapServers(), client.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.CreateTopic(ctx, "replicated", 1, 3, map[string]string{"min.insync.replicas": "3"}); err != nil {
		t.Fatalf("create topic over mutual TLS: %v", err)
	}
	p := client.NewProducer(cl, client.ProducerOptions{Acks: client.AcksAll})
	defer p.Close()
	done := make(chan error, 1)
	p.Produce(ctx, "replicated", client.Record{Partition: 0, Value: []byte("v")}, func(_ client.Result, err error) { done <- err })
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("acks=all produce with min.insync.replicas=3: %v", err)
	}
}
