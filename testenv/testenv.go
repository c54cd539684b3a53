// Package testenv starts real Strata processes on loopback for tests: a
// single-process broker (`strata dev`, StartDev), and a cluster (StartCluster,
// NewTestCluster) of etcd, N `strata broker` processes and optionally MinIO,
// each its own process, with TCP proxies in front of the brokers for fault
// injection. The cluster API needs no *testing.T, so `strata testenv` runs the
// same environment by hand; NewTestCluster, NewTestEtcd, NewTestMinIO and
// NewTestProxy wrap it for tests.
//
// Everything it starts listens on 127.0.0.1 only, on ports picked free at
// start, and logs to a file in the environment's directory. In tests a
// t.Cleanup stops everything when the test ends, whatever happened, and when
// a test fails it prints the tail of each process's log to the test output.
//
// The strata binary comes from $STRATA_BIN (the Makefile's test target sets
// it) or, when that is unset, from a `go build ./cmd/strata` run once per test
// process.
package testenv

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Binary returns the path of the strata binary: $STRATA_BIN when it is set and
// names an existing file, otherwise a binary built from the strata module
// containing the test's working directory (also from a module nested in it,
// such as deploy/prometheus). The build runs once per test process; its
// result (or its failure) is shared by every caller.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("STRATA_BIN"); p != "" {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			abs, err := filepath.Abs(p)
			if err != nil {
				t.Fatalf("testenv: STRATA_BIN=%s: %v", p, err)
			}
			return abs
		}
		t.Logf("testenv: STRATA_BIN=%s does not exist; building ./cmd/strata instead", p)
	}
	bin, err := buildOnce()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return bin
}

// buildOnce builds the binary at most once per process. It is the package's
// only mutable state: a cache of an idempotent build.
var buildOnce = sync.OnceValues(buildStrata)

// buildStrata runs `go build ./cmd/strata` from the module root into a
// directory under os.TempDir() named after the user and the module root, so
// repeated test runs reuse one file instead of leaking a binary per run. It
// builds into a fresh name and renames it into place, so a concurrent test
// process (go test ./... runs packages in parallel) never executes a
// half-written file.
func buildStrata() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	root, err := moduleRoot(wd)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("strata-testenv-%d-%x", os.Getuid(), sum[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, "strata-*.tmp")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name()) // no-op after a successful rename

	start := time.Now()
	// `go test` puts $GOROOT/bin first in PATH, so this is the same toolchain.
	cmd := exec.Command("go", "build", "-o", tmp.Name(), "./cmd/strata")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/strata in %s: %v\n%s", root, err, out)
	}
	bin := filepath.Join(dir, "strata")
	if err := os.Rename(tmp.Name(), bin); err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "testenv: built %s in %v\n", bin, time.Since(start).Round(time.Millisecond))
	return bin, nil
}

// moduleRoot walks up from dir to the directory whose go.mod is strata's
// own: a module nested in the repository (deploy/prometheus, which keeps
// Prometheus's dependencies out of strata's) runs its tests from its own
// directory, but the binary and etcd are built from strata's.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && modulePath(b) == strataModule {
			return d, nil
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod of %s in %s or any parent", strataModule, dir)
		}
		d = parent
	}
}

// strataModule is the module path moduleRoot looks for.
const strataModule = "github.com/strata-broker/strata"

// modulePath is the path a go.mod's module directive declares, "" if none.
func modulePath(gomod []byte) string {
	for line := range strings.Lines(string(gomod)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}
