package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/credentials"

	"github.com/strata-broker/strata/api/client"
	"github.com/strata-broker/strata/internal/tlsconf"
)

// bootstrapEnv overrides the default broker address of the client commands.
const bootstrapEnv = "STRATA_BOOTSTRAP_SERVER"

// clientFlags are the flags every command that talks to a broker has.
type clientFlags struct {
	bootstrap string
	// tlsCA, tlsCert and tlsKey turn TLS on (any of them): the CA that signs
	// the brokers' certificates, and a client certificate for mutual TLS.
	tlsCA, tlsCert, tlsKey string
}

func (f *clientFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.bootstrap, "bootstrap-server", "",
		"gRPC address HOST:PORT of any broker of the cluster, or several comma-separated (default "+client.DefaultAddr+", or $"+bootstrapEnv+")")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "connect with TLS, verifying the brokers against this PEM file of CA certificates")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "connect with TLS, presenting this PEM client certificate (mutual TLS); the file may hold the key too")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of --tls-cert, if not in the same file")
}

// addr resolves the bootstrap server list: the flag, else the environment,
// else the default. Any one broker is enough: the client finds the others
// from it.
func (f *clientFlags) addr() string {
	return resolveBootstrap(f.bootstrap, os.Getenv(bootstrapEnv))
}

func resolveBootstrap(flag, env string) string {
	if flag != "" {
		return flag
	}
	if env = strings.TrimSpace(env); env != "" {
		return env
	}
	return client.DefaultAddr
}

func (f *clientFlags) dial(ctx context.Context) (*client.Client, error) {
	var opts []client.Option
	if f.tlsCA != "" || f.tlsCert != "" || f.tlsKey != "" {
		cfg, err := tlsconf.ClientConfig(f.tlsCA, f.tlsCert, f.tlsKey)
		if err != nil {
			return nil, err
		}
		opts = append(opts, client.WithTransportCredentials(credentials.NewTLS(cfg)))
	}
	return client.Dial(ctx, f.addr(), opts...)
}

// admin runs fn with a connection to the broker and a deadline for an
// administrative call.
func (f *clientFlags) admin(cmd *cobra.Command, fn func(ctx context.Context, c *client.Client) error) error {
	ctx, cancel := adminContext(cmd)
	defer cancel()
	c, err := f.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(ctx, c)
}

// parseConfigs turns repeated k=v flags into a map.
func parseConfigs(flag string, kvs []string) (map[string]string, error) {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("--%s %q: want key=value", flag, kv)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("--%s: %s given twice", flag, k)
		}
		out[k] = v
	}
	return out, nil
}

// outputFormat is the value of an --output flag.
type outputFormat string

const (
	outputText outputFormat = "text"
	outputJSON outputFormat = "json"
)

func (o *outputFormat) String() string { return string(*o) }
func (o *outputFormat) Type() string   { return "text|json" }
func (o *outputFormat) Set(s string) error {
	switch outputFormat(s) {
	case outputText, outputJSON:
		*o = outputFormat(s)
		return nil
	}
	return fmt.Errorf("want text or json")
}

func addOutputFlag(fs *pflag.FlagSet, o *outputFormat) {
	*o = outputText
	fs.VarP(o, "output", "o", "output format: text or json")
}
