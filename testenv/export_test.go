package testenv

import "syscall"

// SysProcAttr lets the package's external tests start children that die
// with the test process, as the processes testenv starts do.
func SysProcAttr() *syscall.SysProcAttr { return sysProcAttr() }
