//go:build !linux

package partlog

// Without syncfs a batch defers nothing: each log syncs as it opens.
const syncfsAvailable = false

func syncFilesystem(string) error { return nil }

func deviceOf(string) (uint64, error) { return 0, nil }
