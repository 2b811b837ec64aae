package localenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// ErrNeedsLinux is returned when a process is started on a system other than Linux: the
// environment relies on process groups and the parent-death signal to leave nothing behind.
var ErrNeedsLinux = errors.New("the local environment needs Linux (it runs every server as a child process in its own process group, killed with its parent)")

// Process is one server or binary started by the environment. It can be stopped, killed and
// started again with the same arguments, which is how tests restart apiservers and syncers.
// Its output goes to LogPath (appended across restarts).
type Process struct {
	Name    string
	Path    string
	Args    []string
	Env     []string
	Dir     string
	LogPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
	starts  int
}

var (
	registryMu sync.Mutex
	registry   = map[*Process]bool{}
)

// NewProcess describes a process; it does not start it.
func NewProcess(name, path string, args []string, logDir string) *Process {
	return &Process{Name: name, Path: path, Args: args, LogPath: filepath.Join(logDir, name+".log")}
}

// Start starts the process. Starting a running process is an error.
func (p *Process) Start() error {
	if err := checkPlatform(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !p.exitedLocked() {
		return fmt.Errorf("%s is already running (pid %d)", p.Name, p.cmd.Process.Pid)
	}
	logFile, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("failed to open log of %s: %w", p.Name, err)
	}
	p.starts++
	_, _ = fmt.Fprintf(logFile, "\n===== %s start #%d at %s: %s %q\n", p.Name, p.starts, time.Now().Format(time.RFC3339Nano), p.Path, p.Args)
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Dir = p.Dir
	if p.Env != nil {
		cmd.Env = append(os.Environ(), p.Env...)
	}
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("failed to start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.exitErr = cmd, done, nil
	registryMu.Lock()
	registry[p] = true
	registryMu.Unlock()
	go func() {
		err := cmd.Wait()
		_ = logFile.Close()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

func (p *Process) exitedLocked() bool {
	if p.done == nil {
		return true
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Running reports whether the process is running.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !p.exitedLocked()
}

// Pid returns the pid of the running process, or 0.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.exitedLocked() {
		return 0
	}
	return p.cmd.Process.Pid
}

// Exited returns a channel closed when the current run of the process ends.
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return p.done
}

// ExitError returns how the last run ended (nil while running or after a clean exit).
func (p *Process) ExitError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// Stop sends SIGTERM to the process group, then SIGKILL after grace, and waits for the exit.
// Stopping a process that is not running is a no-op.
func (p *Process) Stop(grace time.Duration) error {
	return p.signalAndWait(false, grace)
}

// Kill sends SIGKILL to the process group and waits for the exit.
func (p *Process) Kill() error {
	return p.signalAndWait(true, 0)
}

func (p *Process) signalAndWait(kill bool, grace time.Duration) error {
	p.mu.Lock()
	if p.cmd == nil || p.exitedLocked() {
		p.mu.Unlock()
		return nil
	}
	pid, done := p.cmd.Process.Pid, p.done
	p.mu.Unlock()

	signalGroup(pid, kill)
	if !kill {
		select {
		case <-done:
		case <-time.After(grace):
			signalGroup(pid, true)
		}
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit 30s after SIGKILL", p.Name, pid)
	}
	registryMu.Lock()
	delete(registry, p)
	registryMu.Unlock()
	return nil
}

// Restart stops the process (SIGTERM, then SIGKILL after grace) and starts it again.
func (p *Process) Restart(grace time.Duration) error {
	if err := p.Stop(grace); err != nil {
		return err
	}
	return p.Start()
}

// WaitExit waits until the process exits or ctx ends.
func (p *Process) WaitExit(ctx context.Context) error {
	select {
	case <-p.Exited():
		return p.ExitError()
	case <-ctx.Done():
		return fmt.Errorf("%s did not exit: %w", p.Name, ctx.Err())
	}
}

// KillAll kills every process this package started and that is still running. Tests call
// it through TestMain (see Main) as a last line of defence against leaks.
func KillAll() error {
	registryMu.Lock()
	procs := make([]*Process, 0, len(registry))
	for p := range registry {
		procs = append(procs, p)
	}
	registryMu.Unlock()
	var errs []error
	for _, p := range procs {
		errs = append(errs, p.Kill())
	}
	return errors.Join(errs...)
}

// RunningProcesses returns the names of the processes still running.
func RunningProcesses() []string {
	registryMu.Lock()
	procs := make([]*Process, 0, len(registry))
	for p := range registry {
		procs = append(procs, p)
	}
	registryMu.Unlock()
	var names []string
	for _, p := range procs {
		if p.Running() {
			names = append(names, fmt.Sprintf("%s (pid %d)", p.Name, p.Pid()))
		}
	}
	return names
}
