package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --dir may be new, empty or a previous environment (cleared); anything else
// is left alone.
func TestPrepareEnvDirClearsOnlyAnEnvironment(t *testing.T) {
	base := t.TempDir()
	if err := prepareEnvDir(filepath.Join(base, "new")); err != nil {
		t.Errorf("missing directory: %v", err)
	}
	empty := filepath.Join(base, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := prepareEnvDir(empty); err != nil {
		t.Errorf("empty directory: %v", err)
	}

	prev := filepath.Join(base, "prev")
	for _, f := range []string{"env.json", "broker-1/data/x"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(prev, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(prev, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := prepareEnvDir(prev); err != nil {
		t.Fatalf("previous environment: %v", err)
	}
	if _, err := os.Stat(prev); !os.IsNotExist(err) {
		t.Errorf("previous environment not cleared: %v", err)
	}

	other := filepath.Join(base, "other")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "precious"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := prepareEnvDir(other); err == nil || !strings.Contains(err.Error(), "env.json") {
		t.Errorf("unrelated directory: %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(other, "precious")); err != nil {
		t.Errorf("unrelated directory touched: %v", err)
	}
}
