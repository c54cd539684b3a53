package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/strata-broker/strata/broker/server"
	"github.com/strata-broker/strata/internal/tlsconf"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/topicconfig"
)

// brokerFlags are the flags shared by `strata dev` and `strata broker`.
type brokerFlags struct {
	nodeID          int32
	dataDir         string
	grpcAddr        string
	httpAddr        string
	kafkaAddr       string
	etcdEndpoints   []string
	etcdClientAddr  string
	etcdPrefix      string
	settings        []string
	logLevel        string
	logFormat       logFormat
	advertisedGRPC  string
	advertisedKafka string
	objectStore     string
	tieringCache    int64
	sessionTimeout  time.Duration
	configFile      string
	pprof           bool
	// tls (strata dev --tls) generates certificates and turns TLS on.
	tls bool
	// kafkaAddrSet is whether --kafka-addr was given (on the command line,
	// in the environment or the file) rather than left at its default.
	kafkaAddrSet bool
	// The connection to an external etcd: TLS as etcdctl's flags, and
	// etcd's user; the password is read from a file or the environment,
	// never from the command line.
	etcdCACert, etcdCert, etcdKey string
	etcdUser, etcdPasswordFile    string
	// fileSettings are the broker settings of the config file's config:
	// map; --config entries override them key by key.
	fileSettings map[string]string
}

func (f *brokerFlags) register(fs *pflag.FlagSet, dev bool) {
	fs.Int32Var(&f.nodeID, "node-id", 1, "this broker's node id (unique in the cluster)")
	fs.StringVar(&f.dataDir, "data-dir", "./data", "directory for partition logs"+map[bool]string{true: " and the embedded etcd", false: ""}[dev])
	fs.StringVar(&f.grpcAddr, "grpc-addr", "127.0.0.1:9093", "gRPC API listen address")
	fs.StringVar(&f.httpAddr, "http-addr", "127.0.0.1:9094", "HTTP listen address for /healthz and /metrics")
	fs.StringVar(&f.kafkaAddr, "kafka-addr", "127.0.0.1:9092", "Kafka protocol listen address; empty turns the Kafka listener off")
	fs.StringVar(&f.advertisedKafka, "kafka-advertised-addr", "", "Kafka address Metadata returns to clients (default: the address --kafka-addr binds)")
	fs.StringVar(&f.objectStore, "object-store", "", "object store for tiered topics (remote.storage.enable=true): s3://BUCKET/PREFIX?endpoint=URL&region=R (credentials from the AWS environment variables) or file:///DIR"+map[bool]string{true: " (default: file://<data-dir>/object-store)", false: ""}[dev])
	fs.Int64Var(&f.tieringCache, "tiering-cache-bytes", 1<<30, "bytes of disk for the cache of reads from the object store")
	fs.StringVar(&f.etcdPrefix, "etcd-prefix", "/strata", "key prefix of this cluster in etcd")
	fs.StringArrayVar(&f.settings, "config", nil, "broker setting in server.properties form, e.g. log.retention.ms=3600000 (repeatable)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.logFormat = logJSON
	fs.Var(&f.logFormat, "log-format", "log format: json (one object a line, for log collectors) or text (key=value, for reading)")
	fs.StringVar(&f.advertisedGRPC, "advertised-grpc-addr", "", "gRPC address published for clients and other brokers (default: the address --grpc-addr binds)")
	fs.DurationVar(&f.sessionTimeout, "session-timeout", server.DefaultSessionTimeout, "etcd lease TTL: a broker that has not renewed it for this long is considered gone")
	fs.StringVar(&f.configFile, "config-file", "", "YAML file of these settings, keys named like the flags (node-id: 2) and broker settings under config:; flags and STRATA_* variables win over it")
	fs.BoolVar(&f.pprof, "pprof", false, "serve Go's profiles under /debug/pprof/ on the HTTP listener (never /debug/pprof/cmdline)")
	if dev {
		fs.BoolVar(&f.tls, "tls", false, "secure the broker: generate a CA and certificates under <data-dir>/tls (kept across restarts), serve the Kafka listener as SASL_SSL and gRPC over TLS, and enforce ACLs (the generated client certificate is a super user)")
		fs.StringVar(&f.etcdClientAddr, "etcd-client-addr", "127.0.0.1:2379", "client address of the embedded etcd")
	} else {
		fs.StringSliceVar(&f.etcdEndpoints, "etcd-endpoints", nil, "etcd endpoints, comma separated (required)")
		fs.StringVar(&f.etcdCACert, "etcd-cacert", "", "PEM file of the CA certificates that verify etcd's (TLS to etcd; endpoints are https://)")
		fs.StringVar(&f.etcdCert, "etcd-cert", "", "PEM file of the client certificate presented to etcd (etcd's --client-cert-auth); may hold the key too")
		fs.StringVar(&f.etcdKey, "etcd-key", "", "PEM file of the client certificate's private key (default: --etcd-cert)")
		fs.StringVar(&f.etcdUser, "etcd-user", "", "etcd user to authenticate as (etcd's auth); the password comes from --etcd-password-file or "+etcdPasswordEnv)
		fs.StringVar(&f.etcdPasswordFile, "etcd-password-file", "", "file holding the password of --etcd-user (one line)")
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

// resolve completes the flags after parsing: STRATA_<FLAG> variables fill
// flags not given on the command line, then the config file (named by
// --config-file or STRATA_CONFIG_FILE) fills what is still unset. So the
// precedence is flag > environment > file > default.
func (f *brokerFlags) resolve(fs *pflag.FlagSet) error {
	if err := applyEnv(fs); err != nil {
		return err
	}
	if f.configFile != "" {
		if err := f.applyConfigFile(fs, f.configFile); err != nil {
			return err
		}
	}
	f.kafkaAddrSet = fs.Changed("kafka-addr")
	return nil
}

// etcdPasswordEnv holds the password of --etcd-user when no file does: a
// password on the command line would be in every process listing.
const etcdPasswordEnv = "STRATA_ETCD_PASSWORD"

// etcdSecurity reads the TLS and login of the connection to etcd.
func (f *brokerFlags) etcdSecurity() (*tls.Config, string, metastore.EtcdPassword, error) {
	var tlsCfg *tls.Config
	if f.etcdCACert != "" || f.etcdCert != "" || f.etcdKey != "" {
		var err error
		if tlsCfg, err = tlsconf.ClientConfig(f.etcdCACert, f.etcdCert, f.etcdKey); err != nil {
			return nil, "", "", fmt.Errorf("--etcd-cacert/--etcd-cert/--etcd-key: %w", err)
		}
	}
	env, inEnv := os.LookupEnv(etcdPasswordEnv)
	var password string
	switch {
	case f.etcdPasswordFile != "" && inEnv:
		return nil, "", "", fmt.Errorf("--etcd-password-file and %s are both set: use one", etcdPasswordEnv)
	case f.etcdPasswordFile != "":
		b, err := os.ReadFile(f.etcdPasswordFile)
		if err != nil {
			return nil, "", "", fmt.Errorf("--etcd-password-file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	case inEnv:
		password = env
	}
	switch {
	case f.etcdUser != "" && password == "":
		return nil, "", "", fmt.Errorf("--etcd-user %s has no password: set --etcd-password-file or %s", f.etcdUser, etcdPasswordEnv)
	case f.etcdUser == "" && password != "":
		return nil, "", "", fmt.Errorf("an etcd password is set (--etcd-password-file or %s) without --etcd-user", etcdPasswordEnv)
	}
	return tlsCfg, f.etcdUser, metastore.EtcdPassword(password), nil
}

// applyConfigFile sets every flag not already set from the YAML file at path.
// Keys are the flags' names; config: is a map of broker settings. Unknown
// keys are refused rather than ignored: a misspelt key would otherwise leave
// a setting silently at its default.
func (f *brokerFlags) applyConfigFile(fs *pflag.FlagSet, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config file %s: line %d: want key: value settings", path, root.Line)
	}
	seen := make(map[string]bool)
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		key := k.Value
		wrap := func(err error) error { return fmt.Errorf("config file %s: line %d: %s: %w", path, k.Line, key, err) }
		if seen[key] {
			return wrap(errors.New("set twice"))
		}
		seen[key] = true
		fl := fs.Lookup(key)
		if fl == nil || key == "help" {
			return fmt.Errorf("config file %s: line %d: unknown key %q", path, k.Line, key)
		}
		switch key {
		case "config-file":
			return wrap(errors.New("a config file cannot name another"))
		case "config":
			settings, err := yamlSettings(v)
			if err != nil {
				return wrap(err)
			}
			f.fileSettings = settings
			continue
		}
		if fl.Changed {
			continue // given on the command line or in the environment
		}
		switch {
		case v.Kind == yaml.ScalarNode && v.Tag != "!!null":
			if err := fs.Set(key, v.Value); err != nil {
				return wrap(err)
			}
		case v.Kind == yaml.SequenceNode:
			sv, ok := fl.Value.(pflag.SliceValue)
			if !ok {
				return wrap(errors.New("takes one value, not a list"))
			}
			items := make([]string, 0, len(v.Content))
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode {
					return wrap(errors.New("list items must be plain values"))
				}
				items = append(items, item.Value)
			}
			if err := sv.Replace(items); err != nil {
				return wrap(err)
			}
			fl.Changed = true
		default:
			return wrap(errors.New("want a value"))
		}
	}
	return nil
}

// yamlSettings reads the config file's config: map of broker settings.
func yamlSettings(v *yaml.Node) (map[string]string, error) {
	if v.Kind != yaml.MappingNode {
		return nil, errors.New("want a map of broker settings, e.g. log.retention.ms: 3600000")
	}
	settings := make(map[string]string, len(v.Content)/2)
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		if k.Kind != yaml.ScalarNode || val.Kind != yaml.ScalarNode || k.Value == "" {
			return nil, fmt.Errorf("line %d: want key: value", k.Line)
		}
		if _, dup := settings[k.Value]; dup {
			return nil, fmt.Errorf("line %d: %s set twice", k.Line, k.Value)
		}
		settings[k.Value] = val.Value
	}
	return settings, nil
}

// devSettings are the broker settings `strata dev` has unless told
// otherwise: a single local broker for development and experiments, where
// clients create topics by naming them, as with Kafka's defaults, small
// segments are allowed, and a sealed segment of a tiered topic reaches the
// object store within a second or two rather than Kafka's 30 s, so that
// trying tiering (tiering status, replay) shows it at once.
func devSettings() map[string]string {
	return map[string]string{
		"auto.create.topics.enable":           "true",
		topicconfig.SegmentMinBytesKey:        "1024",
		"remote.log.manager.task.interval.ms": "1000",
	}
}

func (f *brokerFlags) config(dev bool) (server.Config, error) {
	flagSettings, err := parseConfigs("config", f.settings)
	if err != nil {
		return server.Config{}, err
	}
	// Key by key: a --config entry overrides the file's value of that key.
	settings := maps.Clone(f.fileSettings)
	if settings == nil {
		settings = flagSettings
	} else {
		maps.Copy(settings, flagSettings)
	}
	if dev {
		for k, v := range devSettings() {
			if _, set := settings[k]; !set {
				settings[k] = v
			}
		}
	}
	kafkaAddr := f.kafkaAddr
	if _, ok := settings[topicconfig.ListenersKey]; ok && !f.kafkaAddrSet {
		// Kafka's listeners declares the Kafka listeners: --kafka-addr's
		// default gives way, and only an explicit one conflicts.
		kafkaAddr = ""
	}
	if dev && f.tls {
		if kafkaAddr, err = f.devTLS(settings, kafkaAddr); err != nil {
			return server.Config{}, err
		}
	}
	etcdTLS, etcdUser, etcdPassword, err := f.etcdSecurity()
	if err != nil {
		return server.Config{}, err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return server.Config{}, fmt.Errorf("--log-level %q: %w", f.logLevel, err)
	}
	if f.sessionTimeout <= 0 {
		return server.Config{}, fmt.Errorf("--session-timeout %v: must be positive", f.sessionTimeout)
	}
	objectStore := f.objectStore
	if dev && objectStore == "" {
		// One process, no external services: tiered topics keep their
		// segments in a directory beside the data.
		abs, err := filepath.Abs(filepath.Join(f.dataDir, "object-store"))
		if err != nil {
			return server.Config{}, fmt.Errorf("--data-dir: %w", err)
		}
		objectStore = "file://" + abs
	}
	logger := newLogger(os.Stderr, f.logFormat, level)
	return server.Config{
		NodeID:              f.nodeID,
		DataDir:             f.dataDir,
		GRPCAddr:            f.grpcAddr,
		HTTPAddr:            f.httpAddr,
		KafkaAddr:           kafkaAddr,
		AdvertisedGRPCAddr:  f.advertisedGRPC,
		AdvertisedKafkaAddr: f.advertisedKafka,
		ObjectStoreURL:      objectStore,
		TieringCacheBytes:   f.tieringCache,
		SessionTimeout:      f.sessionTimeout,
		EtcdEndpoints:       f.etcdEndpoints,
		EmbedEtcd:           dev,
		EtcdClientAddr:      f.etcdClientAddr,
		EtcdPrefix:          f.etcdPrefix,
		EtcdTLS:             etcdTLS,
		EtcdUser:            etcdUser,
		EtcdPassword:        etcdPassword,
		Settings:            settings,
		Pprof:               f.pprof,
		Logger:              logger,
	}, nil
}

// devTLS makes `strata dev --tls` a secured broker, for trying security
// with one command: it generates (or finds) a CA and certificates in
// <data-dir>/tls, serves the Kafka listener as SASL_SSL (unless --kafka-addr
// names its protocol) and the gRPC port over TLS, turns the authorizer on
// with the generated client certificate (the CLI's) and a SCRAM user
// "admin" as super users, and prints what clients need. Every setting it
// sets gives way to one given explicitly (authorizer.class.name= with no
// value turns ACLs off).
func (f *brokerFlags) devTLS(settings map[string]string, kafkaAddr string) (string, error) {
	g, err := tlsconf.Generate(filepath.Join(f.dataDir, "tls"))
	if err != nil {
		return "", fmt.Errorf("--tls: generate certificates: %w", err)
	}
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	ca, serverPEM, clientPEM := abs(g.CA), abs(g.Server), abs(g.Client)
	defaults := map[string]string{
		// The CLI's certificate names its principal on the gRPC port;
		// clients without one are User:ANONYMOUS.
		"grpc.ssl.client.auth":  "requested",
		"ssl.client.auth":       "requested",
		"authorizer.class.name": "strata",
		"super.users":           devClientPrincipal + ";" + devAdminPrincipal,
	}
	for _, prefix := range []string{"", "grpc."} {
		defaults[prefix+"ssl.keystore.type"] = "PEM"
		defaults[prefix+"ssl.keystore.location"] = serverPEM
		defaults[prefix+"ssl.truststore.type"] = "PEM"
		defaults[prefix+"ssl.truststore.location"] = ca
	}
	for k, v := range defaults {
		if _, set := settings[k]; !set {
			settings[k] = v
		}
	}
	if kafkaAddr != "" && !strings.Contains(kafkaAddr, "://") {
		kafkaAddr = topicconfig.ProtocolSASLSSL + "://" + kafkaAddr
	}
	protocol, addr, _ := strings.Cut(kafkaAddr, "://")
	var b strings.Builder
	fmt.Fprintf(&b, "Security is on (strata dev --tls); certificates in %s\n", filepath.Dir(ca))
	if kafkaAddr == "" {
		fmt.Fprintf(&b, "  Kafka:  the listeners of %s\n", topicconfig.ListenersKey)
	} else {
		fmt.Fprintf(&b, "  Kafka:  %s on %s\n", protocol, addr)
	}
	if strings.TrimSpace(settings["authorizer.class.name"]) == "" {
		b.WriteString("  ACLs:   off (authorizer.class.name is empty)\n")
	} else {
		fmt.Fprintf(&b, "  ACLs:   enforced; super users %s\n", settings["super.users"])
	}
	fmt.Fprintf(&b, "  CLI:    export %s=%s %s=%s %s=%s\n", bootstrapEnv, f.grpcAddr, tlsCAEnv, ca, tlsCertEnv, clientPEM)
	fmt.Fprintf(&b, "          (the certificate is %s)\n", devClientPrincipal)
	if protocol == topicconfig.ProtocolSASLSSL {
		fmt.Fprintf(&b, "  users:  echo \"$PASSWORD\" | strata users create alice --mechanism SCRAM-SHA-512\n")
		fmt.Fprintf(&b, "  kcat:   kcat -b %s -X security.protocol=SASL_SSL -X ssl.ca.location=%s \\\n", addr, ca)
		b.WriteString("            -X sasl.mechanisms=SCRAM-SHA-512 -X sasl.username=alice -X sasl.password=\"$PASSWORD\" -L\n")
	} else if kafkaAddr != "" {
		fmt.Fprintf(&b, "  kcat:   kcat -b %s -X security.protocol=%s -X ssl.ca.location=%s ...\n", addr, strings.ToLower(protocol), ca)
	}
	os.Stderr.WriteString(b.String())
	return kafkaAddr, nil
}

// The super users of strata dev --tls: the generated client certificate
// (the CLI's, on the gRPC port) and a SCRAM user one may create for Kafka
// admin tools.
const (
	devClientPrincipal = "User:CN=strata-client"
	devAdminPrincipal  = "User:admin"
)

func runServer(cmd *cobra.Command, f *brokerFlags, dev bool) error {
	if err := f.resolve(cmd.Flags()); err != nil {
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
STRATA_<FLAG>, e.g. STRATA_ETCD_ENDPOINTS=127.0.0.1:2379, or in the YAML file
named by --config-file, with keys named like the flags:

  node-id: 2
  data-dir: /var/lib/strata
  etcd-endpoints: [10.0.0.1:2379, 10.0.0.2:2379]
  config:
    log.retention.ms: 3600000

A flag on the command line wins over the environment, which wins over the
file; --config entries override the file's config: map key by key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServer(cmd, f, false) },
	}
	f.register(cmd.Flags(), false)
	return cmd
}
