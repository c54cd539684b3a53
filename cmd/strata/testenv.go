package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-broker/strata/testenv"
)

func newTestenvCmd() *cobra.Command {
	var (
		brokers        int
		dir            string
		withMinIO      bool
		bucket         string
		sessionTimeout time.Duration
		settings       []string
		toolsOnly      bool
	)
	cmd := &cobra.Command{
		Use:   "testenv",
		Short: "Run a local cluster for testing: etcd, several brokers and MinIO, each its own process",
		Long: `Run a test environment on loopback: etcd, --brokers brokers of this binary
(node ids 1..N) and, with --minio, a MinIO server with a bucket. Each broker
is reached through a TCP proxy (the address it advertises) and reaches etcd
through another, as the Go test environment does for fault injection.

Every address is written to DIR/env.json and printed. The environment runs
until interrupted (Ctrl-C), then everything is stopped. DIR is cleared at the
start if it holds a previous environment (an env.json); any other non-empty
directory is refused.

etcd and MinIO are built from source once into the user cache
(~/.cache/strata); --tools-only does just that. Building etcd needs the
Strata source tree as the working directory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			if toolsOnly {
				etcd, err := testenv.EtcdBinary(ctx, nil)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "etcd:  %s\n", etcd)
				minio, err := testenv.MinIOBinary(ctx, nil)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "minio: %s\n", minio)
				return nil
			}
			brokerSettings, err := parseConfigs("config", settings)
			if err != nil {
				return err
			}
			if err := prepareEnvDir(dir); err != nil {
				return err
			}
			// The brokers run this very binary, so they match the CLI.
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find this binary: %w", err)
			}
			fmt.Fprintf(out, "starting etcd, %d brokers%s in %s ...\n", brokers, map[bool]string{true: " and MinIO", false: ""}[withMinIO], dir)
			c, err := testenv.StartCluster(ctx, testenv.ClusterOptions{
				Dir:            dir,
				Brokers:        brokers,
				Binary:         self,
				MinIO:          withMinIO,
				Bucket:         bucket,
				SessionTimeout: sessionTimeout,
				BrokerSettings: brokerSettings,
			})
			if err != nil {
				return err
			}
			script, err := writeAddBrokerScript(c, self, settings, sessionTimeout)
			if err != nil {
				return err
			}
			printEnv(out, c, script)
			watchBrokers(cmd, c)
			fmt.Fprintln(out, "stopping ...")
			if err := c.Close(); err != nil {
				return fmt.Errorf("stop the environment: %w", err)
			}
			fmt.Fprintln(out, "stopped")
			return nil
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&brokers, "brokers", testenv.DefaultClusterBrokers, "number of brokers")
	fs.StringVar(&dir, "dir", "./testenv-data", "directory for the data, logs and env.json")
	fs.BoolVar(&withMinIO, "minio", true, "also run MinIO with a bucket (S3 at http://127.0.0.1:PORT)")
	fs.StringVar(&bucket, "bucket", testenv.DefaultBucket, "MinIO bucket to create")
	fs.DurationVar(&sessionTimeout, "session-timeout", 0, "brokers' --session-timeout (default: the broker's)")
	fs.StringArrayVar(&settings, "config", nil, "broker setting for every broker, e.g. log.retention.ms=3600000 (repeatable)")
	fs.BoolVar(&toolsOnly, "tools-only", false, "build the etcd and MinIO binaries into the cache, print their paths and exit")
	return cmd
}

// prepareEnvDir makes sure dir can hold a new environment: absent, empty, or
// a previous environment's (which is removed).
func prepareEnvDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(entries) == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "env.json")); err != nil {
		return fmt.Errorf("--dir %s is not empty and holds no env.json: not a test environment, so it is left alone", dir)
	}
	// Ports differ from run to run, and etcd would keep the old members'
	// addresses: a previous environment is not resumable.
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear the previous environment in %s: %w", dir, err)
	}
	return nil
}

func printEnv(out io.Writer, c *testenv.Cluster, addBroker string) {
	env := c.Env()
	fmt.Fprintf(out, "\nStrata test environment (addresses in %s):\n", filepath.Join(c.Dir(), "env.json"))
	for _, b := range env.Brokers {
		fmt.Fprintf(out, "  broker %d  grpc %s (direct %s)  http %s  kafka %s\n", b.NodeID, b.GRPCAddr, b.DirectGRPCAddr, b.HTTPAddr, b.KafkaAddr)
		fmt.Fprintf(out, "            log %s\n", b.LogPath)
	}
	fmt.Fprintf(out, "  etcd      %s (prefix %s)\n", env.Etcd.Endpoints[0], env.Etcd.Prefix)
	if s3 := env.S3; s3 != nil {
		fmt.Fprintf(out, "  s3        %s  bucket %s  region %s  access key %s  secret key %s\n", s3.Endpoint, s3.Bucket, s3.Region, s3.AccessKey, s3.SecretKey)
		// What strata replay and another broker need, ready to paste.
		fmt.Fprintf(out, "\nObject store (for strata replay and brokers of your own):\n  --object-store %s\n", shellQuote(env.ObjectStore))
		for _, kv := range env.ObjectStoreEnv {
			name, value, _ := strings.Cut(kv, "=")
			fmt.Fprintf(out, "  export %s=%s\n", name, shellQuote(value))
		}
	}
	fmt.Fprintf(out, "\nTry:\n  %s topics create demo --partitions 3 --replication-factor %d --bootstrap-server %s\n",
		os.Args[0], min(3, len(env.Brokers)), env.Brokers[0].GRPCAddr)
	fmt.Fprintf(out, "  export %s=%s\n", bootstrapEnv, env.Brokers[0].GRPCAddr)
	fmt.Fprintf(out, "  sh %s %d   # one more broker, in another terminal; 'strata cluster rebalance' gives it partitions\n",
		addBroker, len(env.Brokers)+1)
	fmt.Fprintf(out, "\nCtrl-C stops everything.\n")
}

// writeAddBrokerScript writes DIR/add-broker.sh, which starts one more
// broker of the environment in the foreground: `sh add-broker.sh NODE_ID`.
// It is the command line an operator adding a broker to a real cluster
// runs — the same etcd, object store and settings, its own node id and
// data directory — with loopback ports the kernel picks (the broker
// advertises what it bound). It returns the script's path.
func writeAddBrokerScript(c *testenv.Cluster, bin string, settings []string, sessionTimeout time.Duration) (string, error) {
	env := c.Env()
	args := []string{shellQuote(bin), "broker",
		`--node-id "$id"`, `--data-dir "$dir/data"`,
		"--etcd-endpoints", shellQuote(strings.Join(env.Etcd.Endpoints, ",")),
		"--etcd-prefix", shellQuote(env.Etcd.Prefix),
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--kafka-addr", "127.0.0.1:0",
	}
	if sessionTimeout > 0 {
		args = append(args, "--session-timeout", sessionTimeout.String())
	}
	for _, kv := range settings {
		args = append(args, "--config", shellQuote(kv))
	}
	var envVars []string
	if s3 := env.S3; s3 != nil {
		args = append(args, "--object-store", shellQuote(testenv.ObjectStoreURL(*s3)))
		envVars = append(envVars, "export AWS_ACCESS_KEY_ID="+shellQuote(s3.AccessKey), "export AWS_SECRET_ACCESS_KEY="+shellQuote(s3.SecretKey),
			"export AWS_REGION="+shellQuote(s3.Region))
	}
	script := fmt.Sprintf(`#!/bin/sh
# Starts one more broker of this test environment, in the foreground (its
# log on the terminal; Ctrl-C stops it):
#   sh add-broker.sh NODE_ID
# Its data goes to broker-NODE_ID/ next to this script. It joins the
# cluster empty; 'strata cluster rebalance' moves partitions to it.
set -e
id=${1:?usage: sh add-broker.sh NODE_ID}
dir="$(cd "$(dirname "$0")" && pwd)/broker-$id"
mkdir -p "$dir/data"
%s
exec %s
`, strings.Join(envVars, "\n"), strings.Join(args, " "))
	path := filepath.Join(c.Dir(), "add-broker.sh")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// watchBrokers waits for an interrupt, saying when a broker exits meanwhile
// (Close reports it again with its log).
func watchBrokers(cmd *cobra.Command, c *testenv.Cluster) {
	running := make(map[int32]bool)
	for _, b := range c.Brokers() {
		running[b.ID()] = true
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-cmd.Context().Done():
			return
		case <-tick.C:
		}
		for _, b := range c.Brokers() {
			now := b.Running()
			if running[b.ID()] && !now {
				fmt.Fprintf(cmd.ErrOrStderr(), "strata testenv: broker %d exited; see %s\n", b.ID(), b.LogPath())
			}
			running[b.ID()] = now
		}
	}
}
