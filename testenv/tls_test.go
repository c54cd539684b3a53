package testenv_test

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

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/credentials"

	"github.com/strata-broker/strata/api/client"
	"github.com/strata-broker/strata/internal/tlsconf"
	"github.com/strata-broker/strata/testenv"
)

// TestDevTLS: `strata dev --tls` serves TLS on the Kafka and gRPC ports
// with the certificates it generated; franz-go and kcat produce and
// consume over it, the strata CLI lists topics with --tls-ca, a plaintext
// Kafka client is cut off at once, and a restart reuses the CA.
func TestDevTLS(t *testing.T) {
	dev := testenv.StartDev(t, testenv.DevOptions{ExtraArgs: []string{"--tls"}})
	ca := filepath.Join(dev.DataDir, "tls", "ca.pem")
	tlsCfg, err := tlsconf.ClientConfig(ca, "", "")
	if err != nil {
		t.Fatal(err)
	}
	const topic = "tls-topic"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	produceConsume := func(value string) {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(dev.KafkaAddr), kgo.DialTLSConfig(tlsCfg.Clone()),
			kgo.AllowAutoTopicCreation(), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(value)}).FirstErr(); err != nil {
			t.Fatalf("produce over TLS: %v", err)
		}
		for {
			fs := cl.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatalf("consume over TLS: %q not read: %v", value, err)
			}
			found := false
			fs.EachRecord(func(r *kgo.Record) { found = found || string(r.Value) == value })
			if found {
				return
			}
		}
	}
	produceConsume("over-tls")

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

	// The CLI over TLS, and refused without it.
	out := strataCLI(t, dev, "", "topics", "list", "--tls-ca", ca)
	if !strings.Contains(out, topic) {
		t.Fatalf("strata topics list --tls-ca: %q lacks %s", out, topic)
	}
	cmd := exec.Command(testenv.Binary(t), "topics", "list", "--bootstrap-server", dev.GRPCAddr)
	if plain, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("strata topics list without --tls-ca succeeded against the TLS port: %s", plain)
	}

	if kcat, err := exec.LookPath("kcat"); err != nil {
		t.Log("kcat not installed; skipping its rows")
	} else {
		tlsArgs := []string{"-b", dev.KafkaAddr, "-X", "security.protocol=ssl", "-X", "ssl.ca.location=" + ca, "-t", topic}
		p := exec.CommandContext(ctx, kcat, append(tlsArgs, "-P")...)
		p.Stdin = strings.NewReader("from-kcat\n")
		if out, err := p.CombinedOutput(); err != nil {
			t.Fatalf("kcat produce over TLS: %v: %s", err, out)
		}
		c := exec.CommandContext(ctx, kcat, append(tlsArgs, "-C", "-o", "beginning", "-e", "-q")...)
		var stdout, stderr bytes.Buffer
		c.Stdout, c.Stderr = &stdout, &stderr
		if err := c.Run(); err != nil {
			t.Fatalf("kcat consume over TLS: %v: %s", err, stderr.String())
		}
		if !strings.Contains(stdout.String(), "from-kcat") || !strings.Contains(stdout.String(), "over-tls") {
			t.Fatalf("kcat consumed %q; want both records", stdout.String())
		}
	}

	// A restart keeps the generated CA: clients configured with it still work.
	dev.Stop()
	dev.Restart(t)
	produceConsume(fmt.Sprintf("after-restart-%d", time.Now().UnixNano()))
}

// TestClusterReplicationOverTLS: with the gRPC port on TLS (and mutual TLS
// required), brokers still replicate to each other: an acks=all produce to
// a topic whose three replicas must all be in sync is acknowledged, which
// needs both followers to have fetched over TLS with the cluster's CA and
// their own certificates.
func TestClusterReplicationOverTLS(t *testing.T) {
	g, err := tlsconf.Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3, ExtraArgs: []string{
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
