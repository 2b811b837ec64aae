package e2e

import (
	"context"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tmc-dev/tmc/pkg/localenv"
	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// TestControllerBindsNewWorkspace: a tmc-controller started without --workspaces (as the
// privileged shard admin) binds a workload workspace created after it started, as soon as
// the workspace has a Placement: its namespace is placed on the SyncTarget, the namespace's
// objects follow, and the SyncTarget lists the workspace, with no RBAC created in the new
// workspace and the same controller process throughout.
func TestControllerBindsNewWorkspace(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const newWS = "root:org:team-new"
	env := localenv.StartForTest(t, localenv.Options{
		Workspaces:       []string{locationWS},
		PhysicalClusters: []localenv.PhysicalClusterOptions{{Name: "east"}},
		Users:            []string{"syncer-east"},
	})
	if err := localenv.InstallCRDs(ctx, env.Workspace(locationWS).AdminConfig()); err != nil {
		t.Fatal(err)
	}
	loc := tmcClient(t, env.Workspace(locationWS).AdminConfig())
	if _, err := loc.SchedulingV1alpha1().Locations().Create(ctx, &schedulingv1alpha1.Location{
		ObjectMeta: metav1.ObjectMeta{Name: "everywhere"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := loc.WorkloadV1alpha1().SyncTargets().Create(ctx, &workloadv1alpha1.SyncTarget{
		ObjectMeta: metav1.ObjectMeta{Name: "east"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.GrantSyncer(ctx, localenv.SyncerGrant{User: "syncer-east", SyncTargetName: "east", LocationWorkspace: locationWS, Cluster: "east"}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.StartSyncer(ctx, localenv.SyncerOptions{
		Binary:              filepath.Join(binDir, "workload-syncer"),
		User:                "syncer-east",
		Cluster:             "east",
		SyncTargetWorkspace: locationWS,
		SyncTargetName:      "east",
		SyncTargetUID:       string(st.UID),
		HeartbeatInterval:   2 * time.Second,
		QPS:                 -1,
		Verbosity:           2,
	}); err != nil {
		t.Fatal(err)
	}
	// No User, no Workspaces: the shard admin, discovering workspaces; no GrantController.
	controller, err := env.StartController(ctx, localenv.ControllerOptions{
		Binary:             filepath.Join(binDir, "tmc-controller"),
		LocationWorkspaces: []string{locationWS},
		HeartbeatThreshold: 10 * time.Second,
		QPS:                -1,
		Verbosity:          2,
		ReadyTimeout:       60 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	pid := controller.Pid()
	stKey := workloadv1alpha1.ToSyncTargetKey(env.Workspace(locationWS).Name, "east")
	eventually(t, 60*time.Second, "SyncTarget east Ready", func(ctx context.Context) (bool, error) {
		st, err := loc.WorkloadV1alpha1().SyncTargets().Get(ctx, "east", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range st.Status.Conditions {
			if c.Type == workloadv1alpha1.SyncTargetReady && c.Status == metav1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})

	// The new workspace, created after everything runs.
	ws, err := env.AddWorkspace(ctx, newWS)
	if err != nil {
		t.Fatal(err)
	}
	if err := localenv.InstallCRDs(ctx, ws.AdminConfig()); err != nil {
		t.Fatal(err)
	}
	upstreamKube := kubeClient(t, ws.AdminConfig())
	rbacBefore := rbacNames(ctx, t, ws)
	if _, err := tmcClient(t, ws.AdminConfig()).SchedulingV1alpha1().Placements().Create(ctx, &schedulingv1alpha1.Placement{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: schedulingv1alpha1.PlacementSpec{
			LocationWorkspace: locationWS,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tmc.dev/placed": "true"}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := upstreamKube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"tmc.dev/placed": "true"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := upstreamKube.CoreV1().ConfigMaps("web").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings"},
		Data:       map[string]string{"k": "v"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	stateLabel := workloadv1alpha1.ClusterResourceStateLabel(stKey)
	eventually(t, 90*time.Second, "the new workspace's namespace and ConfigMap placed on east", func(ctx context.Context) (bool, error) {
		ns, err := upstreamKube.CoreV1().Namespaces().Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		cm, err := upstreamKube.CoreV1().ConfigMaps("web").Get(ctx, "settings", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return ns.Labels[stateLabel] == workloadv1alpha1.ResourceStateSync && cm.Labels[stateLabel] == workloadv1alpha1.ResourceStateSync, nil
	})
	eventually(t, 60*time.Second, "SyncTarget east to list the new workspace", func(ctx context.Context) (bool, error) {
		st, err := loc.WorkloadV1alpha1().SyncTargets().Get(ctx, "east", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, w := range st.Status.Workspaces {
			if w.Path == ws.Name {
				return true, nil
			}
		}
		t.Logf("status.workspaces = %v, waiting for %s (the logical-cluster name of %s)", st.Status.Workspaces, ws.Name, newWS)
		return false, nil
	})

	if got := controller.Pid(); got != pid || !controller.Running() {
		t.Errorf("tmc-controller pid %d (running %v), want the same process %d throughout", got, controller.Running(), pid)
	}
	if after := rbacNames(ctx, t, ws); !slices.Equal(after, rbacBefore) {
		t.Errorf("RBAC in the new workspace changed: before %v, after %v; binding must need none", rbacBefore, after)
	}
}

// rbacNames lists, sorted, the ClusterRoles, ClusterRoleBindings, Roles and RoleBindings of
// a workspace.
func rbacNames(ctx context.Context, t *testing.T, ws *localenv.Workspace) []string {
	t.Helper()
	rbac := kubeClient(t, ws.AdminConfig()).RbacV1()
	var out []string
	crs, err := rbac.ClusterRoles().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range crs.Items {
		out = append(out, "clusterrole/"+o.Name)
	}
	crbs, err := rbac.ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range crbs.Items {
		out = append(out, "clusterrolebinding/"+o.Name)
	}
	roles, err := rbac.Roles("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range roles.Items {
		out = append(out, "role/"+o.Namespace+"/"+o.Name)
	}
	rbs, err := rbac.RoleBindings("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range rbs.Items {
		out = append(out, "rolebinding/"+o.Namespace+"/"+o.Name)
	}
	sort.Strings(out)
	return out
}
