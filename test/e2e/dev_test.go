package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// devState is the part of <dir>/state.json this test reads.
type devState struct {
	Phase               string       `json:"phase"`
	PID                 int          `json:"pid"`
	Processes           []devProcess `json:"processes"`
	LocationWorkspace   string       `json:"locationWorkspace"`
	VirtualWorkspaceURL string       `json:"virtualWorkspaceURL"`
	Demo                *struct {
		SyncTarget string `json:"syncTarget"`
	} `json:"demo"`
}

type devProcess struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
}

// devPrograms are the programs a local environment runs.
var devPrograms = map[string]bool{
	"etcd": true, "kube-apiserver": true, "kube-controller-manager": true, "kube-scheduler": true,
	"kwok": true, "workload-syncer": true, "tmc-controller": true, "tmc-virtual-workspaces": true, "kubectl-tmc": true,
}

// TestDevUpStatusDown runs the README's local environment as a user would: `kubectl tmc dev
// up` (test servers already built), the sample app ready upstream, `dev status`, `dev down`,
// and nothing left running.
func TestDevUpStatusDown(t *testing.T) {
	root, err := localenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	plugin := filepath.Join(t.TempDir(), "kubectl-tmc")
	build := exec.Command("go", "build", "-o", plugin, "./cmd/kubectl-tmc")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("failed to build kubectl-tmc: %v\n%s", err, out)
	}
	dir := t.TempDir()
	// The TMC binaries TestMain built, so that dev up's go build finds them up to date.
	for _, name := range []string{"workload-syncer", "tmc-controller", "tmc-virtual-workspaces"} {
		copyFile(t, filepath.Join(binDir, name), filepath.Join(dir, "bin", name))
	}
	run := func(timeout time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, plugin, args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		t.Logf("$ kubectl tmc %s\n%s", strings.Join(args, " "), out)
		return string(out), err
	}
	t.Cleanup(func() {
		// Stops everything even if the test failed half-way; keeps the logs to print.
		if _, err := run(2*time.Minute, "dev", "down", "--dir", dir, "--keep-data"); err != nil {
			t.Errorf("dev down in clean-up: %v", err)
		}
		if t.Failed() {
			printDevLogs(t, dir)
		}
	})

	began := time.Now()
	out, err := run(6*time.Minute, "dev", "up", "--dir", dir, "--timeout", "4m")
	if err != nil {
		t.Fatalf("dev up failed: %v", err)
	}
	t.Logf("dev up took %s", time.Since(began).Round(100*time.Millisecond))
	kubeconfigs := map[string]string{}
	for _, name := range []string{"location", "workload", "east", "west"} {
		kubeconfigs[name] = filepath.Join(dir, "kubeconfigs", name+".kubeconfig")
		if !strings.Contains(out, "KUBECONFIG="+kubeconfigs[name]) {
			t.Errorf("dev up did not print the %s kubeconfig %s", name, kubeconfigs[name])
		}
	}
	st := readDevState(t, dir)
	if st.Phase != "Ready" || len(st.Processes) == 0 {
		t.Fatalf("state.json: phase %s with %d processes", st.Phase, len(st.Processes))
	}

	// The sample app, as the user sees it upstream, and its copy on a physical cluster.
	ctx := t.Context()
	upstream := kubeClient(t, devConfig(t, kubeconfigs["workload"]))
	d, err := upstream.AppsV1().Deployments("demo").Get(ctx, "hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status.ReadyReplicas != 2 {
		t.Errorf("upstream Deployment demo/hello has %d ready replicas, want 2", d.Status.ReadyReplicas)
	}
	downstreamReady := int32(0)
	for _, cluster := range []string{"east", "west"} {
		list, err := kubeClient(t, devConfig(t, kubeconfigs[cluster])).AppsV1().Deployments("").List(ctx, metav1.ListOptions{LabelSelector: workloadv1alpha1.InternalDownstreamClusterLabel})
		if err != nil {
			t.Fatal(err)
		}
		for _, dd := range list.Items {
			if dd.Name == "hello" {
				downstreamReady += dd.Status.ReadyReplicas
			}
		}
	}
	if downstreamReady != 2 {
		t.Errorf("downstream copies of hello have %d ready replicas, want 2", downstreamReady)
	}

	out, err = run(time.Minute, "dev", "status", "--dir", dir)
	if err != nil {
		t.Errorf("dev status failed: %v", err)
	}
	for _, want := range []string{"Phase:       Ready", "2/2 ready upstream"} {
		if !strings.Contains(out, want) {
			t.Errorf("dev status does not show %q", want)
		}
	}

	// What a user runs next: the SyncTargets, and the preview of the app's Deployment.
	out, err = run(time.Minute, "workload", "status", "--kubeconfig", kubeconfigs["location"])
	if err != nil {
		t.Errorf("workload status failed: %v", err)
	}
	for _, want := range []string{"NAME", "READY", "east", "west", "True"} {
		if !strings.Contains(out, want) {
			t.Errorf("workload status does not show %q", want)
		}
	}
	if st.Demo == nil || st.Demo.SyncTarget == "" {
		t.Fatalf("state.json does not name the SyncTarget of the demo app")
	}
	// The pods of the app, as the summary suggests: their log through the control plane.
	eventually(t, 60*time.Second, "kubectl tmc logs deploy/hello of the sample app", func(context.Context) (bool, error) {
		out, err := run(30*time.Second, "logs", "deploy/hello", "-n", "demo", "--tail=1",
			"--kubeconfig", kubeconfigs["workload"], "--virtual-workspace-url", st.VirtualWorkspaceURL)
		return err == nil && strings.Contains(out, "tmc:"), nil
	})
	out, err = run(time.Minute, "workload", "preview", "deployment/hello", "-n", "demo",
		"--target", st.Demo.SyncTarget, "--location-workspace", st.LocationWorkspace,
		"--kubeconfig", kubeconfigs["workload"], "--downstream-kubeconfig", kubeconfigs[st.Demo.SyncTarget])
	if err != nil {
		t.Errorf("workload preview failed: %v", err)
	}
	for _, want := range []string{"kind: Deployment", "internal.workload.kcp.io/cluster", "Verdict: up to date"} {
		if !strings.Contains(out, want) {
			t.Errorf("workload preview does not show %q", want)
		}
	}

	if _, err := run(2*time.Minute, "dev", "down", "--dir", dir); err != nil {
		t.Fatalf("dev down failed: %v", err)
	}
	for _, p := range append(st.Processes, devProcess{Name: "dev serve", PID: st.PID}) {
		if processAlive(p.PID) {
			t.Errorf("%s (pid %d) is still running after dev down", p.Name, p.PID)
		}
	}
	for pid, cmdline := range devProcesses(dir) {
		t.Errorf("process %d is still running after dev down: %s", pid, cmdline)
	}
	if _, err := os.Stat(filepath.Join(dir, "state.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state.json is still there after dev down: %v", err)
	}
}

func readDevState(t *testing.T, dir string) devState {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st devState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("state.json: %v", err)
	}
	return st
}

func devConfig(t *testing.T, kubeconfig string) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// processAlive reports whether pid runs (a zombie does not count).
func processAlive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		if f := strings.Fields(s[i+1:]); len(f) > 0 && (f[0] == "Z" || f[0] == "X") {
			return false
		}
	}
	return true
}

// devProcesses returns the environment's programs still running with dir in their command
// line, found by scanning /proc.
func devProcesses(dir string) map[int]string {
	out := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		cmdline := strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
		argv0 := strings.SplitN(string(b), "\x00", 2)[0]
		if devPrograms[filepath.Base(argv0)] && strings.Contains(cmdline, dir) && processAlive(pid) {
			out[pid] = cmdline
		}
	}
	return out
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = src.Close() }()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// printDevLogs prints the end of dev serve's log and of every process log.
func printDevLogs(t *testing.T, dir string) {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	more, _ := filepath.Glob(filepath.Join(dir, "env", "logs", "*.log"))
	for _, path := range append(logs, more...) {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		t.Logf("----- last lines of %s -----\n%s", path, strings.Join(lines, "\n"))
	}
}
