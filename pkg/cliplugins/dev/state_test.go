package dev

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if st, err := readState(dir); err != nil || st != nil {
		t.Fatalf("readState of an empty directory = %v, %v; want nil, nil", st, err)
	}
	want := &state{
		Phase:       phaseReady,
		PID:         42,
		Dir:         dir,
		Kubeconfigs: []kubeconfig{{Name: "workload", Path: filepath.Join(dir, "kubeconfigs", "workload.kubeconfig"), Description: "workload workspace root:tmc:demo"}},
		Processes:   []processInfo{{Name: "etcd", PID: 43}},
		Demo:        &demoApp{Namespace: "demo", Deployment: "hello", SyncTarget: "east", DownstreamNamespace: "kcp-abc"},
		StartedAt:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	for range 2 { // the second write replaces the first
		if err := writeState(dir, want); err != nil {
			t.Fatal(err)
		}
	}
	got, err := readState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Phase != want.Phase || got.PID != want.PID || got.Demo.DownstreamNamespace != "kcp-abc" ||
		len(got.Kubeconfigs) != 1 || got.Kubeconfigs[0] != want.Kubeconfigs[0] || !got.StartedAt.Equal(want.StartedAt) {
		t.Errorf("read back %+v, wrote %+v", got, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != stateFileName {
		t.Errorf("directory holds %v; want only %s (no temporary files left)", entries, stateFileName)
	}
	if err := removeState(dir); err != nil {
		t.Fatal(err)
	}
	if err := removeState(dir); err != nil {
		t.Errorf("removing a missing state file: %v", err)
	}
}

func TestReadStateCorrupt(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(statePath(dir), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readState(dir); err == nil || !strings.Contains(err.Error(), "failed to parse") {
		t.Errorf("readState of a corrupt file: %v", err)
	}
}

func TestMentionsDir(t *testing.T) {
	const dir = "/tmp/tmc-dev"
	for _, tc := range []struct {
		cmdline string
		want    bool
	}{
		{"/cache/etcd\x00--data-dir=/tmp/tmc-dev/env/etcd\x00", true},
		{"/usr/bin/kubectl-tmc\x00dev\x00serve\x00--dir\x00/tmp/tmc-dev\x00", true},
		{"/usr/bin/kubectl-tmc\x00dev\x00serve\x00--dir=/tmp/tmc-dev/\x00", true},
		{"/tmp/tmc-dev/bin/workload-syncer\x00-v=2\x00", true},
		{"/cache/etcd\x00--data-dir=/tmp/tmc-dev2/env/etcd\x00", false},
		{"/cache/kwok\x00--kubeconfig=/elsewhere/tmp/tmc-dev/x\x00", false},
		{"", false},
	} {
		if got := mentionsDir(tc.cmdline, dir); got != tc.want {
			t.Errorf("mentionsDir(%q) = %v, want %v", tc.cmdline, got, tc.want)
		}
	}
}

// startFake starts `sleep` named as name inside dir (argv[0] <dir>/bin/<name>), the shape
// of an environment's server as /proc shows it.
func startFake(t *testing.T, dir, name string) *exec.Cmd {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	cmd := exec.Command(sleep, "300")
	cmd.Args[0] = filepath.Join(dir, "bin", name)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	// Start returns once the kernel has switched the child to the new program, which can be
	// a moment before its command line is readable in /proc: wait for the shape callers test.
	cmdline := filepath.Join(procFS, strconv.Itoa(cmd.Process.Pid), "cmdline")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(cmdline); err == nil && mentionsDir(string(b), dir) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fake %s never showed its command line in %s", name, cmdline)
		}
	}
	return cmd
}

func TestAlive(t *testing.T) {
	dir := t.TempDir()
	if !alive(os.Getpid(), "") {
		t.Error("this process is not alive")
	}
	if alive(os.Getpid(), dir) {
		t.Error("this process does not mention the directory, yet counts as the environment's")
	}
	if alive(0, "") || alive(-1, "") {
		t.Error("pid 0 or -1 counts as alive")
	}
	fake := startFake(t, dir, "kwok")
	if !alive(fake.Process.Pid, dir) {
		t.Error("a running process naming the directory is not alive")
	}
	// A zombie (exited, not reaped) is not alive.
	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = zombie.Wait() }()
	if !waitGone(10*time.Second, "", zombie.Process.Pid) {
		t.Error("an exited, unreaped process still counts as alive")
	}
}

func TestStopEnvironmentKillsLeftovers(t *testing.T) {
	dir := t.TempDir()
	listed := startFake(t, dir, "etcd")
	unlisted := startFake(t, dir, "kube-apiserver")
	other := startFake(t, t.TempDir(), "kwok") // another environment's
	unknown := startFake(t, dir, "less")       // a pager on a log: never touched
	for _, sub := range []string{"env/logs", "kubeconfigs", "bin"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeState(dir, &state{Phase: phaseReady, PID: 999999999, Dir: dir, Processes: []processInfo{{Name: "etcd", PID: listed.Process.Pid}}}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := stopEnvironment(dir, false, &out, false); err != nil {
		t.Fatalf("stopEnvironment: %v\n%s", err, out.String())
	}
	for _, c := range []*exec.Cmd{listed, unlisted} {
		if alive(c.Process.Pid, dir) {
			t.Errorf("%s (pid %d) survived", c.Args[0], c.Process.Pid)
		}
		if !strings.Contains(out.String(), "Killed leftover process") {
			t.Errorf("leftovers not reported:\n%s", out.String())
		}
	}
	for _, c := range []*exec.Cmd{other, unknown} {
		if !alive(c.Process.Pid, "") {
			t.Errorf("%s (pid %d) was killed but is not the environment's server", c.Args[0], c.Process.Pid)
		}
	}
	for _, sub := range []string{"env", "kubeconfigs", stateFileName} {
		if _, err := os.Stat(filepath.Join(dir, sub)); err == nil {
			t.Errorf("%s was not removed", sub)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "bin")); err != nil {
		t.Errorf("the binaries were removed: %v", err)
	}

	out.Reset()
	if err := stopEnvironment(dir, false, &out, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Nothing running") {
		t.Errorf("second down said %q", out.String())
	}
}

func TestStopEnvironmentStopsServe(t *testing.T) {
	dir := t.TempDir()
	serve := startFake(t, dir, "kubectl-tmc")
	if err := os.MkdirAll(filepath.Join(dir, "env"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeState(dir, &state{Phase: phaseReady, PID: serve.Process.Pid, Dir: dir}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := stopEnvironment(dir, true, &out, false); err != nil {
		t.Fatal(err)
	}
	if alive(serve.Process.Pid, dir) {
		t.Error("dev serve is still running")
	}
	if !strings.Contains(out.String(), "Stopping dev serve") || !strings.Contains(out.String(), "nothing of it is left running") {
		t.Errorf("output:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "env")); err != nil {
		t.Errorf("--keep-data removed the data: %v", err)
	}
}

func TestLastRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev-serve.log")
	log := "\n===== run 1\nold line\n\n===== run 2\nnew 1\nnew 2\nnew 3\n"
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := lastRun(path, 10), "===== run 2\nnew 1\nnew 2\nnew 3"; got != want {
		t.Errorf("lastRun = %q, want %q", got, want)
	}
	if got, want := lastRun(path, 2), "new 2\nnew 3"; got != want {
		t.Errorf("lastRun(2) = %q, want %q", got, want)
	}
	if got := lastRun(filepath.Join(t.TempDir(), "missing"), 2); !strings.Contains(got, "cannot read") {
		t.Errorf("lastRun of a missing file = %q", got)
	}
}
