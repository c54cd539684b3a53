package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// parseBrokerFlags parses args as `strata broker` would and resolves the
// environment and the config file.
func parseBrokerFlags(t *testing.T, args ...string) (*brokerFlags, error) {
	t.Helper()
	f := &brokerFlags{}
	fs := pflag.NewFlagSet("broker", pflag.ContinueOnError)
	f.register(fs, false)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return f, f.resolve(fs)
}

func writeConfigFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "strata.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Each setting comes from the highest of flag > STRATA_* variable > config
// file > default that sets it; the file's config: map is overridden by
// --config key by key.
func TestBrokerFlagBeatsEnvBeatsConfigFileBeatsDefault(t *testing.T) {
	path := writeConfigFile(t, `
node-id: 2
data-dir: /file/data
grpc-addr: 127.0.0.1:1001
http-addr: 127.0.0.1:1002
etcd-endpoints: [10.0.0.1:2379, 10.0.0.2:2379]
session-timeout: 5s
config:
  log.retention.ms: 3600000
  log.segment.bytes: 1048576
`)
	t.Setenv("STRATA_GRPC_ADDR", "127.0.0.1:2001")
	t.Setenv("STRATA_HTTP_ADDR", "127.0.0.1:2002")
	t.Setenv("STRATA_CONFIG_FILE", path)
	f, err := parseBrokerFlags(t, "--grpc-addr", "127.0.0.1:3001", "--config", "log.segment.bytes=2097152")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := f.config(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"grpc-addr (flag)", cfg.GRPCAddr, "127.0.0.1:3001"},
		{"http-addr (env)", cfg.HTTPAddr, "127.0.0.1:2002"},
		{"data-dir (file)", cfg.DataDir, "/file/data"},
		{"kafka-addr (default)", cfg.KafkaAddr, "127.0.0.1:9092"},
		{"etcd-endpoints (file)", strings.Join(cfg.EtcdEndpoints, ","), "10.0.0.1:2379,10.0.0.2:2379"},
		{"log.retention.ms (file)", cfg.Settings["log.retention.ms"], "3600000"},
		{"log.segment.bytes (flag over file)", cfg.Settings["log.segment.bytes"], "2097152"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if cfg.NodeID != 2 || cfg.SessionTimeout != 5*time.Second {
		t.Errorf("node id %d, session timeout %v; want 2 and 5s from the file", cfg.NodeID, cfg.SessionTimeout)
	}
	if len(cfg.Settings) != 2 {
		t.Errorf("settings %v, want 2", cfg.Settings)
	}
}

func TestBrokerFlagsDefaultsWithoutConfigFile(t *testing.T) {
	f, err := parseBrokerFlags(t, "--advertised-grpc-addr", "127.0.0.1:7000")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := f.config(false)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdvertisedGRPCAddr != "127.0.0.1:7000" || cfg.SessionTimeout != 2*time.Second || cfg.NodeID != 1 || len(cfg.Settings) != 0 {
		t.Errorf("%+v", cfg)
	}
}

func TestBrokerConfigFileRefusesUnknownKeysAndBadValues(t *testing.T) {
	for _, c := range []struct {
		name, text string
		want       []string // substrings of the error
	}{
		{"unknown key", "node-id: 2\nretention: 5\n", []string{`unknown key "retention"`, "line 2"}},
		{"dev-only key", "etcd-client-addr: 127.0.0.1:2379\n", []string{`unknown key "etcd-client-addr"`}},
		{"bad number", "node-id: two\n", []string{"node-id", "line 1"}},
		{"bad duration", "session-timeout: soon\n", []string{"session-timeout"}},
		{"list for a single value", "data-dir: [a, b]\n", []string{"data-dir", "not a list"}},
		{"nested setting", "config:\n  log:\n    retention.ms: 1\n", []string{"config", "key: value"}},
		{"not a map", "- node-id\n", []string{"want key: value"}},
		{"recursive", "config-file: other.yaml\n", []string{"config-file"}},
		{"twice", "node-id: 1\nnode-id: 2\n", []string{"set twice"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeConfigFile(t, c.text)
			_, err := parseBrokerFlags(t, "--config-file", path)
			if err == nil {
				t.Fatalf("%q accepted", c.text)
			}
			for _, w := range append(c.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := parseBrokerFlags(t, "--config-file", filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

// `strata dev` auto-creates topics, allows small segments and tiers every
// second unless told otherwise; `strata broker` leaves every setting to the broker's defaults.
func TestDevSettings(t *testing.T) {
	parse := func(dev bool, args ...string) map[string]string {
		t.Helper()
		f := &brokerFlags{}
		fs := pflag.NewFlagSet("dev", pflag.ContinueOnError)
		f.register(fs, dev)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		if err := f.resolve(fs); err != nil {
			t.Fatal(err)
		}
		cfg, err := f.config(dev)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Settings
	}
	if got := parse(true)["log.segment.min.bytes"]; got != "1024" {
		t.Errorf("dev: log.segment.min.bytes %q, want 1024", got)
	}
	if got := parse(true)["auto.create.topics.enable"]; got != "true" {
		t.Errorf("dev: auto.create.topics.enable %q, want true", got)
	}
	if got := parse(true, "--config", "auto.create.topics.enable=false")["auto.create.topics.enable"]; got != "false" {
		t.Errorf("dev with --config auto.create.topics.enable=false: %q", got)
	}
	if got := parse(true, "--config", "log.segment.min.bytes=1048576")["log.segment.min.bytes"]; got != "1048576" {
		t.Errorf("dev with --config log.segment.min.bytes=1048576: %q", got)
	}
	if got := parse(true)["remote.log.manager.task.interval.ms"]; got != "1000" {
		t.Errorf("dev: remote.log.manager.task.interval.ms %q, want 1000", got)
	}
	if got := parse(true, "--config", "remote.log.manager.task.interval.ms=30000")["remote.log.manager.task.interval.ms"]; got != "30000" {
		t.Errorf("dev with --config remote.log.manager.task.interval.ms=30000: %q", got)
	}
	if got := parse(false); len(got) != 0 {
		t.Errorf("broker: settings %v, want none", got)
	}
}
