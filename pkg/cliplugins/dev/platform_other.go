//go:build !linux

package dev

import (
	"fmt"
	"runtime"
	"syscall"

	"github.com/tmc-dev/tmc/pkg/localenv"
)

// checkPlatform refuses to start an environment: it needs Linux.
func checkPlatform() error {
	return fmt.Errorf("kubectl tmc dev cannot run on %s: %w; use a Linux machine or VM (the other kubectl tmc commands work here)", runtime.GOOS, localenv.ErrNeedsLinux)
}

func detachedSysProcAttr() *syscall.SysProcAttr { return nil }

// No environment ever runs here, so there is nothing to signal.
func terminate(int) {}

func killGroup(int) {}

func processExists(int) bool { return false }
