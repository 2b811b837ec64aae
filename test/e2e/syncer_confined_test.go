package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// TestSyncerConfinedCondition runs the real syncer binary under the RBAC and admission
// policy that `kubectl tmc workload sync` generates (localenv.GrantSyncer builds them with
// the command's syncerrbac package; test/integration/syncer_admission_test.go applies the
// command's rendered manifest itself and proves each rule of the policy). The syncer reports
// SyncerConfined=True; with the policy's binding deleted it reports False/BindingMissing,
// records a Warning Event and sets syncer_confined to 0, and keeps syncing; with the
// binding back it reports True again. Its own credential cannot write outside its
// namespaces.
func TestSyncerConfinedCondition(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	se := setupSyncerEnv(t)
	syncer := se.startSyncer(t, syncerOptions{})
	policyName := localenv.SyncerRBACName(clusterName)
	sts := tmcClient(t, se.env.Workspace(locationWS).AdminConfig()).WorkloadV1alpha1().SyncTargets()
	expectConfined := func(status metav1.ConditionStatus, reason string) {
		t.Helper()
		eventually(t, 30*time.Second, "SyncerConfined="+string(status)+" ("+reason+") was not reported", func(ctx context.Context) (bool, error) {
			st, err := sts.Get(ctx, clusterName, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			c := meta.FindStatusCondition(st.Status.Conditions, workloadv1alpha1.SyncTargetSyncerConfined)
			return c != nil && c.Status == status && c.Reason == reason, nil
		})
	}
	expectConfined(metav1.ConditionTrue, workloadv1alpha1.ReasonSyncerConfined)
	if got := metricValue(t, syncer.MetricsURL, "syncer_confined", nil); got != 1 {
		t.Errorf("syncer_confined = %v while confined, want 1", got)
	}

	// The syncer's own credential (the token user the binary runs as downstream): its RBAC
	// lets it create ConfigMaps anywhere, the policy denies it outside its namespaces.
	admin := se.downstreamKube(t)
	asSyncer := kubeClient(t, se.cluster.Config(syncerUser))
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "not-owned"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := asSyncer.CoreV1().ConfigMaps("not-owned").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "intruder"}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy '"+policyName+"'") {
		t.Fatalf("the syncer's credential created a ConfigMap in a namespace it does not own: err = %v, want a denial by %s", err, policyName)
	}

	bindings := admin.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
	binding, err := bindings.Get(ctx, policyName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := bindings.Delete(ctx, policyName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expectConfined(metav1.ConditionFalse, workloadv1alpha1.ReasonBindingMissing)
	se.expectSyncTargetEvent(t, workloadv1alpha1.ReasonBindingMissing)
	if got := metricValue(t, syncer.MetricsURL, "syncer_confined", nil); got != 0 {
		t.Errorf("syncer_confined = %v with the binding deleted, want 0", got)
	}

	// Unconfined, it keeps syncing.
	se.createUpstreamNamespace(t, wsA, "shop")
	if _, err := se.upstreamKube(t, wsA).CoreV1().ConfigMaps("shop").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings", Labels: se.syncLabels()}, Data: map[string]string{"k": "v"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	downstreamNamespace := se.downstreamNamespace(t, wsA, "shop")
	eventually(t, 60*time.Second, "the ConfigMap was not synced while the syncer was unconfined", func(ctx context.Context) (bool, error) {
		cm, err := admin.CoreV1().ConfigMaps(downstreamNamespace).Get(ctx, "settings", metav1.GetOptions{})
		return err == nil && cm.Data["k"] == "v", nil
	})

	binding.ResourceVersion, binding.UID = "", ""
	if _, err := bindings.Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expectConfined(metav1.ConditionTrue, workloadv1alpha1.ReasonSyncerConfined)
	se.expectSyncTargetEvent(t, workloadv1alpha1.ReasonSyncerConfined)
	if got := metricValue(t, syncer.MetricsURL, "syncer_confined", nil); got != 1 {
		t.Errorf("syncer_confined = %v with the binding back, want 1", got)
	}
}
