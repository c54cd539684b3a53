package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// passwordEnv and tokenEnv carry credentials to the client commands, so
// that they need not be on the command line (where ps shows them).
const (
	passwordEnv = "STRATA_PASSWORD"
	tokenEnv    = "STRATA_TOKEN"
	// The --tls-* flags' variables, so that a shell set up once (as
	// strata dev --tls prints) needs no flags on every command.
	tlsCAEnv   = "STRATA_TLS_CA"
	tlsCertEnv = "STRATA_TLS_CERT"
	tlsKeyEnv  = "STRATA_TLS_KEY"
)

// clientFlags are the flags every command that talks to a broker has.
type clientFlags struct {
	bootstrap string
	// tlsCA, tlsCert and tlsKey turn TLS on (any of them): the CA that signs
	// the brokers' certificates, and a client certificate for mutual TLS.
	tlsCA, tlsCert, tlsKey string
	// user authenticates with a password read from passwordFile ("-":
	// standard input) or $STRATA_PASSWORD; tokenFile holds a bearer token
	// (else $STRATA_TOKEN is used when set). Either turns TLS on.
	user, passwordFile, tokenFile string
}

func (f *clientFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.bootstrap, "bootstrap-server", "",
		"gRPC address HOST:PORT of any broker of the cluster, or several comma-separated (default "+client.DefaultAddr+", or $"+bootstrapEnv+")")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "connect with TLS, verifying the brokers against this PEM file of CA certificates (default $"+tlsCAEnv+")")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "connect with TLS, presenting this PEM client certificate (mutual TLS); the file may hold the key too (default $"+tlsCertEnv+")")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of --tls-cert, if not in the same file (default $"+tlsKeyEnv+")")
	fs.StringVar(&f.user, "user", "", "authenticate as this user (SCRAM credentials), with the password of --user-password-file or $"+passwordEnv+"; needs TLS")
	fs.StringVar(&f.passwordFile, "user-password-file", "", "file whose first line is --user's password; - reads it from standard input")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding an OAuth bearer token to authenticate with (default $"+tokenEnv+" when set); needs TLS")
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
	return f.dialWith(ctx, os.Stdin)
}

// dialWith is dial reading --user-password-file - or --token-file - from stdin.
func (f *clientFlags) dialWith(ctx context.Context, stdin io.Reader) (*client.Client, error) {
	opts, err := f.credentials(stdin, os.Getenv)
	if err != nil {
		return nil, err
	}
	ca, cert, key := f.tlsFiles(os.Getenv)
	// Credentials are sent over TLS only: with them, TLS is on even without
	// a --tls-* flag, verifying the brokers against the system's CAs.
	if ca != "" || cert != "" || key != "" || len(opts) > 0 {
		cfg, err := tlsconf.ClientConfig(ca, cert, key)
		if err != nil {
			return nil, err
		}
		opts = append(opts, client.WithTransportCredentials(credentials.NewTLS(cfg)))
	}
	return client.Dial(ctx, f.addr(), opts...)
}

// tlsFiles are the --tls-* files, each flag falling back to its variable.
func (f *clientFlags) tlsFiles(getenv func(string) string) (ca, cert, key string) {
	or := func(flag, env string) string {
		if flag != "" {
			return flag
		}
		return strings.TrimSpace(getenv(env))
	}
	return or(f.tlsCA, tlsCAEnv), or(f.tlsCert, tlsCertEnv), or(f.tlsKey, tlsKeyEnv)
}

// credentials are the options that authenticate the calls: --user's
// password or a bearer token, none when neither is given.
func (f *clientFlags) credentials(stdin io.Reader, getenv func(string) string) ([]client.Option, error) {
	token := ""
	switch {
	case f.tokenFile != "":
		t, err := readSecret(f.tokenFile, stdin)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		token = t
	case f.user == "":
		token = strings.TrimSpace(getenv(tokenEnv))
	}
	if f.user == "" {
		if f.passwordFile != "" {
			return nil, errors.New("--user-password-file needs --user")
		}
		if token == "" {
			return nil, nil
		}
		return []client.Option{client.WithBearerToken(token)}, nil
	}
	if f.tokenFile != "" {
		return nil, errors.New("--user and --token-file are two ways to authenticate: give one")
	}
	password := getenv(passwordEnv)
	if f.passwordFile != "" {
		p, err := readSecret(f.passwordFile, stdin)
		if err != nil {
			return nil, fmt.Errorf("--user-password-file: %w", err)
		}
		password = p
	}
	if password == "" {
		return nil, fmt.Errorf("--user %s: no password; give --user-password-file or set $%s", f.user, passwordEnv)
	}
	return []client.Option{client.WithBasicAuth(f.user, password)}, nil
}

// readSecret is the first line of path, or of stdin when path is "-".
// It reads byte by byte, so that what follows the line on stdin is left
// to the command (the records of strata produce).
func readSecret(path string, stdin io.Reader) (string, error) {
	r := stdin
	if path != "-" {
		file, err := os.Open(path)
		if err != nil {
			return "", err
		}
		defer file.Close()
		r = file
	}
	var line []byte
	b := make([]byte, 1)
	for len(line) < maxSecretBytes {
		n, err := r.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			line = append(line, b[0])
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", err
		}
	}
	s := strings.TrimRight(string(line), "\r")
	if s == "" {
		return "", errors.New("empty")
	}
	return s, nil
}

// maxSecretBytes bounds a password or token read from a file or stdin.
const maxSecretBytes = 64 << 10

// admin runs fn with a connection to the broker and a deadline for an
// administrative call.
func (f *clientFlags) admin(cmd *cobra.Command, fn func(ctx context.Context, c *client.Client) error) error {
	ctx, cancel := adminContext(cmd)
	defer cancel()
	c, err := f.dialWith(ctx, cmd.InOrStdin())
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
