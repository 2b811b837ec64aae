package localenv

import "syscall"

func checkPlatform() error { return nil }

// sysProcAttr puts a process in its own process group, so that signals reach the helpers it
// starts, and SIGKILLs it if the process that started it dies first, so that nothing
// outlives a crashed test or a killed `dev serve`.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends SIGTERM, or SIGKILL when kill, to the process group led by pid.
func signalGroup(pid int, kill bool) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(-pid, sig)
}
