package testenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

const (
	// etcdModule holds etcd's main package at its root; it is already a
	// dependency of the module (the embedded etcd of `strata dev`), so the
	// etcd the tests run is the version the broker is built against.
	etcdModule = "go.etcd.io/etcd/server/v3"
	// etcdMaxTxnOps matches the embedded etcd: CreateTopic writes every
	// partition in one transaction, and etcd's default (128) would cap
	// topics at 127 partitions.
	etcdMaxTxnOps = 4096
	// etcdName is the member name; the data directory remembers it.
	etcdName = "testenv"
)

// EtcdOptions configures StartEtcd.
type EtcdOptions struct {
	// Dir holds the data directory (Dir/data) and the log (Dir/etcd.log).
	// Required.
	Dir string
	// Binary is the etcd binary; empty means EtcdBinary's.
	Binary string
	// Logger receives what testenv does; nil discards it.
	Logger *slog.Logger
	// ExtraArgs are appended to etcd's command line, e.g.
	// {"--quota-backend-bytes", "8388608"}; a flag given here wins.
	ExtraArgs []string
	// TLS, when set, serves the client port over TLS (Endpoint is then
	// https://); health is checked on a plaintext metrics port instead.
	TLS *EtcdTLS
}

// EtcdTLS is the TLS of etcd's client port.
type EtcdTLS struct {
	// CertFile and KeyFile are etcd's certificate and key, PEM (one file
	// may hold both).
	CertFile, KeyFile string
	// ClientCAFile, when set, makes etcd require client certificates
	// signed by these CAs (--client-cert-auth).
	ClientCAFile string
}

// Etcd is a single-member etcd running as its own process on loopback. Stop
// and Start keep its ports and data. Methods are safe for concurrent use.
type Etcd struct {
	dir        string
	dataDir    string
	logPath    string
	bin        string
	ports      *heldAddrs // clientAddr, peerAddr (and metricsAddr), held across restarts
	clientAddr string
	peerAddr   string
	// metricsAddr serves /health in plaintext when the client port is TLS.
	metricsAddr string
	tls         *EtcdTLS
	extraArgs   []string
	logger      *slog.Logger

	// beforeStop, if set, runs before Stop signals etcd, and the function
	// it returns once etcd has exited. The cluster uses it to cut the
	// brokers' connections (see Cluster).
	beforeStop func() (after func())

	mu      sync.Mutex
	proc    *process
	crashes []error // exits nobody asked for, found at Start or Close
}

// EtcdBinary returns the path of an etcd binary of the version this module
// depends on, building it once into the user's cache
// (<cache>/strata/etcd-<version>/etcd) when it is not there. Building needs
// the module's source tree: it runs `go build` from the module root found
// above the working directory.
func EtcdBinary(ctx context.Context, logger *slog.Logger) (string, error) {
	logger = orDiscard(logger)
	version, err := etcdVersion(ctx)
	if err != nil {
		return "", err
	}
	path, err := toolPath("etcd", version, "etcd")
	if err != nil {
		return "", err
	}
	return cachedTool(ctx, logger, path, func(ctx context.Context, tmpDir string) (string, error) {
		root, err := workingModuleRoot()
		if err != nil {
			return "", fmt.Errorf("build etcd %s: %w", version, err)
		}
		out := filepath.Join(tmpDir, "etcd")
		// Built from inside this module, so it resolves against go.mod and
		// go.sum: `go install ...@version` is refused for etcd, whose own
		// go.mod has replace directives.
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, etcdModule)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s in %s: %w\n%s", etcdModule, root, err, b)
		}
		// The module root may depend on another version than this binary
		// was built with; the cache directory must not lie about it.
		b, err := exec.CommandContext(ctx, out, "--version").Output()
		if err != nil {
			return "", fmt.Errorf("%s --version: %w", out, err)
		}
		if want := "etcd Version: " + strings.TrimPrefix(version, "v") + "\n"; !strings.Contains(string(b), want) {
			return "", fmt.Errorf("built etcd from %s reports %q, want version %s: is the module's go.mod at another etcd version than this binary?",
				root, strings.SplitN(string(b), "\n", 2)[0], version)
		}
		return out, nil
	})
}

// etcdVersion is the version of etcdModule this module uses: from the running
// binary's build information when it has it (the strata binary does), else
// from `go list -m` in the module root (test binaries carry no dependency
// list).
func etcdVersion(ctx context.Context) (string, error) {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == etcdModule {
				if d.Replace != nil && d.Replace.Version != "" {
					return d.Replace.Version, nil
				}
				return d.Version, nil
			}
		}
	}
	root, err := workingModuleRoot()
	if err != nil {
		return "", fmt.Errorf("find the etcd version: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", etcdModule)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("go list -m %s in %s: %w", etcdModule, root, err)
	}
	v := strings.TrimSpace(string(out))
	if v == "" {
		return "", fmt.Errorf("go list -m %s in %s: no version", etcdModule, root)
	}
	return v, nil
}

// workingModuleRoot is the module root above the working directory.
func workingModuleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return moduleRoot(wd)
}

// StartEtcd starts etcd on two free loopback ports (client and peer) and
// waits until its /health answers. It retries with new ports if it loses a
// race for one.
func StartEtcd(ctx context.Context, opts EtcdOptions) (*Etcd, error) {
	if opts.Dir == "" {
		return nil, errors.New("testenv: EtcdOptions.Dir is required")
	}
	logger := orDiscard(opts.Logger)
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = EtcdBinary(ctx, logger); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create etcd directory: %w", err)
	}
	e := &Etcd{
		dir:       opts.Dir,
		dataDir:   filepath.Join(opts.Dir, "data"),
		logPath:   filepath.Join(opts.Dir, "etcd.log"),
		bin:       bin,
		extraArgs: opts.ExtraArgs,
		logger:    logger,
		tls:       opts.TLS,
	}
	for attempt := 1; ; attempt++ {
		e.ports.release()
		n := 2
		if e.tls != nil {
			n = 3
		}
		ports, err := holdLoopbackAddrs(n)
		if err != nil {
			return nil, err
		}
		e.ports = ports
		e.clientAddr, e.peerAddr = ports.addrs[0], ports.addrs[1]
		if e.tls != nil {
			e.metricsAddr = ports.addrs[2]
		}
		logStart := fileSize(e.logPath)
		err = e.Start(ctx)
		if err == nil {
			logger.Info("etcd ready", "endpoint", e.Endpoint(), "pid", e.Pid())
			return e, nil
		}
		if errors.Is(err, errExited) && attempt < portAttempts &&
			lostPortRace(logSince(e.logPath, logStart)) {
			logger.Warn("etcd lost a port race; retrying with new ports", "attempt", attempt)
			e.forgetExit()
			// The member's peer URL is recorded at the first start.
			if err := os.RemoveAll(e.dataDir); err != nil {
				e.ports.release()
				return nil, fmt.Errorf("reset etcd data: %w", err)
			}
			continue
		}
		e.Kill()
		e.ports.release()
		return nil, err
	}
}

// NewTestEtcd starts etcd for a test in t.TempDir() unless opts.Dir is set,
// failing the test if it does not start. A t.Cleanup stops it, fails the test
// if it exited without being asked to, and prints its log's tail if the test
// failed.
func NewTestEtcd(t testing.TB, opts EtcdOptions) *Etcd {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	e, err := StartEtcd(t.Context(), opts)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("testenv: %v", err)
		}
		if t.Failed() {
			t.Log(tailNote(e.logPath))
		}
	})
	return e
}

// Endpoint is the client URL, http://127.0.0.1:<port>, or https:// with
// EtcdOptions.TLS.
func (e *Etcd) Endpoint() string {
	if e.tls != nil {
		return "https://" + e.clientAddr
	}
	return "http://" + e.clientAddr
}

// healthURL is where etcd answers /health without a client certificate.
func (e *Etcd) healthURL() string {
	if e.tls != nil {
		return "http://" + e.metricsAddr + "/health"
	}
	return e.Endpoint() + "/health"
}

// ClientAddr is the client address, 127.0.0.1:<port>.
func (e *Etcd) ClientAddr() string { return e.clientAddr }

// PeerAddr is the peer address, 127.0.0.1:<port>.
func (e *Etcd) PeerAddr() string { return e.peerAddr }

// DataDir is etcd's --data-dir.
func (e *Etcd) DataDir() string { return e.dataDir }

// LogPath is the file collecting etcd's output across every start.
func (e *Etcd) LogPath() string { return e.logPath }

func (e *Etcd) args() []string {
	client := e.Endpoint()
	peer := "http://" + e.peerAddr
	var tlsArgs []string
	if t := e.tls; t != nil {
		tlsArgs = []string{"--cert-file", t.CertFile, "--key-file", t.KeyFile,
			"--listen-metrics-urls", "http://" + e.metricsAddr}
		if t.ClientCAFile != "" {
			tlsArgs = append(tlsArgs, "--trusted-ca-file", t.ClientCAFile, "--client-cert-auth")
		}
	}
	return slices.Concat([]string{
		"--name", etcdName,
		"--data-dir", e.dataDir,
		"--listen-client-urls", client,
		"--advertise-client-urls", client,
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", etcdName + "=" + peer,
		"--initial-cluster-state", "new", // ignored once the data directory exists
		"--max-txn-ops", fmt.Sprint(etcdMaxTxnOps),
		// No fsync: a test environment's etcd holds nothing worth a power
		// loss, and fsync dominates etcd's write latency on shared CI disks.
		// Stop, Kill and restarts still keep every write (the page cache
		// survives a process).
		"--unsafe-no-fsync",
		"--log-level", "warn",
	}, tlsArgs, e.extraArgs)
}

// Start starts etcd on its ports and data directory (again, after Stop or
// Kill) and waits until /health answers 200. It fails if etcd is running.
func (e *Etcd) Start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	e.mu.Lock()
	if prev := e.proc; prev != nil {
		if !prev.exited() {
			e.mu.Unlock()
			return fmt.Errorf("etcd (pid %d) is still running", prev.pid())
		}
		e.noteCrashLocked(prev)
	}
	p, err := startProc(procSpec{
		name:     "etcd",
		logPath:  e.logPath,
		bin:      e.bin,
		args:     e.args(),
		env:      envWithout("ETCD_"),
		ownGroup: true,
	})
	if err != nil {
		e.mu.Unlock()
		return err
	}
	e.proc = p
	e.mu.Unlock()
	if err := p.waitHealthyContext(ctx, e.healthURL()); err != nil {
		return fmt.Errorf("%w%s", err, tailNote(e.logPath))
	}
	return nil
}

// Stop sends SIGTERM and waits for etcd to exit (killing it after
// stopTimeout). It returns etcd's exit error; it does nothing if etcd is not
// running.
//
// etcd drains its gRPC streams for up to 7 seconds when it stops, and a
// client's watch never ends on its own: a test holding a watch open on etcd
// makes Stop that slow. (A Cluster's brokers do not: their connections are
// cut first.)
func (e *Etcd) Stop() error {
	p := e.current()
	if p == nil || p.exited() {
		return nil
	}
	if e.beforeStop != nil {
		after := e.beforeStop()
		defer after()
	}
	if err := p.terminate(stopTimeout); err != nil && !exitedOnTerm(err) {
		return fmt.Errorf("stop etcd (pid %d): %w", p.pid(), err)
	}
	return nil
}

// Kill sends SIGKILL and waits until etcd is gone.
func (e *Etcd) Kill() {
	if p := e.current(); p != nil {
		p.kill()
	}
}

// Pid is etcd's process id, or 0 when it is not running.
func (e *Etcd) Pid() int {
	if p := e.current(); p != nil && !p.exited() {
		return p.pid()
	}
	return 0
}

// Close stops etcd and reports any exit nobody asked for.
func (e *Etcd) Close() error {
	var errs []error
	e.mu.Lock()
	if p := e.proc; p != nil {
		e.noteCrashLocked(p)
	}
	e.mu.Unlock()
	if err := e.Stop(); err != nil {
		errs = append(errs, err)
	}
	e.ports.release()
	e.mu.Lock()
	errs = append(errs, e.crashes...)
	e.crashes = nil
	e.mu.Unlock()
	return errors.Join(errs...)
}

func (e *Etcd) current() *process {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.proc
}

// noteCrashLocked records p's exit if nobody asked for it. Lock must be held.
func (e *Etcd) noteCrashLocked(p *process) {
	if p.crashed() {
		e.crashes = append(e.crashes, fmt.Errorf("etcd (pid %d) exited on its own: %v%s", p.pid(), p.waitErr, tailNote(e.logPath)))
	}
}

// forgetExit accounts for the current process's exit (a lost port race).
func (e *Etcd) forgetExit() {
	if p := e.current(); p != nil {
		p.exitHandled.Store(true)
	}
}

// envWithout is childEnv without the variables starting with any of
// prefixes: etcd and MinIO read settings from ETCD_* and MINIO_* just as
// strata reads STRATA_*.
func envWithout(prefixes ...string) []string {
	return slices.DeleteFunc(childEnv(), func(kv string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				return true
			}
		}
		return false
	})
}

// lostPortRace reports whether a process's log says it could not bind a
// port: where testenv cannot hold the ports it picks (see
// holdLoopbackAddrs), they are free when picked but not reserved.
// (MinIO words it its own way.)
func lostPortRace(log string) bool {
	return strings.Contains(log, "address already in use") || strings.Contains(log, "port is already in use")
}

// tailNote is the last lines of a log, for an error message.
func tailNote(path string) string {
	return fmt.Sprintf("\n--- last %d lines of %s ---\n%s", errorTailLines, path, logTail(path, errorTailLines))
}

// errorTailLines is how much of a log an error carries.
const errorTailLines = 20

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// exitedOnTerm reports whether err is a process's exit error for an exit
// caused by SIGTERM itself: etcd re-raises the signal after its shutdown,
// which is its clean exit.
func exitedOnTerm(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM
}
