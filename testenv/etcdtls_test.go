package testenv_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/internal/tlsconf"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// etcdPassword is the broker's etcd password in TestBrokerEtcdTLSAndAuth:
// distinctive, so that finding it in output is not a coincidence.
const etcdPassword = "etcd-pw-7c1f9e2b"

// TestBrokerEtcdTLSAndAuth: etcd serves its clients over TLS, requires a
// client certificate (--client-cert-auth) and has auth enabled, with a
// user strata whose role may read and write /strata only. A `strata
// broker` given the CA, the client certificate, the user and the password
// (from a file) registers and serves produce and consume; without the
// client certificate, or with a wrong password (from the environment),
// it fails to start, and the password is in none of its output nor
// /metrics.
func TestBrokerEtcdTLSAndAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("runs etcd and the broker binary")
	}
	g, err := tlsconf.Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	etcd := testenv.NewTestEtcd(t, testenv.EtcdOptions{TLS: &testenv.EtcdTLS{CertFile: g.Server, KeyFile: g.Server, ClientCAFile: g.CA}})
	enableEtcdAuth(t, etcd, g)

	pwFile := filepath.Join(t.TempDir(), "etcd-password")
	if err := os.WriteFile(pwFile, []byte(etcdPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsArgs := []string{"--etcd-endpoints", etcd.Endpoint(), "--etcd-cacert", g.CA, "--etcd-cert", g.Client}
	httpAddr, kafkaAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	brokerArgs := func() []string {
		return []string{"broker", "--node-id", "1", "--data-dir", t.TempDir(),
			"--grpc-addr", testenv.FreeAddr(t), "--http-addr", httpAddr, "--kafka-addr", kafkaAddr}
	}

	// Refused starts: no client certificate; a wrong password.
	for _, c := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"no client certificate", []string{"--etcd-endpoints", etcd.Endpoint(), "--etcd-cacert", g.CA,
			"--etcd-user", "strata", "--etcd-password-file", pwFile}, nil, "TLS refused"},
		{"wrong password", append(tlsArgs, "--etcd-user", "strata"), []string{"STRATA_ETCD_PASSWORD=not-" + etcdPassword},
			"authentication failed"},
		{"http endpoint with TLS settings", []string{"--etcd-endpoints", "http://" + etcd.ClientAddr(), "--etcd-cacert", g.CA},
			nil, "is http:// but the etcd client has TLS settings"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, testenv.Binary(t), append(brokerArgs(), c.args...)...)
			cmd.Env = append(os.Environ(), c.env...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the broker started:\n%s", out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Errorf("the refusal does not say %q:\n%s", c.want, out)
			}
			if strings.Contains(string(out), etcdPassword) {
				t.Errorf("the output shows the password:\n%s", out)
			}
		})
	}

	// The broker with everything it needs serves.
	args := append(brokerArgs(), append(tlsArgs, "--etcd-user", "strata", "--etcd-password-file", pwFile)...)
	logPath := filepath.Join(t.TempDir(), "broker.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(testenv.Binary(t), args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("broker log:\n%s", b)
		}
	})
	await.NoError(t, 30*time.Second, "the broker is healthy", func() error {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the broker exited: %v", err)
		default:
		}
		return getOK("http://" + httpAddr + "/healthz")
	})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Creating a topic writes etcd: the role's permission on /strata.
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "secured-etcd"); err != nil {
		t.Fatalf("create a topic through a broker on a secured etcd: %v", err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "secured-etcd", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce through a broker on a secured etcd: %v", err)
	}
	testenvtest.ConsumeValues(ctx, t, "the broker", []kgo.Opt{kgo.SeedBrokers(kafkaAddr)}, "secured-etcd", "v")

	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	logged, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for what, b := range map[string][]byte{"/metrics": metrics, "the log": logged} {
		if strings.Contains(string(b), etcdPassword) {
			t.Errorf("%s shows the etcd password", what)
		}
	}
}

// enableEtcdAuth turns etcd's auth on with a root user and a user strata
// whose role reads and writes the keys under /strata, as an operator
// would with etcdctl.
func enableEtcdAuth(t *testing.T, etcd *testenv.Etcd, g tlsconf.Generated) {
	t.Helper()
	tlsCfg, err := tlsconf.ClientConfig(g.CA, g.Client, "")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd.Endpoint()}, TLS: tlsCfg, DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	steps := []func() error{
		func() error { _, err := cl.UserAdd(ctx, "root", "root-pw-0d3a"); return err },
		func() error { _, err := cl.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cl.RoleAdd(ctx, "strata"); return err },
		func() error {
			_, err := cl.RoleGrantPermission(ctx, "strata", "/strata", clientv3.GetPrefixRangeEnd("/strata"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cl.UserAdd(ctx, "strata", etcdPassword); return err },
		func() error { _, err := cl.UserGrantRole(ctx, "strata", "strata"); return err },
		func() error { _, err := cl.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("enable etcd auth, step %d: %v", i, err)
		}
	}
}

func getOK(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}
