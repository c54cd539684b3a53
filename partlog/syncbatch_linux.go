package partlog

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

const syncfsAvailable = true

// syncFilesystem writes back every dirty page and inode of the filesystem
// holding the directory d and waits for it (syncfs(2)), reporting the
// write-back errors since d was opened.
func syncFilesystem(d *os.File) error {
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return &os.PathError{Op: "syncfs", Path: d.Name(), Err: err}
	}
	return nil
}

func deviceOf(dir string) (uint64, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return 0, err
	}
	return uint64(st.Sys().(*syscall.Stat_t).Dev), nil
}
