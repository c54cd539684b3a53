//go:build !linux

package testenv

import "syscall"

// sysProcAttr has nothing to add outside Linux: children are killed by the
// t.Cleanup of the test that started them.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// setOwnGroup does nothing outside Linux: a terminal's ^C reaches the
// children too, and they stop on their own.
func setOwnGroup(*syscall.SysProcAttr) {}
