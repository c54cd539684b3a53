package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// A module nested in the repository (deploy/prometheus has its own
// go.mod) builds strata and etcd from strata's module, not its own.
func TestModuleRootSkipsNestedModules(t *testing.T) {
	root := t.TempDir()
	nested := filepath.Join(root, "deploy", "prometheus")
	if err := os.MkdirAll(filepath.Join(nested, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(dir, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(root, "// The broker.\nmodule  \"github.com/strata-broker/strata\"\n\ngo 1.26\n")
	write(nested, "module github.com/strata-broker/strata/deploy/prometheus\n\ngo 1.26\n")
	for _, dir := range []string{root, nested, filepath.Join(nested, "sub")} {
		got, err := moduleRoot(dir)
		if err != nil || got != root {
			t.Errorf("moduleRoot(%s) = %q, %v; want %s", dir, got, err, root)
		}
	}
	if got, err := moduleRoot(filepath.Dir(root)); err == nil {
		t.Errorf("moduleRoot above any strata go.mod = %q, want an error", got)
	}
}
