package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-broker/strata/testenv"
)

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// Every mistake a user makes is answered by one line they can act on,
// exiting 1, and no output shows gRPC's status framing.
func TestCLIErrorsAgainstDev(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker with embedded etcd")
	}
	addrs := testenv.StartInProcessAddrs(t, nil)
	bs := "--bootstrap-server=" + addrs.GRPC.String()
	kafka := addrs.Kafka.String()
	closed := closedAddr(t)
	// The SDK's default chain finds no credentials and asks no metadata
	// service.
	none := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_CONFIG_FILE": none, "AWS_SHARED_CREDENTIALS_FILE": none, "AWS_EC2_METADATA_DISABLED": "true",
		bootstrapEnv: "",
	} {
		t.Setenv(k, v)
	}

	for _, tt := range []struct {
		name string
		args []string
		want []string // each in the one line of stderr
	}{
		{"unknown command", []string{"nosuch"}, []string{`unknown command "nosuch" for "strata"`}},
		{"unknown subcommand", []string{"topics", "nosuch", bs}, []string{`unknown command "nosuch" for "strata topics"`, "strata topics --help"}},
		{"misspelt subcommand", []string{"groups", "lst"}, []string{`unknown command "lst" for "strata groups"`, "did you mean list?"}},
		{"bad integer flag", []string{"topics", "create", "t", "--partitions", "three", bs}, []string{`--partitions "three": want an integer`}},
		{"integer flag out of range", []string{"topics", "create", "t", "--partitions", "99999999999", bs}, []string{`--partitions "99999999999": out of range`}},
		{"unknown topic", []string{"topics", "describe", "nosuch", bs}, []string{`topic "nosuch": unknown topic or partition (NotFound)`}},
		{"unknown topic config", []string{"topics", "create", "t", "--config", "retention.msx=1", bs}, []string{`did you mean retention.ms?`}},
		{"nothing listens", []string{"topics", "list", "--bootstrap-server", closed},
			[]string{"cannot reach a broker at " + closed + " (connection refused)", "gRPC", "--grpc-addr"}},
		{"host does not resolve", []string{"topics", "list", "--bootstrap-server", "nosuch.invalid:9093"},
			[]string{"cannot reach a broker at nosuch.invalid:9093 (the host name does not resolve)"}},
		{"kafka port", []string{"topics", "list", "--bootstrap-server", kafka},
			[]string{kafka + " is a Kafka listener", "speaks gRPC", "--grpc-addr"}},
		{"http port", []string{"topics", "list", "--bootstrap-server", addrs.HTTP.String()},
			[]string{"cannot reach a broker at " + addrs.HTTP.String() + " (the server closed the connection without speaking gRPC)", "--grpc-addr"}},
		{"kafka port, consumer", []string{"consume", "t", "--bootstrap-server", kafka}, []string{kafka + " is a Kafka listener"}},
		{"unknown broker setting", []string{"dev", "--data-dir", t.TempDir(), "--config", "log.retention.msx=1"},
			[]string{`unknown broker setting "log.retention.msx" (did you mean log.retention.ms?)`}},
		{"bad log format", []string{"dev", "--log-format", "yaml"}, []string{`--log-format "yaml": want json or text`}},
		{"no S3 credentials", []string{"replay", "--topic", "t", "--object-store", "s3://bucket/p?region=us-east-1&endpoint=http://" + closed},
			[]string{"s3://bucket/p/", "no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := strata(t, "", tt.args...)
			// consume reports its count whatever the outcome, as Kafka's
			// console consumer does.
			errOut = strings.TrimPrefix(errOut, "Processed a total of 0 messages\n")
			if code != 1 || !strings.HasPrefix(errOut, "strata: ") || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q: want exit 1 and one line", code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q does not say %q", errOut, w)
				}
			}
			if s := out + errOut; strings.Contains(s, "rpc error") {
				t.Errorf("output shows gRPC's status framing: %q", s)
			}
		})
	}
}

// A group command with no subcommand shows its help and succeeds.
func TestGroupCommandAloneShowsHelp(t *testing.T) {
	code, out, errOut := strata(t, "", "topics")
	if code != 0 || !strings.Contains(out, "Available Commands:") || errOut != "" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestPlainError(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`describe topic "x": rpc error: code = NotFound desc = topic "x": unknown topic or partition`,
			`describe topic "x": topic "x": unknown topic or partition (NotFound)`},
		{"a: rpc error: code = Unknown desc = boom", "a: boom"},
		{"a: rpc error: code = Internal desc = ", "a: Internal"},
		// A broker passing on another's status.
		{"a: rpc error: code = Unavailable desc = forward: rpc error: code = NotFound desc = gone",
			"a: forward: gone (NotFound) (Unavailable)"},
		{"a: rpc error: code = Aborted desc = x\nb: rpc error: code = Aborted desc = y", "a: x (Aborted)\nb: y (Aborted)"},
		{"no status here", "no status here"},
	} {
		if got := rewriteStatuses(tt.in, plainStatus); got != tt.want {
			t.Errorf("rewriteStatuses(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// Statuses grpc makes itself when no broker answered are explained; one a
// broker sent, even with the same code, is only unwrapped.
func TestExplainConnectionFailures(t *testing.T) {
	addr := closedAddr(t)
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("list topics: %w", status.Error(codes.Unimplemented, "unexpected HTTP status code received from server: 404 (Not Found); malformed header: missing HTTP content-type")),
			"list topics: cannot reach a broker at " + addr + " (an HTTP server answered, not gRPC)"},
		{fmt.Errorf("list topics: %w", status.Error(codes.DeadlineExceeded, "context deadline exceeded while waiting for connections to become ready")),
			"list topics: cannot reach a broker at " + addr + " (timed out)"},
		{fmt.Errorf("describe: %w", status.Error(codes.Unavailable, "no live brokers")), "describe: no live brokers (Unavailable)"},
		{fmt.Errorf("call: %w", status.Error(codes.Unimplemented, "unknown method Foo")), "call: unknown method Foo (Unimplemented)"},
	} {
		if got := explainError(t.Context(), tt.err, addr); !strings.HasPrefix(got, tt.want) {
			t.Errorf("explainError(%v) = %q, want it to begin %q", tt.err, got, tt.want)
		}
	}
}

// A gRPC port, or a port that answers something else, is not taken for a
// Kafka listener.
func TestIsKafkaListenerOnlyForKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker with embedded etcd")
	}
	addrs := testenv.StartInProcessAddrs(t, nil)
	if !isKafkaListener(t.Context(), addrs.Kafka.String()) {
		t.Errorf("the Kafka listener %s is not recognised", addrs.Kafka)
	}
	if isKafkaListener(t.Context(), addrs.GRPC.String()) {
		t.Errorf("the gRPC port %s is taken for a Kafka listener", addrs.GRPC)
	}
	if isKafkaListener(t.Context(), closedAddr(t)) {
		t.Error("a closed port is taken for a Kafka listener")
	}
}

// Durations are written as Go durations in both formats, and the text
// format is key=value.
func TestLoggerDurations(t *testing.T) {
	for _, tt := range []struct {
		format logFormat
		want   string
	}{
		{logJSON, `"ttl":"2s"`},
		{logText, `ttl=2s`},
	} {
		var b bytes.Buffer
		newLogger(&b, tt.format, slog.LevelInfo).Info("broker registered", "ttl", 2*time.Second)
		if !strings.Contains(b.String(), tt.want) {
			t.Errorf("%s: %q does not contain %q", tt.format, b.String(), tt.want)
		}
	}
}
