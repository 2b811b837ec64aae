package integration

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/tmc-dev/tmc/pkg/localenv"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/synctarget"
	"github.com/tmc-dev/tmc/pkg/workspaces"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
)

// TestVirtualWorkspacesController runs the status.virtualWorkspaces controller against a
// real apiserver: it writes one syncer view per server URL in order, from the logical
// cluster the apiserver stamps on the SyncTarget, removes entries it did not write, leaves
// the other status fields alone, and removes the field when given no URL.
func TestVirtualWorkspacesController(t *testing.T) {
	ctx := t.Context()
	const locationWS = "root:org:locations"
	env := localenv.StartForTest(t, localenv.Options{Workspaces: []string{locationWS}, NoWorkspaceControllers: true})
	loc := env.Workspace(locationWS)
	if err := localenv.InstallCRDs(ctx, loc.AdminConfig()); err != nil {
		t.Fatal(err)
	}
	locTMC, err := tmcclient.NewForConfig(loc.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	st, err := locTMC.WorkloadV1alpha1().SyncTargets().Create(ctx, &workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{Name: "east"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	heartbeat := metav1.NewTime(time.Now().Truncate(time.Second))
	st.Status.LastSyncerHeartbeatTime = &heartbeat
	if _, err := locTMC.WorkloadV1alpha1().SyncTargets().UpdateStatus(ctx, st, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	servers := []string{"https://vw-2.example.com:6444", "https://vw-1.example.com:6444"}
	want := []workloadv1alpha1.VirtualWorkspace{
		{SyncerURL: workloadv1alpha1.SyncerVirtualWorkspaceURL(servers[0], loc.Name, "east", st.UID),
			UpsyncerURL: workloadv1alpha1.UpsyncerVirtualWorkspaceURL(servers[0], loc.Name, "east", st.UID)},
		{SyncerURL: workloadv1alpha1.SyncerVirtualWorkspaceURL(servers[1], loc.Name, "east", st.UID),
			UpsyncerURL: workloadv1alpha1.UpsyncerVirtualWorkspaceURL(servers[1], loc.Name, "east", st.UID)},
	}
	stop := runVirtualWorkspacesController(t, env, locationWS, servers)
	got := waitForVirtualWorkspaces(t, locTMC, want)
	if got.Status.LastSyncerHeartbeatTime == nil || !got.Status.LastSyncerHeartbeatTime.Equal(&heartbeat) {
		t.Errorf("the heartbeat was changed: %v, want %v", got.Status.LastSyncerHeartbeatTime, heartbeat)
	}
	if !managedBy(got, synctarget.VirtualWorkspacesFieldManager) {
		t.Errorf("no managedFields entry of %s on the status: %+v", synctarget.VirtualWorkspacesFieldManager, got.ManagedFields)
	}

	// An entry somebody else added goes.
	foreign := got.DeepCopy()
	foreign.Status.VirtualWorkspaces = append(foreign.Status.VirtualWorkspaces, workloadv1alpha1.VirtualWorkspace{SyncerURL: "https://stale.example.com/services/syncer/x/east/y"})
	if _, err := locTMC.WorkloadV1alpha1().SyncTargets().UpdateStatus(ctx, foreign, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitForVirtualWorkspaces(t, locTMC, want)
	stop()

	// Without a server URL the field is removed.
	stop = runVirtualWorkspacesController(t, env, locationWS, nil)
	defer stop()
	got = waitForVirtualWorkspaces(t, locTMC, nil)
	if got.Status.LastSyncerHeartbeatTime == nil {
		t.Error("removing the field removed the heartbeat")
	}
}

// runVirtualWorkspacesController runs the controller over the location workspace with its
// own informers until the returned function is called.
func runVirtualWorkspacesController(t *testing.T, env *localenv.Environment, locationWS string, servers []string) func() {
	t.Helper()
	set, err := workspaces.NewSet(env.FrontProxy.BaseConfig(localenv.AdminUser), []string{locationWS}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := synctarget.NewVirtualWorkspacesController(set, servers, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ws := set.Location[locationWS]
	ws.Start(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(ctx, 1) })
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); wg.Wait(); ws.Shutdown() }) }
	t.Cleanup(stop)
	return stop
}

func waitForVirtualWorkspaces(t *testing.T, client tmcclient.Interface, want []workloadv1alpha1.VirtualWorkspace) *workloadv1alpha1.SyncTarget {
	t.Helper()
	var last *workloadv1alpha1.SyncTarget
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		st, err := client.WorkloadV1alpha1().SyncTargets().Get(ctx, "east", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = st
		return slices.Equal(st.Status.VirtualWorkspaces, want), nil
	})
	if err != nil {
		var got any
		if last != nil {
			got = last.Status.VirtualWorkspaces
		}
		t.Fatalf("status.virtualWorkspaces = %v, want %v: %v", got, want, err)
	}
	return last
}

func managedBy(st *workloadv1alpha1.SyncTarget, manager string) bool {
	for _, m := range st.ManagedFields {
		if m.Manager == manager && m.Subresource == "status" {
			return true
		}
	}
	return false
}
