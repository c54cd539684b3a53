package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// healthTimeout bounds how long a broker may take to answer /healthz
	// after it starts, including embedded etcd's startup and log recovery.
	healthTimeout = 60 * time.Second
	// stopTimeout is how long Stop waits for a clean exit after SIGTERM.
	stopTimeout = 30 * time.Second
	// logTailLines is how much of a log a failed test prints.
	logTailLines = 100
	// portAttempts is how many sets of ports StartDev tries when the broker
	// loses a race for a port it was given.
	portAttempts = 3
)

// DevOptions configures StartDev.
type DevOptions struct {
	// DataDir is the broker's --data-dir; empty means a fresh t.TempDir().
	DataDir string
	// ExtraArgs are appended to the `strata dev` command line, e.g.
	// {"--log-level", "debug"}. A flag given here wins
	// over the one StartDev sets.
	ExtraArgs []string
	// KafkaProtocol, when set, is the Kafka listener's security protocol
	// (SASL_PLAINTEXT, SASL_SSL, ...): --kafka-addr is given as
	// PROTOCOL://host:port. KafkaAddr stays host:port.
	KafkaProtocol string
}

// Dev is a running `strata dev`: one broker with embedded etcd. Its addresses
// stay the same across Restart. Methods are safe for concurrent use (a test
// may Kill from one goroutine while others produce).
type Dev struct {
	DataDir   string
	GRPCAddr  string
	HTTPAddr  string
	KafkaAddr string
	EtcdAddr  string // embedded etcd's client address
	// EtcdPeerAddr is embedded etcd's peer address when the binary has an
	// --etcd-peer-addr flag; empty when it picks a peer port itself.
	EtcdPeerAddr string
	// LogPath is the file that collects the broker's stdout and stderr across
	// every start.
	LogPath string

	t    testing.TB
	bin  string
	args []string

	// ports holds the addresses above while the test runs, so that a
	// restart gets them back (see holdLoopbackAddrs).
	ports *heldAddrs

	mu   sync.Mutex
	proc *process // the current (or last) process
}

// StartDev starts `strata dev` on free loopback ports and waits until its
// /healthz answers 200. It fails the test if the broker exits or is not
// healthy within a minute. A t.Cleanup kills the broker when the test ends,
// reports it if it had exited without being asked to, and prints the log's
// tail if the test failed.
//
// The child's environment has no STRATA_* variables, so a setting left in
// the developer's shell cannot change what the test runs.
func StartDev(t testing.TB, opts DevOptions) *Dev {
	t.Helper()
	bin := Binary(t)
	base := t.TempDir()
	dataDir := opts.DataDir
	if dataDir == "" {
		dataDir = filepath.Join(base, "data")
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	d := &Dev{
		DataDir: dataDir,
		LogPath: filepath.Join(base, "strata-dev.log"),
		t:       t,
		bin:     bin,
	}
	flags, err := commandFlags(bin, "dev")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	for _, f := range []string{"data-dir", "grpc-addr", "http-addr", "kafka-addr", "etcd-client-addr", "node-id"} {
		if !flags[f] {
			t.Fatalf("testenv: %s dev has no --%s flag", bin, f)
		}
	}
	t.Cleanup(d.cleanup)

	for attempt := 1; ; attempt++ {
		d.ports.release()
		ports, err := holdLoopbackAddrs(5)
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		d.ports = ports
		addrs := ports.addrs
		d.GRPCAddr, d.HTTPAddr, d.KafkaAddr, d.EtcdAddr = addrs[0], addrs[1], addrs[2], addrs[3]
		d.args = []string{
			"dev",
			"--data-dir", d.DataDir,
			"--grpc-addr", d.GRPCAddr,
			"--http-addr", d.HTTPAddr,
			"--kafka-addr", kafkaListener(opts.KafkaProtocol, d.KafkaAddr),
			"--etcd-client-addr", d.EtcdAddr,
			"--node-id", "1",
		}
		// Left to its default (a fixed port), a peer listener would collide
		// between tests running in parallel.
		if flags["etcd-peer-addr"] {
			d.EtcdPeerAddr = addrs[4]
			d.args = append(d.args, "--etcd-peer-addr", d.EtcdPeerAddr)
		}
		d.args = append(d.args, opts.ExtraArgs...)
		logStart := fileSize(d.LogPath)
		err = d.start()
		if err == nil {
			return d
		}
		// Where ports cannot be held (see holdLoopbackAddrs) another process
		// can take one before the broker binds it. Only that is worth a retry.
		if errors.Is(err, errExited) && attempt < portAttempts &&
			strings.Contains(logSince(d.LogPath, logStart), "address already in use") {
			t.Logf("testenv: strata dev lost a port race (attempt %d); retrying with new ports", attempt)
			continue
		}
		t.Fatalf("testenv: %v (log: %s)", err, d.LogPath)
	}
}

// kafkaListener is --kafka-addr's value for a listener of the protocol.
func kafkaListener(protocol, addr string) string {
	if protocol == "" {
		return addr
	}
	return protocol + "://" + addr
}

// start runs the broker with d.args and waits for it to be healthy.
func (d *Dev) start() error {
	d.mu.Lock()
	if prev := d.proc; prev != nil {
		if !prev.exited() {
			d.mu.Unlock()
			return fmt.Errorf("strata dev (pid %d) is still running", prev.pid())
		}
		d.reportCrash(prev)
	}
	p, err := startProcess("strata dev", d.LogPath, d.bin, d.args)
	if err != nil {
		d.mu.Unlock()
		return err
	}
	d.proc = p
	d.mu.Unlock()
	return p.waitHealthy("http://"+d.HTTPAddr+"/healthz", healthTimeout)
}

// Restart starts the broker again, after Kill or Stop, on the same data
// directory and the same ports, and waits until it is healthy. It fails t if
// the broker is still running.
func (d *Dev) Restart(t testing.TB) {
	t.Helper()
	start := time.Now()
	if err := d.start(); err != nil {
		t.Fatalf("testenv: restart: %v (log: %s)", err, d.LogPath)
	}
	t.Logf("testenv: strata dev restarted (pid %d) and healthy in %v", d.Pid(), time.Since(start).Round(time.Millisecond))
}

// Kill sends SIGKILL and waits until the process is gone. It does nothing if
// the broker is not running.
func (d *Dev) Kill() {
	if p := d.current(); p != nil {
		p.kill()
	}
}

// Stop sends SIGTERM and waits for the broker to exit. It fails the test if
// the broker takes longer than 30 seconds (and then kills it) or exits with
// an error: a clean shutdown is part of the broker's contract. It does
// nothing if the broker is not running.
func (d *Dev) Stop() {
	p := d.current()
	if p == nil || p.exited() {
		return
	}
	if err := p.terminate(stopTimeout); err != nil {
		d.t.Errorf("testenv: stop strata dev (pid %d): %v", p.pid(), err)
	}
}

// Pid is the process id of the running broker, or 0 when it is not running.
func (d *Dev) Pid() int {
	if p := d.current(); p != nil && !p.exited() {
		return p.pid()
	}
	return 0
}

func (d *Dev) current() *process {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.proc
}

func (d *Dev) tail() string {
	return fmt.Sprintf("--- last %d lines of %s ---\n%s", logTailLines, d.LogPath, logTail(d.LogPath, logTailLines))
}

// cleanup kills whatever is still running, reports a broker that exited
// without being asked to (a crash the test may not have noticed), and prints
// the log's tail if the test failed.
func (d *Dev) cleanup() {
	if p := d.current(); p != nil {
		d.reportCrash(p)
		p.kill()
	}
	d.ports.release()
	if d.t.Failed() {
		d.t.Log(d.tail())
	}
}

// reportCrash fails the test if p exited without being asked to: a broker
// crash the test itself may not have noticed.
func (d *Dev) reportCrash(p *process) {
	if p.crashed() {
		d.t.Errorf("testenv: strata dev (pid %d) exited on its own: %v", p.pid(), p.waitErr)
	}
}

// commandFlags returns the long flag names that `bin sub --help` lists.
func commandFlags(bin, sub string) (map[string]bool, error) {
	cmd := exec.Command(bin, sub, "--help")
	cmd.Env = childEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s %s --help: %v\n%s", bin, sub, err, out)
	}
	flags := make(map[string]bool)
	for _, m := range longFlag.FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	return flags, nil
}

var longFlag = regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9][a-z0-9-]*)`)
