//go:build !linux

package testenv

import "syscall"

// sysProcAttr has nothing to add outside Linux: children are killed by the
// t.Cleanup of the test that started them.
func sysProcAttr() *syscall.SysProcAttr { return nil }
