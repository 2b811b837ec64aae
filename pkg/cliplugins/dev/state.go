package dev

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// phase is the lifecycle phase of a local environment, as recorded in state.json.
type phase string

const (
	phaseStarting phase = "Starting"
	phaseReady    phase = "Ready"
	phaseFailed   phase = "Failed"
	phaseStopping phase = "Stopping"
	phaseStopped  phase = "Stopped"
)

// state is what `dev serve` records in <dir>/state.json, and all `up`, `status` and `down`
// know about a running environment.
type state struct {
	Phase phase `json:"phase"`
	// Message is the current set-up step while Starting.
	Message string `json:"message,omitempty"`
	// Error says why set-up failed.
	Error string `json:"error,omitempty"`
	// PID is the pid of `dev serve`, which also serves the front proxy.
	PID int    `json:"pid"`
	Dir string `json:"dir"`
	// LogDir holds the log of every process.
	LogDir            string `json:"logDir,omitempty"`
	LocationWorkspace string `json:"locationWorkspace,omitempty"`
	WorkloadWorkspace string `json:"workloadWorkspace,omitempty"`
	// VirtualWorkspaceURL is the virtual-workspace server's URL (kubectl tmc logs|exec|port-forward).
	VirtualWorkspaceURL string        `json:"virtualWorkspaceURL,omitempty"`
	Kubeconfigs         []kubeconfig  `json:"kubeconfigs,omitempty"`
	Processes           []processInfo `json:"processes,omitempty"`
	Demo                *demoApp      `json:"demo,omitempty"`
	StartedAt           time.Time     `json:"startedAt"`
	// ReadyAfterSeconds is how long set-up took.
	ReadyAfterSeconds float64 `json:"readyAfterSeconds,omitempty"`
}

// kubeconfig is one admin kubeconfig the environment wrote.
type kubeconfig struct {
	// Name is "location", "workload" or a physical cluster's name.
	Name string `json:"name"`
	Path string `json:"path"`
	// Description says what it reaches, e.g. "workload workspace root:tmc:demo".
	Description string `json:"description"`
}

// processInfo is one process of the environment.
type processInfo struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	// URL is where it serves, when that is useful to know (front proxy, /metrics).
	URL string `json:"url,omitempty"`
}

// demoApp says where the sample app lives and where it was placed.
type demoApp struct {
	Namespace  string `json:"namespace"`
	Deployment string `json:"deployment"`
	// SyncTarget is the target the namespace was placed on, DownstreamNamespace its
	// namespace on that physical cluster.
	SyncTarget          string `json:"syncTarget,omitempty"`
	DownstreamNamespace string `json:"downstreamNamespace,omitempty"`
}

const stateFileName = "state.json"

func statePath(dir string) string { return filepath.Join(dir, stateFileName) }

// readState reads <dir>/state.json; it returns (nil, nil) when there is none.
func readState(dir string) (*state, error) {
	b, err := os.ReadFile(statePath(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", statePath(dir), err)
	}
	s := &state{}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("failed to parse %s: %w", statePath(dir), err)
	}
	return s, nil
}

// writeState replaces <dir>/state.json atomically (temporary file, then rename), so that a
// reader never sees a half-written file.
func writeState(dir string, s *state) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("failed to encode state: %w", err)
	}
	tmp, err := os.CreateTemp(dir, stateFileName+".tmp-*")
	if err != nil {
		return fmt.Errorf("failed to write state: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("failed to write state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("failed to write state: %w", err)
	}
	if err := os.Rename(tmp.Name(), statePath(dir)); err != nil {
		return fmt.Errorf("failed to write state: %w", err)
	}
	return nil
}

// removeState deletes <dir>/state.json if it exists.
func removeState(dir string) error {
	if err := os.Remove(statePath(dir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("failed to remove %s: %w", statePath(dir), err)
	}
	return nil
}

// procFS is where process information is read from; tests point it elsewhere.
var procFS = "/proc"

// alive reports whether pid is a live process of the environment in dir: it exists, is not
// a zombie and, where /proc can tell, its command line mentions dir, so that a recycled pid
// is never taken for (or killed as) one of ours.
func alive(pid int, dir string) bool {
	if pid <= 0 {
		return false
	}
	if !processExists(pid) {
		return false
	}
	stat, err := os.ReadFile(filepath.Join(procFS, strconv.Itoa(pid), "stat"))
	if err != nil {
		// No /proc (or the process just went): trust kill(2).
		return !errors.Is(err, fs.ErrNotExist) || !procAvailable()
	}
	// The state is the field after the parenthesised command name.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 {
		if f := strings.Fields(string(stat[i+1:])); len(f) > 0 && (f[0] == "Z" || f[0] == "X") {
			return false
		}
	}
	cmdline, err := os.ReadFile(filepath.Join(procFS, strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return !errors.Is(err, fs.ErrNotExist)
	}
	return dir == "" || mentionsDir(string(cmdline), dir)
}

// mentionsDir reports whether a NUL-separated command line names dir or a path inside it.
func mentionsDir(cmdline, dir string) bool {
	dir = strings.TrimRight(dir, "/")
	for _, arg := range strings.Split(cmdline, "\x00") {
		if i := strings.IndexByte(arg, '='); i >= 0 && strings.HasPrefix(arg, "-") {
			arg = arg[i+1:]
		}
		if arg == dir || strings.HasPrefix(arg, dir+"/") {
			return true
		}
	}
	return false
}

func procAvailable() bool {
	_, err := os.Stat(filepath.Join(procFS, "self"))
	return err == nil
}

// serverBinaries are the programs an environment runs; leftovers are looked for by these
// names only, so that an editor or `tail -f` on a log in the directory is never touched.
var serverBinaries = map[string]bool{
	"etcd": true, "kube-apiserver": true, "kube-controller-manager": true, "kube-scheduler": true,
	"kwok": true, "workload-syncer": true, "tmc-controller": true,
}

// leftoverProcesses returns the processes running one of the environment's programs with
// dir in their command line (pid -> command line).
func leftoverProcesses(dir string) map[int]string {
	out := map[int]string{}
	entries, err := os.ReadDir(procFS)
	if err != nil {
		return out
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procFS, e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if !serverBinaries[filepath.Base(args[0])] || !mentionsDir(string(b), dir) {
			continue
		}
		if alive(pid, dir) {
			out[pid] = strings.Join(args, " ")
		}
	}
	return out
}
