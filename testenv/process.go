package testenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/strata-broker/strata/topicconfig"
)

// process is one child process whose stdout and stderr go to a log file. The
// handles this package exports (Dev, Etcd, MinIO and a Cluster's brokers)
// are built on it.
type process struct {
	name string
	cmd  *exec.Cmd
	// done is closed once the process has exited and been reaped; waitErr is
	// valid after that.
	done    chan struct{}
	waitErr error
	// exitHandled records that the process's exit is accounted for: the test
	// asked for it (kill, terminate) or it was already reported as a failure.
	// Any other exit is a crash.
	exitHandled atomic.Bool
}

// startProcess starts bin with args, appending its output to logPath after a
// line that records the command, so a log holding several runs (restarts)
// reads in order.
func startProcess(name, logPath, bin string, args []string) (*process, error) {
	return startProc(procSpec{name: name, logPath: logPath, bin: bin, args: args})
}

// procSpec describes a child process for startProc.
type procSpec struct {
	name    string
	logPath string
	bin     string
	args    []string
	// env is the child's whole environment; nil means childEnv().
	env []string
	// ownGroup puts the child in a process group of its own, so a terminal's
	// ^C reaches only the parent, which then stops the child in order.
	ownGroup bool
}

// shownArgs is args for the log, with the values of --config settings that
// hold secrets (topicconfig.IsSensitiveBrokerKey) masked.
func shownArgs(args []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		prefix := ""
		switch {
		case i > 0 && out[i-1] == "--config":
		case strings.HasPrefix(a, "--config="):
			prefix, a = "--config=", strings.TrimPrefix(a, "--config=")
		default:
			continue
		}
		if k, _, ok := strings.Cut(a, "="); ok && topicconfig.IsSensitiveBrokerKey(k) {
			out[i] = prefix + k + "=REDACTED"
		}
	}
	return out
}

// startProc starts the process spec describes, appending its output to
// spec.logPath after a line that records the command.
func startProc(spec procSpec) (*process, error) {
	f, err := os.OpenFile(spec.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	// The child gets its own copy of the descriptor; ours is not needed after
	// Start, and no goroutine copies output.
	defer f.Close()
	fmt.Fprintf(f, "=== testenv %s: start %s %s\n", time.Now().Format(time.RFC3339Nano), spec.bin, strings.Join(shownArgs(spec.args), " "))
	cmd := exec.Command(spec.bin, spec.args...)
	cmd.Env = spec.env
	if cmd.Env == nil {
		cmd.Env = childEnv()
	}
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = sysProcAttr()
	if spec.ownGroup {
		setOwnGroup(cmd.SysProcAttr)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.name, err)
	}
	p := &process{name: spec.name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// childEnv is the test's environment without STRATA_* variables: strata reads
// any flag from STRATA_<FLAG>, and a setting left in a developer's shell must
// not change what a test runs. Flags are passed explicitly instead.
func childEnv() []string {
	env := os.Environ()
	return slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "STRATA_") })
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// crashed reports whether the process exited without being asked to and
// without that being reported yet; it marks the exit as reported.
func (p *process) crashed() bool {
	return p.exited() && p.exitHandled.CompareAndSwap(false, true)
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits until the process is reaped. Killing a process
// that already exited does not account for that exit: it was a crash.
func (p *process) kill() {
	if !p.exited() {
		p.exitHandled.Store(true)
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL) // fails only if it already exited
	<-p.done
}

// terminate sends SIGTERM and waits up to timeout for the process to exit. If
// it does not, terminate kills it and says so. It returns the process's own
// exit error (nil for a clean exit with status 0).
func (p *process) terminate(timeout time.Duration) error {
	if !p.exited() {
		p.exitHandled.Store(true)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.waitErr
	case <-timer.C:
		p.kill()
		return fmt.Errorf("%s (pid %d) did not exit within %v of SIGTERM; killed it", p.name, p.pid(), timeout)
	}
}

// errExited is returned by waitHealthy when the process exits first.
var errExited = errors.New("process exited")

// waitHealthy polls url until it answers 200, the process exits, or timeout
// passes.
func (p *process) waitHealthy(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.waitHealthyContext(ctx, url)
}

// waitHealthyContext polls url until it answers 200, the process exits, or
// ctx ends.
func (p *process) waitHealthyContext(ctx context.Context, url string) error {
	return p.waitHealthyTLS(ctx, url, nil)
}

// waitHealthyTLS is waitHealthyContext for an https:// url, verified with
// tlsCfg.
func (p *process) waitHealthyTLS(ctx context.Context, url string, tlsCfg *tls.Config) error {
	client := &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: tlsCfg},
	}
	defer client.CloseIdleConnections()
	start := time.Now()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		last = err
		select {
		case <-p.done:
			p.exitHandled.Store(true)
			return fmt.Errorf("%s (pid %d) %w before it was healthy: %v", p.name, p.pid(), errExited, p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("%s (pid %d) not healthy after %v: %v", p.name, p.pid(), time.Since(start).Round(time.Millisecond), last)
		case <-tick.C:
		}
	}
}

// signal sends sig to the process unless it has exited.
func (p *process) signal(sig os.Signal) error {
	if p.exited() {
		return fmt.Errorf("%s (pid %d) has exited", p.name, p.pid())
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s (pid %d): %w", p.name, p.pid(), err)
	}
	return nil
}

// wait waits until the process exits or ctx ends. An exit waited for is
// accounted for: it is not reported as a crash.
func (p *process) wait(ctx context.Context) error {
	select {
	case <-p.done:
		p.exitHandled.Store(true)
		return p.waitErr
	case <-ctx.Done():
		return fmt.Errorf("wait for %s (pid %d) to exit: %w", p.name, p.pid(), ctx.Err())
	}
}

// logTail returns the last n lines of the file at path (read from at most its
// last MiB).
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	const maxRead = 1 << 20
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(log: %v)", err)
	}
	off := max(st.Size()-maxRead, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Sprintf("(log: %v)", err)
	}
	buf = bytes.TrimRight(buf, "\n")
	lines := bytes.Split(buf, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// logSince returns what was appended to the file at path after byte offset off.
func logSince(path string, off int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < off {
		return ""
	}
	return string(b[off:])
}

// fileSize is the size of the file at path, 0 if it does not exist.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}
