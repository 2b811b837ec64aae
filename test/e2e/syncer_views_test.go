package e2e

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// setSyncerViews writes status.virtualWorkspaces of the SyncTarget.
func (se *syncerEnv) setSyncerViews(t *testing.T, urls ...string) {
	t.Helper()
	tc := tmcClient(t, se.env.Workspace(locationWS).AdminConfig())
	eventually(t, 30*time.Second, "status.virtualWorkspaces not written", func(ctx context.Context) (bool, error) {
		st, err := tc.WorkloadV1alpha1().SyncTargets().Get(ctx, clusterName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		st.Status.VirtualWorkspaces = nil
		for _, u := range urls {
			st.Status.VirtualWorkspaces = append(st.Status.VirtualWorkspaces, workloadv1alpha1.VirtualWorkspace{SyncerURL: u})
		}
		_, err = tc.WorkloadV1alpha1().SyncTargets().UpdateStatus(ctx, st, metav1.UpdateOptions{})
		return err == nil, nil
	})
}

// In virtual-workspace mode the syncer finds the workspaces from the placed namespaces of
// its views (here the front proxy's wildcard endpoint itself, as a privileged identity sees
// it), not from status.workspaces, and syncs through one wildcard watch per type.
func TestSyncerFollowsSyncerViews(t *testing.T) {
	ctx := t.Context()
	se := setupSyncerEnv(t)
	// status.workspaces names only team-a: the views must find team-b themselves.
	tc := tmcClient(t, se.env.Workspace(locationWS).AdminConfig())
	st, err := tc.WorkloadV1alpha1().SyncTargets().Get(ctx, clusterName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st.Status.Workspaces = []workloadv1alpha1.WorkspaceReference{{Path: wsA}}
	if _, err := tc.WorkloadV1alpha1().SyncTargets().UpdateStatus(ctx, st, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	se.setSyncerViews(t, se.env.FrontProxy.URL)
	admin := se.env.UpstreamConfig(localenv.AdminUser)
	syncer := se.startSyncer(t, syncerOptions{upstream: admin, args: []string{"--upstream-mode=virtual-workspace"}})

	for _, ws := range []string{wsA, wsB} {
		se.createPlacedNamespace(t, ws, "shop")
		if _, err := se.upstreamKube(t, ws).CoreV1().ConfigMaps("shop").Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "settings", Labels: se.syncLabels()}, Data: map[string]string{"workspace": ws},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	down := se.downstreamKube(t)
	for _, ws := range []string{wsA, wsB} {
		dns := se.downstreamNamespace(t, ws, "shop")
		eventually(t, 60*time.Second, "the configmap of "+ws+" did not reach "+dns, func(ctx context.Context) (bool, error) {
			cm, err := down.CoreV1().ConfigMaps(dns).Get(ctx, "settings", metav1.GetOptions{})
			return err == nil && cm.Data["workspace"] == ws, nil
		})
	}
	// One informer per accepted type for both workspaces (direct mode runs one per
	// workspace and type).
	st, err = tc.WorkloadV1alpha1().SyncTargets().Get(ctx, clusterName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := metricValue(t, syncer.MetricsURL, "syncer_informers", map[string]string{"side": "upstream"}), float64(st.Status.AcceptedResourceCount); got != want || want == 0 {
		t.Errorf("upstream informers = %v, want one per accepted type (%v)", got, want)
	}
}
