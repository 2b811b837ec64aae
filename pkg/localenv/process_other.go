//go:build !linux

package localenv

import "syscall"

// checkPlatform refuses to start processes: without a parent-death signal a crashed caller
// would leave servers running.
func checkPlatform() error { return ErrNeedsLinux }

func sysProcAttr() *syscall.SysProcAttr { return nil }

// signalGroup is never reached: no process starts on this system.
func signalGroup(int, bool) {}
