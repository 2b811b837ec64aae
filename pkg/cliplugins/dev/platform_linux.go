package dev

import (
	"errors"
	"syscall"
)

// checkPlatform reports whether the local environment can run here.
func checkPlatform() error { return nil }

// detachedSysProcAttr starts `dev serve` in its own session, so that it outlives `dev up`
// and the terminal's signals.
func detachedSysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

// terminate sends SIGTERM to pid.
func terminate(pid int) { _ = syscall.Kill(pid, syscall.SIGTERM) }

// killGroup sends SIGKILL to pid's process group when pid leads it (every process of an
// environment does), else to pid alone.
func killGroup(pid int) {
	if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// processExists reports whether pid exists (kill(2) with signal 0).
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
