package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The process tests run this test binary itself as the child: with
// TESTENV_HELPER set, TestHelperProcess serves /healthz on the address in
// TESTENV_HELPER_ADDR and exits 0 on SIGTERM, or exits 3 at once for "crash".
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("TESTENV_HELPER")
	if mode == "" {
		t.Skip("helper process for the process tests")
	}
	fmt.Fprintln(os.Stderr, "helper starting", mode)
	if mode == "crash" {
		os.Exit(3)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	srv := &http.Server{Addr: os.Getenv("TESTENV_HELPER_ADDR"), Handler: mux}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "helper stopped")
	os.Exit(0)
}

func startHelper(t *testing.T, mode, addr, logPath string) *process {
	t.Helper()
	t.Setenv("TESTENV_HELPER", mode)
	t.Setenv("TESTENV_HELPER_ADDR", addr)
	p, err := startProcess("helper", logPath, os.Args[0], []string{"-test.run=^TestHelperProcess$"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.kill)
	return p
}

func TestProcessHealthyThenTerminate(t *testing.T) {
	addr := FreeAddr(t)
	logPath := filepath.Join(t.TempDir(), "helper.log")
	p := startHelper(t, "serve", addr, logPath)
	if err := p.waitHealthy("http://"+addr+"/healthz", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.terminate(30 * time.Second); err != nil {
		t.Fatalf("terminate: %v", err)
	}
	if p.crashed() {
		t.Error("a process stopped by terminate counts as crashed")
	}
	if tail := logTail(logPath, 2); !strings.HasSuffix(tail, "helper stopped") || strings.Count(tail, "\n") != 1 {
		t.Errorf("log tail %q, want 2 lines ending with the helper's last line", tail)
	}
}

func TestProcessExitBeforeHealthy(t *testing.T) {
	addr := FreeAddr(t)
	p := startHelper(t, "crash", addr, filepath.Join(t.TempDir(), "helper.log"))
	err := p.waitHealthy("http://"+addr+"/healthz", 30*time.Second)
	if !errors.Is(err, errExited) {
		t.Fatalf("waitHealthy = %v, want errExited", err)
	}
	if p.crashed() {
		t.Error("an exit already reported by waitHealthy is reported again as a crash")
	}
}

func TestProcessCrashIsReported(t *testing.T) {
	addr := FreeAddr(t)
	p := startHelper(t, "serve", addr, filepath.Join(t.TempDir(), "helper.log"))
	if err := p.waitHealthy("http://"+addr+"/healthz", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// Killed behind the handle's back: to the handle, a crash.
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	p.kill() // killing a dead process does not excuse its exit
	if !p.crashed() {
		t.Error("a process that died on its own is not reported as crashed")
	}
	if p.crashed() {
		t.Error("a crash is reported twice")
	}
}

func TestFreeAddrsDistinct(t *testing.T) {
	seen := make(map[string]bool)
	for _, a := range freeAddrs(t, 20) {
		if seen[a] {
			t.Fatalf("freeAddrs returned %s twice", a)
		}
		seen[a] = true
		if !strings.HasPrefix(a, "127.0.0.1:") {
			t.Errorf("address %s is not on loopback", a)
		}
	}
}
