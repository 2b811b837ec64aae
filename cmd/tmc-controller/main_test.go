package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	logsapi "k8s.io/component-base/logs/api/v1"

	"github.com/tmc-dev/tmc/cmd/tmc-controller/options"
	"github.com/tmc-dev/tmc/pkg/cliutil"
	"github.com/tmc-dev/tmc/pkg/workspaces"
)

// validArgs are flags that pass validation, with the servers off.
func validArgs(t *testing.T) []string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:6443"}
	kc.Contexts["ctx"] = &clientcmdapi.Context{Cluster: "c"}
	kc.CurrentContext = "ctx"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return []string{
		"--upstream-kubeconfig=" + path, "--location-workspaces=root:loc", "--workspaces=root:a",
		"--metrics-bind-address=0", "--health-probe-bind-address=0",
	}
}

// fakeSet is a workspace set whose location workspace has a fake Kubernetes client.
func fakeSet() (*workspaces.Set, *fake.Clientset) {
	client := fake.NewClientset()
	loc := &workspaces.Workspace{Path: "root:loc", Kube: client}
	return &workspaces.Set{
		Location: map[string]*workspaces.Workspace{"root:loc": loc},
		Workload: map[string]*workspaces.Workspace{"root:a": {Path: "root:a", Kube: fake.NewClientset()}},
	}, client
}

// resetLogging undoes the logging configuration an earlier run applied: component-base
// applies it once per process.
func resetLogging(t *testing.T) {
	t.Helper()
	if err := logsapi.ResetForTest(nil); err != nil {
		t.Fatalf("failed to reset the logging configuration: %v", err)
	}
}

func TestRunExitCode(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		result error
		want   int
	}{
		{name: "stopped by a signal", result: nil, want: 0},
		{name: "lease lost", result: fmt.Errorf("failed to renew Lease kube-system/tmc-controller: %w", cliutil.ErrLostLeadership), want: 1},
		{name: "failed", result: errors.New("boom"), want: 1},
		{name: "invalid flags", args: []string{"--workers=0"}, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			resetLogging(t)
			got := run(append(validArgs(t), tt.args...), func(context.Context, *options.Options) error {
				called = true
				return tt.result
			})
			if got != tt.want {
				t.Errorf("exit code %d, want %d", got, tt.want)
			}
			if wantCalled := tt.args == nil; called != wantCalled {
				t.Errorf("controller run: %v, want %v", called, wantCalled)
			}
		})
	}
}

func TestComponentElection(t *testing.T) {
	set, client := fakeSet()
	opts := options.NewOptions()
	opts.LocationWorkspaces, opts.Workspaces = []string{"root:loc"}, []string{"root:a"}
	c, err := newComponent(opts, set, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.LeaderElection != nil {
		t.Errorf("election %+v without --leader-elect", c.LeaderElection)
	}
	if c.Name != "tmc-controller" || c.MetricsBindAddress != ":8090" || c.HealthBindAddress != ":8091" || c.Metrics == nil || c.Health == nil || c.Run == nil {
		t.Errorf("component %+v not wired from the defaults", c)
	}

	opts.LeaderElect, opts.LeaderElectionNamespace, opts.LeaderElectionID = true, "tmc", "lease"
	opts.LeaseDuration, opts.RenewDeadline, opts.RetryPeriod = 30*time.Second, 20*time.Second, 3*time.Second
	c, err = newComponent(opts, set, nil)
	if err != nil {
		t.Fatal(err)
	}
	le := c.LeaderElection
	if le == nil {
		t.Fatal("no election with --leader-elect")
	}
	if le.Client != client || le.Namespace != "tmc" || le.Name != "lease" || le.Identity == "" ||
		le.LeaseDuration != 30*time.Second || le.RenewDeadline != 20*time.Second || le.RetryPeriod != 3*time.Second {
		t.Errorf("election %+v, want the first location workspace's client and the flags' Lease and durations", *le)
	}
}

// TestComponentElectionOnHub: with --hub the Lease lives in the hub, the only workspace.
func TestComponentElectionOnHub(t *testing.T) {
	client := fake.NewClientset()
	hub := &workspaces.Workspace{Path: workspaces.HubWorkspace, Kube: client}
	set := &workspaces.Set{
		Location: map[string]*workspaces.Workspace{workspaces.HubWorkspace: hub},
		Workload: map[string]*workspaces.Workspace{workspaces.HubWorkspace: hub},
	}
	opts := options.NewOptions()
	opts.Hub, opts.LeaderElect = true, true
	c, err := newComponent(opts, set, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.LeaderElection == nil || c.LeaderElection.Client != client {
		t.Errorf("election %+v, want the hub's client", c.LeaderElection)
	}
}

// TestRunLostLeaseExitsNonZero runs the command with leader election on a fake location
// workspace, the controllers replaced by a function waiting for its context, and makes the
// Lease renewals fail: the process's exit code must be 1.
func TestRunLostLeaseExitsNonZero(t *testing.T) {
	set, client := fakeSet()
	var lost atomic.Bool
	client.PrependReactor("*", "leases", func(clienttesting.Action) (bool, runtime.Object, error) {
		if lost.Load() {
			return true, nil, apierrors.NewServiceUnavailable("location workspace unreachable")
		}
		return false, nil, nil
	})
	leading := make(chan struct{})
	runController := func(ctx context.Context, opts *options.Options) error {
		c, err := newComponent(opts, set, nil)
		if err != nil {
			return err
		}
		c.Run = func(ctx context.Context) error {
			close(leading)
			<-ctx.Done()
			return nil
		}
		return cliutil.RunComponent(ctx, c)
	}
	args := append(validArgs(t), "--leader-elect",
		"--leader-elect-lease-duration=1s", "--leader-elect-renew-deadline=500ms", "--leader-elect-retry-period=100ms")
	exit := make(chan int, 1)
	resetLogging(t)
	go func() { exit <- run(args, runController) }()

	select {
	case <-leading:
	case <-time.After(20 * time.Second):
		t.Fatal("the controller never led")
	}
	lost.Store(true)
	select {
	case code := <-exit:
		if code != 1 {
			t.Errorf("exit code %d after losing the Lease, want 1", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the controller kept running after losing the Lease")
	}
}
