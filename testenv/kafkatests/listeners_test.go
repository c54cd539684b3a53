package kafkatests_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/internal/tlsconf"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// TestTwoKafkaListeners: one broker with Kafka's listeners, a PLAINTEXT
// listener INTERNAL and an SSL listener EXTERNAL with its own key store
// (listener.name.external.ssl.*) and its own advertised address. A client
// bootstrapped on either listener is told that listener's address in
// Metadata, DescribeCluster and FindCoordinator, and produces and
// consumes through it; what one produced the other reads.
func TestTwoKafkaListeners(t *testing.T) {
	g, err := tlsconf.Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	internal, external := testenv.FreeAddr(t), testenv.FreeAddr(t)
	_, externalPort, _ := net.SplitHostPort(external)
	// Advertised by name, not by the address it binds: the SSL client
	// checks the certificate against localhost.
	externalAdvertised := net.JoinHostPort("localhost", externalPort)
	testenv.StartDev(t, testenv.DevOptions{ExtraArgs: []string{
		"--kafka-addr", "",
		"--config", "listeners=INTERNAL://" + internal + ",EXTERNAL://" + external,
		"--config", "listener.security.protocol.map=INTERNAL:PLAINTEXT,EXTERNAL:SSL",
		"--config", "advertised.listeners=EXTERNAL://" + externalAdvertised,
		"--config", "listener.name.external.ssl.keystore.location=" + g.Server,
	}})
	tlsCfg, err := tlsconf.ClientConfig(g.CA, "", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()

	clients := map[string]*kgo.Client{}
	for _, l := range []struct {
		name, seed, advertised string
		opts                   []kgo.Opt
	}{
		{"INTERNAL", internal, internal, nil},
		{"EXTERNAL", externalAdvertised, externalAdvertised, []kgo.Opt{kgo.DialTLSConfig(tlsCfg)}},
	} {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(l.seed)}, l.opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		clients[l.name] = cl
		checkListenerAddrs(ctx, t, cl, l.name, map[int32]string{1: l.advertised})
	}

	adm := kadm.NewClient(clients["INTERNAL"])
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "two-listeners"); err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{"INTERNAL", "EXTERNAL"} {
		value := "via-" + from
		if err := clients[from].ProduceSync(ctx, &kgo.Record{Topic: "two-listeners", Value: []byte(value)}).FirstErr(); err != nil {
			t.Fatalf("produce on %s: %v", from, err)
		}
	}
	for name := range clients {
		testenvtest.ConsumeValues(ctx, t, name, clients[name].Opts(), "two-listeners", "via-INTERNAL", "via-EXTERNAL")
	}
}

// checkListenerAddrs asks through cl for Metadata, DescribeCluster and a
// group's coordinator, and fails unless every broker is listed at want's
// address for it, the addresses of the listener cl is connected to.
func checkListenerAddrs(ctx context.Context, t *testing.T, cl *kgo.Client, listener string, want map[int32]string) {
	t.Helper()
	// Every broker's view of the registrations settles after the cluster
	// starts: poll until this one lists them all.
	await.NoError(t, 30*time.Second, listener+" lists every broker at its "+listener+" address", func() error {
		md, err := (&kmsg.MetadataRequest{Version: 12}).RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		got := map[int32]string{}
		for _, b := range md.Brokers {
			got[b.NodeID] = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("Metadata on %s lists %v, want %v", listener, got, want)
		}
		dc, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		got = map[int32]string{}
		for _, b := range dc.Brokers {
			got[b.NodeID] = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("DescribeCluster on %s lists %v, want %v", listener, got, want)
		}
		fc := kmsg.NewPtrFindCoordinatorRequest()
		fc.CoordinatorKey = "group-on-" + listener
		fr, err := fc.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		if fr.ErrorCode != 0 {
			return fmt.Errorf("FindCoordinator on %s: error %d", listener, fr.ErrorCode)
		}
		if addr := net.JoinHostPort(fr.Host, strconv.Itoa(int(fr.Port))); addr != want[fr.NodeID] {
			return fmt.Errorf("FindCoordinator on %s: broker %d at %s, want %s", listener, fr.NodeID, addr, want[fr.NodeID])
		}
		return nil
	})
}

// TestKafkaListenersRefused: a bad declaration of the listeners fails the
// start with a message saying what is wrong, before anything is bound.
func TestKafkaListenersRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the broker binary")
	}
	// a stays bound by the test: every refusal must come before the
	// broker binds anything, and say what is wrong with the settings, not
	// that a port is taken.
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	a, b := held.Addr().String(), testenv.FreeAddr(t)
	_, aPort, _ := net.SplitHostPort(a)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown protocol", []string{"--config", "listeners=A://" + a, "--config", "listener.security.protocol.map=A:TLS"},
			`listener A: unknown security protocol "TLS"`},
		{"name missing from the map", []string{"--config", "listeners=INTERNAL://" + a + ",EXTERNAL://" + b,
			"--config", "listener.security.protocol.map=INTERNAL:PLAINTEXT"},
			"listener EXTERNAL has no security protocol: add it to listener.security.protocol.map"},
		{"duplicate name", []string{"--config", "listeners=PLAINTEXT://" + a + ",PLAINTEXT://" + b},
			"listener PLAINTEXT is named twice"},
		{"duplicate port", []string{"--config", "listeners=PLAINTEXT://" + a + ",SSL://0.0.0.0:" + aPort},
			"both use port " + aPort},
		{"advertised name without a listener", []string{"--config", "listeners=PLAINTEXT://" + a,
			"--config", "advertised.listeners=EXTERNAL://broker.example.com:9092"},
			"listener EXTERNAL is not in listeners"},
		{"SSL listener without a key store", []string{"--config", "listeners=SSL://" + a},
			"Kafka listener SSL is SSL but neither listener.name.ssl.ssl.keystore.location nor ssl.keystore.location is set"},
		{"OAUTHBEARER without a way to validate tokens", []string{"--config", "listeners=SASL_PLAINTEXT://" + a,
			"--config", "sasl.enabled.mechanisms=OAUTHBEARER"},
			"sasl.enabled.mechanisms lists OAUTHBEARER but no way to validate tokens is set"},
		{"--kafka-addr with listeners", []string{"--kafka-addr", b, "--config", "listeners=PLAINTEXT://" + a},
			"--kafka-addr " + b + " and the broker setting listeners are both set"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			args := append([]string{"dev", "--data-dir", t.TempDir(), "--grpc-addr", testenv.FreeAddr(t),
				"--http-addr", testenv.FreeAddr(t), "--etcd-client-addr", testenv.FreeAddr(t)}, c.args...)
			out, err := exec.CommandContext(ctx, testenv.Binary(t), args...).CombinedOutput()
			if err == nil || ctx.Err() != nil {
				t.Fatalf("strata dev did not fail (err %v, ctx %v):\n%s", err, ctx.Err(), out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Errorf("the refusal does not say %q:\n%s", c.want, out)
			}
		})
	}
}

// TestClusterTwoListenersFindLeaders: three brokers, each with a
// PLAINTEXT listener INTERNAL and an SSL listener EXTERNAL. A client on
// either listener is given every broker at that listener's address and
// reaches each partition's leader through it: a produce to partitions
// led by different brokers and a consume of them succeed on both.
func TestClusterTwoListenersFindLeaders(t *testing.T) {
	g, err := tlsconf.Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{
		Brokers: 3,
		KafkaListeners: []testenv.KafkaListener{
			{Name: "INTERNAL", Protocol: "PLAINTEXT"},
			{Name: "EXTERNAL", Protocol: "SSL"},
		},
		BrokerSettings: map[string]string{"listener.name.external.ssl.keystore.location": g.Server},
	})
	tlsCfg, err := tlsconf.ClientConfig(g.CA, "", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	const topic = "spread"
	for _, l := range []struct {
		name string
		tls  *tls.Config
	}{{"INTERNAL", nil}, {"EXTERNAL", tlsCfg}} {
		want := map[int32]string{}
		var seeds []string
		for _, b := range c.Brokers() {
			want[b.ID()] = b.KafkaListenerAddr(l.name)
			seeds = append(seeds, b.KafkaListenerAddr(l.name))
		}
		opts := []kgo.Opt{kgo.SeedBrokers(seeds[0]), kgo.RecordPartitioner(kgo.ManualPartitioner())}
		if l.tls != nil {
			opts = append(opts, kgo.DialTLSConfig(l.tls))
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		checkListenerAddrs(ctx, t, cl, l.name, want)
		adm := kadm.NewClient(cl)
		if l.name == "INTERNAL" {
			if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
				t.Fatal(err)
			}
		}
		// The partitions' leaders, as this listener's Metadata names them,
		// are reached at this listener's addresses: every produce goes to
		// its leader.
		var values []string
		for p := int32(0); p < 3; p++ {
			v := fmt.Sprintf("%s-p%d", l.name, p)
			values = append(values, v)
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("produce to partition %d on %s: %v", p, l.name, err)
			}
		}
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		leaders := map[int32]bool{}
		for _, p := range md.Topics[topic].Partitions {
			leaders[p.Leader] = true
		}
		if len(leaders) < 2 {
			t.Fatalf("partitions of %s are led by %v only: the test needs leaders on several brokers", topic, leaders)
		}
		testenvtest.ConsumeValues(ctx, t, l.name, opts, topic, values...)
	}
}
