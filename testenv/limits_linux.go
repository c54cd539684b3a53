package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// LimitMemory puts process pid into a fresh memory cgroup limited to limit
// bytes, as the hostile-input measurements were made: a broker that lets a
// client grow its memory is killed by the kernel there, which the test sees
// as the broker exiting. The cgroup is removed when the test ends. It skips
// the test when this machine gives no writable memory controller (not root,
// or a container without one).
func LimitMemory(t testing.TB, pid int, limit int64) {
	t.Helper()
	dir, file, err := newMemoryCgroup(t.Name())
	if err != nil {
		t.Skipf("testenv: no memory cgroup to limit the broker in: %v", err)
	}
	t.Cleanup(func() {
		// The broker is usually gone by now; if not, moving it to the parent
		// lets the directory go.
		if b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
			for _, p := range strings.Fields(string(b)) {
				_ = os.WriteFile(filepath.Join(filepath.Dir(dir), "cgroup.procs"), []byte(p), 0o644)
			}
		}
		_ = os.Remove(dir)
	})
	if err := os.WriteFile(filepath.Join(dir, file), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
		t.Skipf("testenv: set the memory limit: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		t.Skipf("testenv: move the broker into its cgroup: %v", err)
	}
}

// newMemoryCgroup creates a cgroup under the memory controller and names the
// file that holds its limit: cgroup v1's memory hierarchy when mounted,
// otherwise the unified hierarchy if it offers the memory controller.
func newMemoryCgroup(name string) (dir, limitFile string, err error) {
	name = "strata-test-" + strconv.Itoa(os.Getpid()) + "-" + sanitize(name)
	if st, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err == nil && !st.IsDir() {
		dir = filepath.Join("/sys/fs/cgroup/memory", name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return "", "", err
		}
		return dir, "memory.limit_in_bytes", nil
	}
	ctrl, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	if err != nil {
		return "", "", err
	}
	if !strings.Contains(" "+string(ctrl)+" ", " memory ") {
		return "", "", errors.New("the unified hierarchy has no memory controller")
	}
	dir = filepath.Join("/sys/fs/cgroup", name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", "", err
	}
	return dir, "memory.max", nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, s)
}

// Memory reports a process's resident set: now (VmRSS) and its peak since it
// started (VmHWM), in bytes, as the kernel counts them. The peak is what a
// memory cgroup would have had to allow.
func Memory(pid int) (rss, peak int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		fields := strings.Fields(val) // "12345 kB"
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, 0, fmt.Errorf("unexpected %s line %q", key, sc.Text())
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse %s: %w", key, err)
		}
		if key == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if peak == 0 {
		return 0, 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
	}
	return rss, peak, nil
}
