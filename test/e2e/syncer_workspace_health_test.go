package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tmc-dev/tmc/pkg/localenv"
	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// TestSyncerWorkspaceWithoutRBAC is acceptance 5 of issue 11: two workload workspaces are
// placed on one SyncTarget, but the syncer has its RBAC in only one. The SyncTarget stays
// Ready (the controller runs with a short grace period, so a NotReady target would be
// evicted from), the good workspace keeps syncing, and the broken one shows in
// status.workspaceHealth with its reason.
func TestSyncerWorkspaceWithoutRBAC(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	env := localenv.StartForTest(t, localenv.Options{
		Workspaces:       []string{locationWS, wsA, wsB},
		PhysicalClusters: []localenv.PhysicalClusterOptions{{Name: clusterName}},
		Users:            []string{syncerUser, controllerUser},
	})
	for _, ws := range []string{locationWS, wsA, wsB} {
		if err := localenv.InstallCRDs(ctx, env.Workspace(ws).AdminConfig()); err != nil {
			t.Fatal(err)
		}
	}
	loc := tmcClient(t, env.Workspace(locationWS).AdminConfig())
	if _, err := loc.SchedulingV1alpha1().Locations().Create(ctx, &schedulingv1alpha1.Location{ObjectMeta: metav1.ObjectMeta{Name: "everywhere"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := loc.WorkloadV1alpha1().SyncTargets().Create(ctx, &workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{Name: clusterName}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The syncer's RBAC in team-a only: team-b's admin forgot it.
	if err := env.GrantSyncer(ctx, localenv.SyncerGrant{
		User: syncerUser, SyncTargetName: clusterName, LocationWorkspace: locationWS,
		WorkloadWorkspaces: []string{wsA}, Cluster: clusterName,
	}); err != nil {
		t.Fatal(err)
	}
	if err := env.GrantController(ctx, controllerUser, locationWS, wsA, wsB); err != nil {
		t.Fatal(err)
	}
	if _, err := env.StartSyncer(ctx, localenv.SyncerOptions{
		Binary: filepath.Join(binDir, "workload-syncer"), User: syncerUser, Cluster: clusterName,
		SyncTargetWorkspace: locationWS, SyncTargetName: clusterName, SyncTargetUID: string(st.UID),
		HeartbeatInterval: 2 * time.Second, DiscoveryInterval: 5 * time.Second, QPS: -1, Verbosity: 2,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.StartController(ctx, localenv.ControllerOptions{
		Binary: filepath.Join(binDir, "tmc-controller"), User: controllerUser,
		LocationWorkspaces: []string{locationWS}, Workspaces: []string{wsA, wsB},
		HeartbeatThreshold: 10 * time.Second, UnhealthyGracePeriod: 10 * time.Second,
		QPS: -1, Verbosity: 2, ReadyTimeout: 60 * time.Second,
	}); err != nil {
		t.Fatal(err)
	}

	placed := map[string]string{"tmc.dev/placed": "true"}
	stKey := workloadv1alpha1.ToSyncTargetKey(env.Workspace(locationWS).Name, clusterName)
	for _, ws := range []string{wsA, wsB} {
		if _, err := tmcClient(t, env.Workspace(ws).AdminConfig()).SchedulingV1alpha1().Placements().Create(ctx, &schedulingv1alpha1.Placement{
			ObjectMeta: metav1.ObjectMeta{Name: "apps"},
			Spec:       schedulingv1alpha1.PlacementSpec{LocationWorkspace: locationWS, NamespaceSelector: &metav1.LabelSelector{MatchLabels: placed}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		up := kubeClient(t, env.Workspace(ws).AdminConfig())
		createNamespace(t, up, "app", placed)
		if _, err := up.CoreV1().ConfigMaps("app").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"workspace": ws}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	down := kubeClient(t, env.Cluster(clusterName).AdminConfig())
	downstreamNS := func(ws string) string {
		name, err := workloadv1alpha1.NewNamespaceLocator(env.Workspace(locationWS).Name, clusterName, st.UID, env.Workspace(ws).Name, "app").DownstreamNamespaceName()
		if err != nil {
			t.Fatal(err)
		}
		return name
	}
	eventually(t, 90*time.Second, "team-a's ConfigMap did not reach the physical cluster", func(ctx context.Context) (bool, error) {
		cm, err := down.CoreV1().ConfigMaps(downstreamNS(wsA)).Get(ctx, "settings", metav1.GetOptions{})
		return err == nil && cm.Data["workspace"] == wsA, nil
	})

	sts := loc.WorkloadV1alpha1().SyncTargets()
	var health []workloadv1alpha1.WorkspaceHealth
	localenv.Eventually(t, 500*time.Millisecond, 60*time.Second, "team-b did not show as Forbidden in status.workspaceHealth", func(ctx context.Context) (bool, string, error) {
		st, err := sts.Get(ctx, clusterName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		health = st.Status.WorkspaceHealth
		byPath := map[string]workloadv1alpha1.WorkspaceHealth{}
		for _, h := range health {
			byPath[h.Path] = h
		}
		a, b := byPath[wsA], byPath[wsB]
		return a.Ready && !b.Ready && b.Reason == workloadv1alpha1.WorkspaceForbidden, fmt.Sprintf("%+v", health), nil
	})
	t.Logf("workspaceHealth: %+v", health)

	// Sampled over longer than threshold + grace: the target stays Ready, team-b's namespace
	// stays placed on it, team-a keeps syncing.
	readySamples := 0
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		st, err := sts.Get(ctx, clusterName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{workloadv1alpha1.SyncTargetReady, workloadv1alpha1.SyncTargetSyncerReady} {
			if !meta.IsStatusConditionTrue(st.Status.Conditions, c) {
				t.Fatalf("%s is not True with one unreadable workspace: %+v", c, meta.FindStatusCondition(st.Status.Conditions, c))
			}
		}
		readySamples++
		ns, err := kubeClient(t, env.Workspace(wsB).AdminConfig()).CoreV1().Namespaces().Get(ctx, "app", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ns.Labels[workloadv1alpha1.ClusterResourceStateLabel(stKey)] != workloadv1alpha1.ResourceStateSync {
			t.Fatalf("team-b's namespace was moved off the target: labels %v", ns.Labels)
		}
		if i == 0 {
			upA := kubeClient(t, env.Workspace(wsA).AdminConfig())
			if _, err := upA.CoreV1().ConfigMaps("app").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "later"}, Data: map[string]string{"v": "1"}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second)
	}
	t.Logf("Ready and SyncerReady True in %d samples over 30s", readySamples)
	eventually(t, 30*time.Second, "a ConfigMap created in team-a later did not sync", func(ctx context.Context) (bool, error) {
		_, err := down.CoreV1().ConfigMaps(downstreamNS(wsA)).Get(ctx, "later", metav1.GetOptions{})
		return err == nil, nil
	})
	if _, err := down.CoreV1().ConfigMaps(downstreamNS(wsB)).Get(ctx, "settings", metav1.GetOptions{}); err == nil {
		t.Error("team-b's ConfigMap reached the physical cluster although the syncer may not read team-b")
	}
}
