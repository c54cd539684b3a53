package testenv_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/testenv"
)

// secretValue is a setting's value no broker output may show.
const secretValue = "hunter2-S3CR3T"

// TestUnknownBrokerSettingIsRefused starts `strata dev` with a broker
// setting nothing reads, given by --config and by the config file: the
// start fails, naming the key and not its value. Before, the key was kept
// and shown verbatim to anyone describing the broker.
func TestUnknownBrokerSettingIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the broker binary")
	}
	file := filepath.Join(t.TempDir(), "strata.yaml")
	if err := os.WriteFile(file, []byte("config:\n  ssl.keystore.passwd: "+secretValue+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"flag", []string{"--config", "ssl.keystore.passwd=" + secretValue}},
		{"config file", []string{"--config-file", file}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			args := append([]string{"dev", "--data-dir", t.TempDir(), "--grpc-addr", testenv.FreeAddr(t),
				"--http-addr", testenv.FreeAddr(t), "--kafka-addr", testenv.FreeAddr(t),
				"--etcd-client-addr", testenv.FreeAddr(t)}, c.args...)
			out, err := exec.CommandContext(ctx, testenv.Binary(t), args...).CombinedOutput()
			if err == nil || ctx.Err() != nil {
				t.Fatalf("strata dev with an unknown setting did not fail (err %v, ctx %v):\n%s", err, ctx.Err(), out)
			}
			if want := `unknown broker setting "ssl.keystore.passwd" (did you mean ssl.keystore.password?)`; !strings.Contains(string(out), want) {
				t.Errorf("the refusal does not name the key (want %q):\n%s", want, out)
			}
			if strings.Contains(string(out), secretValue) {
				t.Errorf("the refusal shows the value:\n%s", out)
			}
		})
	}
}

// TestBrokerPasswordSettingIsNeverShown starts `strata dev` with a
// password-type setting, which the PEM-only TLS listener refuses: the start
// fails naming the key and its reason, never its value. (A password setting
// a broker does accept is described as null and sensitive, as Kafka's
// PASSWORD-type keys are: broker/kafkaapi TestDescribeConfigsHidesSecrets.)
func TestBrokerPasswordSettingIsNeverShown(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the broker binary")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, testenv.Binary(t), "dev", "--data-dir", t.TempDir(),
		"--grpc-addr", testenv.FreeAddr(t), "--http-addr", testenv.FreeAddr(t), "--kafka-addr", testenv.FreeAddr(t),
		"--etcd-client-addr", testenv.FreeAddr(t), "--config", "ssl.keystore.password="+secretValue).CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("strata dev with ssl.keystore.password did not fail (err %v, ctx %v):\n%s", err, ctx.Err(), out)
	}
	if !strings.Contains(string(out), "ssl.keystore.password") || !strings.Contains(string(out), "only PEM key stores") {
		t.Errorf("the refusal does not name the key and why:\n%s", out)
	}
	if strings.Contains(string(out), secretValue) {
		t.Errorf("the refusal shows the password:\n%s", out)
	}
}

// TestPprofIsOffUnlessAsked: /debug/pprof is not served by default, and
// with --pprof the profiles are, but not /debug/pprof/cmdline, whose command
// line may carry a setting's secret.
func TestPprofIsOffUnlessAsked(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two brokers")
	}
	status := func(t *testing.T, url string) int {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	t.Run("default", func(t *testing.T) {
		dev := testenv.StartDev(t, testenv.DevOptions{ExtraArgs: []string{"--config", "log.retention.ms=3600000"}})
		for _, p := range []string{"/debug/pprof/cmdline", "/debug/pprof/", "/debug/pprof/heap"} {
			if got := status(t, "http://"+dev.HTTPAddr+p); got != http.StatusNotFound {
				t.Errorf("GET %s: %d, want 404", p, got)
			}
		}
	})
	t.Run("--pprof", func(t *testing.T) {
		dev := testenv.StartDev(t, testenv.DevOptions{ExtraArgs: []string{"--pprof", "--config", "log.retention.ms=3600000"}})
		if got := status(t, "http://"+dev.HTTPAddr+"/debug/pprof/heap"); got != http.StatusOK {
			t.Errorf("GET /debug/pprof/heap with --pprof: %d, want 200", got)
		}
		if got := status(t, "http://"+dev.HTTPAddr+"/debug/pprof/cmdline"); got != http.StatusNotFound {
			t.Errorf("GET /debug/pprof/cmdline with --pprof: %d, want 404", got)
		}
	})
}
