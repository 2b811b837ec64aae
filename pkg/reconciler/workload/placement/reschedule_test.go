package placement

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

var configMapsGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// placedNamespace creates namespace "app" in wsA placed by Placement p on the target with
// key, holding a Deployment "web" (2 replicas) and a ConfigMap "cfg" labelled for it.
func placedNamespace(f *fixture, key string) {
	f.t.Helper()
	_, err := f.kube[wsA].CoreV1().Namespaces().Create(f.t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app",
		Labels:      map[string]string{workloadv1alpha1.ClusterResourceStateLabel(key): "Sync"},
		Annotations: map[string]string{schedulingv1alpha1.PlacementAnnotationKey: "p"}}}, metav1.CreateOptions{})
	must(f.t, err)
	f.deployment(wsA, "app", "web", ptrInt64(2), []string{key}, nil)
	f.configMap("cfg", key)
}

func (f *fixture) configMap(name string, keys ...string) {
	f.object(wsA, configMapsGVR, "ConfigMap", "app", name, func(u *unstructured.Unstructured) {
		lbls := map[string]string{}
		for _, k := range keys {
			lbls[workloadv1alpha1.ClusterResourceStateLabel(k)] = "Sync"
		}
		u.SetLabels(lbls)
	})
}

func hasDeletion(ns *corev1.Namespace, key string) bool {
	_, ok := ns.Annotations[workloadv1alpha1.DeletionAnnotation(key)]
	return ok
}

func TestPlacementEvictionIsMakeBeforeBreak(t *testing.T) {
	metrics := tmc.NewTMCMetrics("test")
	f := newFixture(t, func(o *Options) { o.Metrics = metrics })
	evictAt := testNow.Add(10 * time.Minute)
	k1 := f.syncTarget("t1", evictAfter(evictAt))
	k2 := f.syncTarget("t2")
	f.location("loc", nil, nil)
	f.placement(wsA, "p", nsSelector())
	placedNamespace(f, k1)

	// Drain scheduled for later: nothing moves, and the namespace comes back exactly then.
	if d := f.step(wsA, "app"); d != 10*time.Minute {
		t.Fatalf("requeue after %v, want exactly 10m (evictAfter)", d)
	}
	if got := f.targetsOf(wsA, "app"); !slices.Equal(got, []string{k1}) {
		t.Fatalf("moved to %v before evictAfter", got)
	}

	f.clock.SetTime(evictAt)
	f.step(wsA, "app")
	if got := f.targetsOf(wsA, "app"); !slices.Equal(got, sorted(k1, k2)) {
		t.Fatalf("after evictAfter on %v, want both t1 and t2", got)
	}
	if hasDeletion(f.ns(wsA, "app"), k1) {
		t.Fatal("old target released before the new copy is ready")
	}

	// The resource controller labels the objects for t2; t2 reports 1/2 ready.
	f.deployment(wsA, "app", "web", ptrInt64(2), []string{k1, k2}, map[string]int64{k1: 2, k2: 1})
	f.configMap("cfg", k1, k2)
	f.step(wsA, "app")
	if hasDeletion(f.ns(wsA, "app"), k1) {
		t.Fatal("old target released with 1/2 replicas ready on the new one")
	}

	// 2/2 ready on t2: the old target gets the deletion annotation, its label stays.
	f.deployment(wsA, "app", "web", ptrInt64(2), []string{k1, k2}, map[string]int64{k1: 2, k2: 2})
	f.step(wsA, "app")
	ns := f.ns(wsA, "app")
	if !hasDeletion(ns, k1) || ns.Labels[workloadv1alpha1.ClusterResourceStateLabel(k1)] != "Sync" {
		t.Fatalf("after the new copy is ready: annotations %v labels %v, want t1's deletion annotation and label", ns.Annotations, ns.Labels)
	}

	// Objects still carry t1's label: the namespace keeps it.
	f.step(wsA, "app")
	if _, ok := f.ns(wsA, "app").Labels[workloadv1alpha1.ClusterResourceStateLabel(k1)]; !ok {
		t.Fatal("t1 label removed while objects still carry it")
	}

	// The syncer of t1 released the deployment but not yet the config map.
	f.deployment(wsA, "app", "web", ptrInt64(2), []string{k2}, map[string]int64{k2: 2})
	f.step(wsA, "app")
	if _, ok := f.ns(wsA, "app").Labels[workloadv1alpha1.ClusterResourceStateLabel(k1)]; !ok {
		t.Fatal("t1 label removed while the config map still carries it")
	}
	f.configMap("cfg", k2)
	f.step(wsA, "app")
	ns = f.ns(wsA, "app")
	if got := f.targetsOf(wsA, "app"); !slices.Equal(got, []string{k2}) || hasDeletion(ns, k1) {
		t.Fatalf("after release: targets %v annotations %v, want only t2 and no deletion annotation", got, ns.Annotations)
	}
	if ns.Annotations[schedulingv1alpha1.PlacementAnnotationKey] != "p" {
		t.Fatal("placement annotation lost")
	}

	events := f.events(wsA)
	if !containsEvent(events, "Normal Rescheduling") || !containsEvent(events, "Normal Rescheduled") {
		t.Fatalf("events %v, want Rescheduling and Rescheduled", events)
	}
	if got := testutil.ToFloat64(metrics.CounterVec(DecisionsMetric).WithLabelValues(wsA, ResultRescheduled)); got != 1 {
		t.Fatalf("rescheduled decisions = %v, want 1", got)
	}
}

func TestPlacementReschedulingTriggers(t *testing.T) {
	grace := 5 * time.Minute
	cases := []struct {
		name        string
		old         []stOpt
		after       func(f *fixture) // applied after the first reconcile
		wantMove    bool
		wantRequeue time.Duration
	}{
		{name: "healthy", wantMove: false},
		{name: "cordoned only", old: []stOpt{cordoned}, wantMove: false},
		{name: "evictAfter in the past", old: []stOpt{evictAfter(testNow.Add(-time.Second))}, wantMove: true},
		{name: "unhealthy within the grace period", old: []stOpt{notReadySince(testNow.Add(-time.Minute))}, wantMove: false, wantRequeue: 4 * time.Minute},
		{name: "unhealthy beyond the grace period", old: []stOpt{notReadySince(testNow.Add(-grace))}, wantMove: true},
		{name: "deleted", after: func(f *fixture) { f.deleteSyncTarget("t1") }, wantMove: true},
		{name: "no longer an instance of the Location", after: func(f *fixture) { f.syncTarget("t1", withLabels("pool", "other")) }, wantMove: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) { o.UnhealthyGracePeriod = grace })
			k1 := f.syncTarget("t1", append([]stOpt{withLabels("pool", "main")}, tc.old...)...)
			k2 := f.syncTarget("t2", withLabels("pool", "main"))
			f.location("loc", nil, &metav1.LabelSelector{MatchLabels: labelMap("pool", "main")})
			f.placement(wsA, "p", nsSelector())
			placedNamespace(f, k1)
			if tc.after != nil {
				tc.after(f)
			}
			d := f.step(wsA, "app")
			want := []string{k1}
			if tc.wantMove {
				want = sorted(k1, k2)
			}
			if got := f.targetsOf(wsA, "app"); !slices.Equal(got, want) {
				t.Fatalf("targets %v, want %v", got, want)
			}
			if d != tc.wantRequeue {
				t.Fatalf("requeue after %v, want %v", d, tc.wantRequeue)
			}
			if tc.wantRequeue > 0 {
				// The grace period expires: the namespace moves.
				f.clock.Step(tc.wantRequeue)
				f.step(wsA, "app")
				if got := f.targetsOf(wsA, "app"); !slices.Equal(got, sorted(k1, k2)) {
					t.Fatalf("after the grace period: targets %v, want both", got)
				}
			}
		})
	}
}

func TestPlacementNoAlternativeKeepsOldTarget(t *testing.T) {
	metrics := tmc.NewTMCMetrics("test")
	f := newFixture(t, func(o *Options) { o.Metrics = metrics })
	k1 := f.syncTarget("t1", evictAfter(testNow.Add(-time.Minute)))
	f.syncTarget("t2", cordoned)
	f.location("loc", nil, nil)
	f.placement(wsA, "p", nsSelector())
	placedNamespace(f, k1)
	f.step(wsA, "app")
	f.step(wsA, "app")
	ns := f.ns(wsA, "app")
	if got := f.targetsOf(wsA, "app"); !slices.Equal(got, []string{k1}) || hasDeletion(ns, k1) {
		t.Fatalf("targets %v annotations %v, want t1 kept without deletion annotation", got, ns.Annotations)
	}
	p, _ := f.reconcilePlacement(wsA, "p")
	c := condition(p, schedulingv1alpha1.PlacementScheduled)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != schedulingv1alpha1.ReasonNoValidTarget || !strings.Contains(c.Message, "app") {
		t.Fatalf("Scheduled = %+v, want False NoValidTarget naming app", c)
	}
	if p.Status.Phase != schedulingv1alpha1.PlacementPending {
		t.Fatalf("phase %q, want Pending (no Location has an available instance)", p.Status.Phase)
	}
	if got := testutil.ToFloat64(metrics.CounterVec(DecisionsMetric).WithLabelValues(wsA, ResultUnschedulable)); got != 1 {
		t.Fatalf("unschedulable decisions = %v, want 1 for two reconciles of the same episode", got)
	}

	// t2 is uncordoned: the namespace moves.
	k2 := f.syncTarget("t2")
	f.step(wsA, "app")
	if got := f.targetsOf(wsA, "app"); !slices.Equal(got, sorted(k1, k2)) {
		t.Fatalf("targets %v, want t1 and t2", got)
	}
	p, _ = f.reconcilePlacement(wsA, "p")
	if c := condition(p, schedulingv1alpha1.PlacementScheduled); c.Status != metav1.ConditionTrue || c.Reason != schedulingv1alpha1.ReasonRescheduling {
		t.Fatalf("Scheduled = %+v, want True Rescheduling while moving", c)
	}
}

// TestPlacementOldTargetRecovers checks that a namespace with two valid targets keeps the
// one whose workloads are ready.
func TestPlacementOldTargetRecovers(t *testing.T) {
	f := newFixture(t)
	k1 := f.syncTarget("t1", evictAfter(testNow.Add(-time.Minute)))
	k2 := f.syncTarget("t2")
	f.location("loc", nil, nil)
	f.placement(wsA, "p", nsSelector())
	placedNamespace(f, k1)
	f.step(wsA, "app")
	// The drain is cancelled before t2 is ready; t1 still runs the workload.
	f.syncTarget("t1")
	f.deployment(wsA, "app", "web", ptrInt64(2), []string{k1, k2}, map[string]int64{k1: 2, k2: 0})
	f.step(wsA, "app")
	ns := f.ns(wsA, "app")
	if !hasDeletion(ns, k2) || hasDeletion(ns, k1) {
		t.Fatalf("annotations %v, want t2 (not ready) removed and t1 (ready) kept", ns.Annotations)
	}
}

func TestPlacementDeletedUnschedules(t *testing.T) {
	metrics := tmc.NewTMCMetrics("test")
	f := newFixture(t, func(o *Options) { o.Metrics = metrics })
	k1 := f.syncTarget("t1")
	f.location("loc", nil, nil)
	f.placement(wsA, "p", nsSelector())
	placedNamespace(f, k1)
	// A namespace labelled by hand (no placement annotation) is not ours.
	f.namespace(wsA, "manual", map[string]string{workloadv1alpha1.ClusterResourceStateLabel(k1): "Sync"})

	must(t, f.tmc[wsA].SchedulingV1alpha1().Placements().Delete(t.Context(), "p", metav1.DeleteOptions{}))
	f.step(wsA, "app")
	f.step(wsA, "manual")
	ns := f.ns(wsA, "app")
	if !hasDeletion(ns, k1) || ns.Labels[workloadv1alpha1.ClusterResourceStateLabel(k1)] != "Sync" || ns.Annotations[schedulingv1alpha1.PlacementAnnotationKey] != "p" {
		t.Fatalf("after Placement deletion: labels %v annotations %v, want deletion annotation with label and placement annotation kept", ns.Labels, ns.Annotations)
	}
	if manual := f.ns(wsA, "manual"); hasDeletion(manual, k1) {
		t.Fatal("a namespace labelled by hand was unscheduled")
	}
	if events := f.events(wsA); !containsEvent(events, "Warning Unscheduled Placement p was deleted") {
		t.Fatalf("events %v, want Unscheduled", events)
	}

	// The syncer released the config map; the deployment still carries the label.
	f.configMap("cfg")
	f.step(wsA, "app")
	if !hasDeletion(f.ns(wsA, "app"), k1) {
		t.Fatal("finished while the deployment still carries the label")
	}
	f.deployment(wsA, "app", "web", ptrInt64(2), nil, nil)
	f.step(wsA, "app")
	ns = f.ns(wsA, "app")
	if len(f.targetsOf(wsA, "app")) != 0 || hasDeletion(ns, k1) || ns.Annotations[schedulingv1alpha1.PlacementAnnotationKey] != "" {
		t.Fatalf("after release: labels %v annotations %v, want all placement metadata gone", ns.Labels, ns.Annotations)
	}
	if got := testutil.ToFloat64(metrics.CounterVec(DecisionsMetric).WithLabelValues(wsA, ResultUnscheduled)); got != 1 {
		t.Fatalf("unscheduled decisions = %v, want 1", got)
	}
}

// TestPlacementObjectsLabelledFor checks that the count of the resource controller is used
// and that a namespace waiting on it is looked at again.
func TestPlacementObjectsLabelledFor(t *testing.T) {
	remaining := 1
	f := newFixture(t, func(o *Options) {
		o.ObjectsLabelledFor = func(ws, ns, key string) int { return remaining }
	})
	k1 := f.syncTarget("t1")
	f.location("loc", nil, nil)
	f.placement(wsA, "p", nsSelector("team", "a"))
	placedNamespace(f, k1)
	f.step(wsA, "app") // not selected: deletion annotation
	if d := f.step(wsA, "app"); d != removalRecheck {
		t.Fatalf("requeue %v while waiting on objects, want %v", d, removalRecheck)
	}
	remaining = 0
	f.step(wsA, "app")
	if len(f.targetsOf(wsA, "app")) != 0 {
		t.Fatal("label kept although no object carries it")
	}
}

func sorted(keys ...string) []string {
	out := slices.Clone(keys)
	slices.Sort(out)
	return out
}
