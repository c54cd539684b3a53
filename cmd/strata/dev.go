package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/strata-broker/strata/broker/server"
)

// brokerFlags are the flags shared by `strata dev` and `strata broker`.
type brokerFlags struct {
	nodeID         int32
	dataDir        string
	grpcAddr       string
	httpAddr       string
	kafkaAddr      string
	etcdEndpoints  []string
	etcdClientAddr string
	etcdPrefix     string
	settings       []string
	logLevel       string
}

func (f *brokerFlags) register(fs *pflag.FlagSet, dev bool) {
	fs.Int32Var(&f.nodeID, "node-id", 1, "this broker's node id (unique in the cluster)")
	fs.StringVar(&f.dataDir, "data-dir", "./data", "directory for partition logs"+map[bool]string{true: " and the embedded etcd", false: ""}[dev])
	fs.StringVar(&f.grpcAddr, "grpc-addr", "127.0.0.1:9093", "gRPC API listen address")
	fs.StringVar(&f.httpAddr, "http-addr", "127.0.0.1:9094", "HTTP listen address for /healthz and /metrics")
	fs.StringVar(&f.kafkaAddr, "kafka-addr", "127.0.0.1:9092", "Kafka protocol listen address (reserved: the Kafka listener is not built yet)")
	fs.StringVar(&f.etcdPrefix, "etcd-prefix", "/strata", "key prefix of this cluster in etcd")
	fs.StringArrayVar(&f.settings, "config", nil, "broker setting in server.properties form, e.g. log.retention.ms=3600000 (repeatable)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	if dev {
		fs.StringVar(&f.etcdClientAddr, "etcd-client-addr", "127.0.0.1:2379", "client address of the embedded etcd")
	} else {
		fs.StringSliceVar(&f.etcdEndpoints, "etcd-endpoints", nil, "etcd endpoints, comma separated (required)")
	}
}

// applyEnv lets STRATA_<FLAG_NAME> set any flag not given on the command line.
func applyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed || err != nil {
			return
		}
		env := "STRATA_" + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := fs.Set(fl.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", env, e)
			}
		}
	})
	return err
}

func (f *brokerFlags) config(dev bool) (server.Config, error) {
	settings, err := parseConfigs("config", f.settings)
	if err != nil {
		return server.Config{}, err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return server.Config{}, fmt.Errorf("--log-level %q: %w", f.logLevel, err)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	return server.Config{
		NodeID:         f.nodeID,
		DataDir:        f.dataDir,
		GRPCAddr:       f.grpcAddr,
		HTTPAddr:       f.httpAddr,
		KafkaAddr:      f.kafkaAddr,
		EtcdEndpoints:  f.etcdEndpoints,
		EmbedEtcd:      dev,
		EtcdClientAddr: f.etcdClientAddr,
		EtcdPrefix:     f.etcdPrefix,
		Settings:       settings,
		Logger:         logger,
	}, nil
}

func runServer(cmd *cobra.Command, f *brokerFlags, dev bool) error {
	if err := applyEnv(cmd.Flags()); err != nil {
		return err
	}
	cfg, err := f.config(dev)
	if err != nil {
		return err
	}
	if !dev && len(cfg.EtcdEndpoints) == 0 {
		return fmt.Errorf("--etcd-endpoints is required (or use `strata dev` for a single process with embedded etcd)")
	}
	// The root command's context ends on SIGINT or SIGTERM: a clean shutdown.
	return server.Run(cmd.Context(), cfg, nil)
}

func newDevCmd() *cobra.Command {
	f := &brokerFlags{}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a single broker with embedded etcd: no external services needed",
		Long: `Run a single broker in one process, with etcd embedded and its data under
--data-dir. This is what "make run" starts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServer(cmd, f, true) },
	}
	f.register(cmd.Flags(), true)
	return cmd
}

func newBrokerCmd() *cobra.Command {
	f := &brokerFlags{}
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run a broker that joins a cluster coordinated through etcd",
		Long: `Run a broker. Every flag can also be set by an environment variable
STRATA_<FLAG>, e.g. STRATA_ETCD_ENDPOINTS=127.0.0.1:2379; a flag on the
command line wins.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServer(cmd, f, false) },
	}
	f.register(cmd.Flags(), false)
	return cmd
}
