package testenv

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// toolPath is where the binary name of a tool at version lives in the
// user's cache: <cache>/strata/<tool>-<version>/<name>, where <cache> is
// $XDG_CACHE_HOME or ~/.cache on Linux. The version is in the directory name
// so a bump builds anew instead of reusing a stale binary.
func toolPath(tool, version, name string) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find the user cache directory: %w", err)
	}
	return filepath.Join(base, "strata", tool+"-"+version, name), nil
}

// cachedTool returns path if it exists, and otherwise runs build to produce
// it. build writes into a directory of its own (tmpDir, beside path) and
// returns the file it made there; cachedTool renames that into place, so a
// reader never sees a half-written binary. A lock file beside path keeps
// concurrent callers (go test runs packages in parallel processes) from
// building the same tool twice: the second waits and then finds the file.
func cachedTool(ctx context.Context, logger *slog.Logger, path string, build func(ctx context.Context, tmpDir string) (string, error)) (string, error) {
	if isFile(path) {
		return path, nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create tool cache: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(dir, ".lock"))
	if err != nil {
		return "", fmt.Errorf("lock %s: %w", dir, err)
	}
	defer unlock()
	if isFile(path) { // built by whoever held the lock before us
		return path, nil
	}
	tmpDir, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", fmt.Errorf("create build directory: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	start := time.Now()
	logger.Info("building a tool binary (once per version)", "path", path)
	// Builds take minutes for MinIO; say so where a person is watching,
	// as the strata build does.
	fmt.Fprintf(os.Stderr, "testenv: building %s (once; cached for later runs)\n", path)
	built, err := build(ctx, tmpDir)
	if err != nil {
		return "", err
	}
	if err := os.Rename(built, path); err != nil {
		return "", fmt.Errorf("install %s: %w", path, err)
	}
	fmt.Fprintf(os.Stderr, "testenv: built %s in %v\n", path, time.Since(start).Round(time.Millisecond))
	logger.Info("built a tool binary", "path", path, "took", time.Since(start))
	return path, nil
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
