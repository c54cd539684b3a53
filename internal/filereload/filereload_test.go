package filereload

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func parseText(b []byte) (string, error) {
	if bytes.HasPrefix(b, []byte("bad")) {
		return "", errors.New("bad content")
	}
	return string(b), nil
}

func write(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func TestReloadWaitsForInterval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	write(t, path, "one", time.Now().Add(-time.Minute))
	now := time.Now()
	f, err := Load(path, parseText, Options{Interval: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	write(t, path, "two", time.Now())
	if got := f.Get(); got != "one" {
		t.Fatalf("Get before the interval = %q, want the loaded one", got)
	}
	now = now.Add(time.Hour)
	if got := f.Get(); got != "two" {
		t.Fatalf("Get after the interval = %q, want the changed file", got)
	}
}

func TestBadFileKeepsLoadedValueAndIsLogged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	write(t, path, "one", time.Now().Add(-time.Minute))
	var logs bytes.Buffer
	f, err := Load(path, parseText, Options{What: "JWKS file", Interval: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	write(t, path, "bad", time.Now())
	if got := f.Get(); got != "one" {
		t.Fatalf("Get after a bad change = %q, want the loaded one", got)
	}
	if !strings.Contains(logs.String(), "JWKS file changed but cannot be used") || !strings.Contains(logs.String(), path) {
		t.Fatalf("bad file not logged; log:\n%s", logs.String())
	}
}

func TestMaxBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	write(t, path, strings.Repeat("x", 11), time.Now().Add(-time.Minute))
	if _, err := Load(path, parseText, Options{MaxBytes: 10}); err == nil || !strings.Contains(err.Error(), "more than the 10") {
		t.Fatalf("Load of an 11-byte file with MaxBytes 10: err = %v, want a size refusal", err)
	}
	write(t, path, "small", time.Now().Add(-time.Minute))
	f, err := Load(path, parseText, Options{MaxBytes: 10, Interval: -1})
	if err != nil {
		t.Fatal(err)
	}
	write(t, path, strings.Repeat("y", 11), time.Now())
	if got := f.Get(); got != "small" {
		t.Fatalf("Get after the file outgrew MaxBytes = %q, want the loaded one", got)
	}
}
