package testenv

import "syscall"

// sysProcAttr makes the kernel kill a child when the test process dies (a
// panic, a -timeout, a ^C), so no broker outlives its test holding ports and
// data. Pdeathsig fires when the thread that forked the child exits; the Go
// runtime ends threads only for goroutines that exit while locked with
// runtime.LockOSThread, which nothing starting processes here does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// setOwnGroup makes the child the leader of a new process group.
func setOwnGroup(attr *syscall.SysProcAttr) { attr.Setpgid = true }
