//go:build unix

package broker

import "syscall"

// openFileLimit is the process's limit on open files (RLIMIT_NOFILE, the
// soft one, which the Go runtime raises to the hard one at start).
func openFileLimit() (uint64, bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, false
	}
	return rl.Cur, true
}
