package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const metricAdoptions = "syncer_adoptions_total"

// TestSyncerConflictPolicy: downstream ConfigMaps created by hand, before their upstream
// objects, in the namespace the syncer uses. The SyncTarget says AdoptIfEqual; two objects
// say otherwise by annotation. Abort → untouched, ResourceConflict Event; AdoptIfEqual and
// equal → adopted, data unchanged, Adopted Event, and synced from then on; AdoptIfEqual and
// unequal → untouched, the differing field named; Overwrite → adopted, data replaced.
func TestSyncerConflictPolicy(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	se := setupSyncerEnv(t)
	se.setConflictPolicy(t, workloadv1alpha1.ConflictPolicyAdoptIfEqual)
	sp := se.startSyncer(t, syncerOptions{})
	labels := se.syncLabels()
	up := se.upstreamKube(t, wsA)
	down := se.downstreamKube(t)

	// The syncer creates the downstream namespace for another object first.
	se.createUpstreamNamespace(t, wsA, "policies")
	if _, err := up.CoreV1().ConfigMaps("policies").Create(ctx, labelledConfigMap("first", labels, map[string]string{"n": "1"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	se.waitDownstreamConfigMap(t, wsA, "policies", "first", 60*time.Second)
	dns := se.downstreamNamespace(t, wsA, "policies")

	type object struct {
		name, policy     string // policy: the upstream annotation ("" = the SyncTarget's)
		downstream, data map[string]string
	}
	objects := []object{
		{name: "abort", policy: string(workloadv1alpha1.ConflictPolicyAbort), downstream: map[string]string{"k": "theirs"}, data: map[string]string{"k": "ours"}},
		{name: "adopt-equal", downstream: map[string]string{"k": "same"}, data: map[string]string{"k": "same"}},
		{name: "adopt-unequal", downstream: map[string]string{"k": "theirs"}, data: map[string]string{"k": "ours"}},
		{name: "overwrite", policy: string(workloadv1alpha1.ConflictPolicyOverwrite), downstream: map[string]string{"k": "theirs"}, data: map[string]string{"k": "ours"}},
	}
	pre := map[string]*corev1.ConfigMap{}
	for _, o := range objects {
		cm, err := down.CoreV1().ConfigMaps(dns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: o.name, Labels: map[string]string{"team": "ops"}},
			Data:       o.downstream,
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pre[o.name] = cm
	}
	for _, o := range objects {
		cm := labelledConfigMap(o.name, labels, o.data)
		if o.policy != "" {
			cm.Annotations = map[string]string{workloadv1alpha1.ConflictPolicyAnnotation: o.policy}
		}
		if _, err := up.CoreV1().ConfigMaps("policies").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// Adopted: labelled, our field manager, the upstream data.
	adopted := se.waitDownstreamConfigMap(t, wsA, "policies", "adopt-equal", 60*time.Second)
	expectAdopted(t, adopted, map[string]string{"k": "same"})
	overwritten := se.waitDownstreamConfigMap(t, wsA, "policies", "overwrite", 60*time.Second)
	expectAdopted(t, overwritten, map[string]string{"k": "ours"})
	for _, name := range []string{"adopt-equal", "overwrite"} {
		ev := waitEvent(t, up, "policies", name, "Adopted", 30*time.Second)
		t.Logf("%s: %s %s: %s", name, ev.Type, ev.Reason, ev.Message)
		if ev.Type != corev1.EventTypeNormal {
			t.Errorf("the Adopted Event of %s is of type %q, want %q", name, ev.Type, corev1.EventTypeNormal)
		}
	}

	// Left alone: a ResourceConflict Event each, naming the differing field for AdoptIfEqual.
	for name, wantInMessage := range map[string]string{"abort": "TMC leaves it untouched", "adopt-unequal": "data.k"} {
		ev := waitEvent(t, up, "policies", name, "ResourceConflict", 30*time.Second)
		t.Logf("%s: %s %s: %s", name, ev.Type, ev.Reason, ev.Message)
		if ev.Type != corev1.EventTypeWarning || !strings.Contains(ev.Message, wantInMessage) {
			t.Errorf("the ResourceConflict Event of %s is %s %q, want a Warning mentioning %q", name, ev.Type, ev.Message, wantInMessage)
		}
	}
	eventually(t, 30*time.Second, "the adoptions are not counted in the metrics", func(ctx context.Context) (bool, error) {
		return metricValue(t, sp.MetricsURL, metricAdoptions, map[string]string{"policy": "AdoptIfEqual"}) == 1 &&
			metricValue(t, sp.MetricsURL, metricAdoptions, map[string]string{"policy": "Overwrite"}) == 1, nil
	})

	// An adopted object is ours: an upstream change reaches it.
	if err := updateConfigMap(ctx, up, "policies", "adopt-equal", func(cm *corev1.ConfigMap) { cm.Data["k"] = "changed upstream" }); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the change of the adopted object did not reach it", func(ctx context.Context) (bool, error) {
		cm, err := down.CoreV1().ConfigMaps(dns).Get(ctx, "adopt-equal", metav1.GetOptions{})
		return err == nil && cm.Data["k"] == "changed upstream", nil
	})

	leftAlone := []func(context.Context) error{configMapUnchanged(down, pre["abort"]), configMapUnchanged(down, pre["adopt-unequal"])}
	holdFor(t, 10*time.Second, "the objects the policy does not adopt must be left alone", func(ctx context.Context) error {
		for _, check := range leftAlone {
			if err := check(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	t.Logf("metrics: %s=%v %s{policy=AdoptIfEqual}=%v %s{policy=Overwrite}=%v", metricResourceConflicts,
		metricValue(t, sp.MetricsURL, metricResourceConflicts, nil),
		metricAdoptions, metricValue(t, sp.MetricsURL, metricAdoptions, map[string]string{"policy": "AdoptIfEqual"}),
		metricAdoptions, metricValue(t, sp.MetricsURL, metricAdoptions, map[string]string{"policy": "Overwrite"}))
}

// setConflictPolicy sets the SyncTarget's spec.conflictPolicy.
func (se *syncerEnv) setConflictPolicy(t *testing.T, policy workloadv1alpha1.ConflictPolicy) {
	t.Helper()
	syncTargets := tmcClient(t, se.env.Workspace(locationWS).AdminConfig()).WorkloadV1alpha1().SyncTargets()
	st, err := syncTargets.Get(t.Context(), clusterName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st.Spec.ConflictPolicy = policy
	if _, err := syncTargets.Update(t.Context(), st, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// expectAdopted checks an adopted ConfigMap: the upstream data, the label set by hand kept,
// and the syncer's field manager among its managers.
func expectAdopted(t *testing.T, cm *corev1.ConfigMap, wantData map[string]string) {
	t.Helper()
	if !maps.Equal(cm.Data, wantData) {
		t.Errorf("adopted %s holds data %v, want %v", cm.Name, cm.Data, wantData)
	}
	if cm.Labels["team"] != "ops" {
		t.Errorf("adopted %s lost the label set by hand: %v", cm.Name, cm.Labels)
	}
	var managers []string
	for _, f := range cm.ManagedFields {
		managers = append(managers, fmt.Sprintf("%s/%s", f.Manager, f.Operation))
	}
	if !slices.Contains(managers, "tmc-workload-syncer/Apply") {
		t.Errorf("adopted %s has field managers %v, want tmc-workload-syncer/Apply among them", cm.Name, managers)
	}
}
