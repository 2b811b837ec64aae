package dev

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func execute(t *testing.T, args ...string) (string, error) {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	cmd := NewCommand(streams)
	cmd.SetArgs(args)
	cmd.SetOut(out)
	cmd.SetErr(errOut)
	err := cmd.Execute()
	return out.String() + errOut.String(), err
}

func TestCommandTree(t *testing.T) {
	cmd := NewCommand(genericiooptions.NewTestIOStreamsDiscard())
	want := map[string]bool{"up": false, "down": false, "status": false, "serve": true}
	for _, sub := range cmd.Commands() {
		hidden, ok := want[sub.Name()]
		if !ok {
			t.Errorf("unexpected subcommand %q", sub.Name())
			continue
		}
		if sub.Hidden != hidden {
			t.Errorf("%s: hidden = %v, want %v", sub.Name(), sub.Hidden, hidden)
		}
		if f := sub.Flags().Lookup("dir"); f == nil || f.DefValue != defaultDir {
			t.Errorf("%s: --dir flag %+v, want default %q", sub.Name(), f, defaultDir)
		}
		delete(want, sub.Name())
	}
	if len(want) != 0 {
		t.Errorf("missing subcommands %v", want)
	}
	up, _, err := cmd.Find([]string{"up"})
	if err != nil {
		t.Fatal(err)
	}
	for flag, def := range map[string]string{"clusters": "2", "timeout": "5m0s"} {
		if f := up.Flags().Lookup(flag); f == nil || f.DefValue != def {
			t.Errorf("up --%s: %+v, want default %s", flag, f, def)
		}
	}
}

// TestArgumentErrors: invalid arguments fail before anything is built or started.
func TestArgumentErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"up", "extra"}, "unknown command"},
		{[]string{"up", "--clusters", "3"}, "--clusters must be 1 or 2"},
		{[]string{"up", "--clusters", "0"}, "--clusters must be 1 or 2"},
		{[]string{"up", "--timeout", "0s"}, "--timeout must be positive"},
		{[]string{"up", "--dir", ""}, "--dir must not be empty"},
		{[]string{"up", "--timeout", "soon"}, "invalid argument"},
		{[]string{"down", "now"}, "unknown command"},
		{[]string{"down", "--dir", ""}, "--dir must not be empty"},
		{[]string{"status", "--dir", ""}, "--dir must not be empty"},
		{[]string{"serve", "--clusters", "5"}, "--clusters must be 1 or 2"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, err := execute(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q; output:\n%s", err, tc.want, out)
			}
		})
	}
}

func TestNothingRunning(t *testing.T) {
	dir := t.TempDir()
	out, err := execute(t, "status", "--dir", dir)
	if err != nil || !strings.Contains(out, "No environment in "+dir) {
		t.Errorf("status: %v\n%s", err, out)
	}
	out, err = execute(t, "down", "--dir", dir)
	if err != nil || !strings.Contains(out, "Nothing running in "+dir) {
		t.Errorf("down: %v\n%s", err, out)
	}
}

func TestDirFlag(t *testing.T) {
	def, err := filepath.Abs(defaultDir)
	if err != nil {
		t.Fatal(err)
	}
	if got := dirFlag(def); got != "" {
		t.Errorf("dirFlag(default) = %q, want empty", got)
	}
	if got := dirFlag("/x/y"); got != " --dir /x/y" {
		t.Errorf("dirFlag(/x/y) = %q", got)
	}
}

// sampleState is a Ready environment with fixed paths and pids, for the golden files.
func sampleState() *state {
	dir := "/home/user/tmc/.tmc-dev"
	return &state{
		Phase:               phaseReady,
		PID:                 1000,
		Dir:                 dir,
		LogDir:              dir + "/env/logs",
		LocationWorkspace:   locationWorkspace,
		WorkloadWorkspace:   workloadWorkspace,
		VirtualWorkspaceURL: "https://127.0.0.1:40003",
		Kubeconfigs: []kubeconfig{
			{Name: "location", Path: dir + "/kubeconfigs/location.kubeconfig", Description: "location workspace " + locationWorkspace},
			{Name: "workload", Path: dir + "/kubeconfigs/workload.kubeconfig", Description: "workload workspace " + workloadWorkspace},
			{Name: "east", Path: dir + "/kubeconfigs/east.kubeconfig", Description: "physical cluster east"},
		},
		Processes: []processInfo{
			{Name: "dev serve (front proxy)", PID: 1000, URL: "https://127.0.0.1:40000"},
			{Name: "etcd", PID: 1001},
			{Name: "cluster-east-apiserver", PID: 1002},
			{Name: "workload-syncer-east", PID: 1003, URL: "http://127.0.0.1:40001/metrics"},
			{Name: "tmc-controller", PID: 1004, URL: "http://127.0.0.1:40002/metrics"},
		},
		Demo:              &demoApp{Namespace: demoNamespace, Deployment: demoDeployment, SyncTarget: "east", DownstreamNamespace: "kcp-1a2b3c4d5e6f"},
		StartedAt:         time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC),
		ReadyAfterSeconds: 41.3,
	}
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update to accept):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

func TestSummaryGolden(t *testing.T) {
	var out strings.Builder
	printSummary(&out, sampleState())
	checkGolden(t, "summary.golden", out.String())
}

func TestStatusGolden(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dead    map[int]bool
		readErr error
		wantErr string
	}{
		{name: "ready"},
		{name: "degraded", dead: map[int]bool{1003: true}, wantErr: "1 of 5 processes are not running"},
		{name: "serve-gone", dead: map[int]bool{1000: true, 1001: true, 1002: true, 1003: true, 1004: true}, readErr: errors.New("connection refused"), wantErr: "dev serve is not running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := sampleState()
			dir := t.TempDir()
			st.Dir = dir
			if err := writeState(dir, st); err != nil {
				t.Fatal(err)
			}
			streams, _, out, _ := genericiooptions.NewTestIOStreams()
			o := &statusOptions{
				IOStreams: streams,
				dir:       dir,
				now:       func() time.Time { return st.StartedAt.Add(5*time.Minute + 3*time.Second) },
				alive:     func(pid int, _ string) bool { return !tc.dead[pid] },
				readReplicas: func(_ context.Context, kubeconfig, ns, name string) (int32, int32, error) {
					if kubeconfig != st.Kubeconfigs[1].Path || ns != demoNamespace || name != demoDeployment {
						t.Errorf("read %s/%s through %s", ns, name, kubeconfig)
					}
					return 2, 2, tc.readErr
				},
			}
			err := o.run(context.Background())
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error %v, want %q", err, tc.wantErr)
			}
			checkGolden(t, "status-"+tc.name+".golden", strings.ReplaceAll(out.String(), dir, "<dir>"))
		})
	}
}

func TestServePath(t *testing.T) {
	root := &cobra.Command{Use: "kubectl-tmc", Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl tmc"}}
	dev := NewCommand(genericiooptions.NewTestIOStreamsDiscard())
	root.AddCommand(dev)
	serve, _, err := root.Find([]string{"dev", "serve"})
	if err != nil {
		t.Fatal(err)
	}
	o := &upOptions{dir: t.TempDir(), clusters: 1, timeout: time.Minute}
	if err := o.complete(serve); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(o.servePath, " "); got != "dev serve" {
		t.Errorf("serve path %q, want %q", got, "dev serve")
	}
}
