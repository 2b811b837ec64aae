package placement

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func (f *fixture) pvc(name string) {
	f.object(wsA, persistentVolumeClaimsGVR, "PersistentVolumeClaim", "app", name, nil)
}

func (f *fixture) statefulSet(name string, withClaims bool) {
	f.object(wsA, statefulSetsGVR, "StatefulSet", "app", name, func(u *unstructured.Unstructured) {
		if withClaims {
			must(f.t, unstructured.SetNestedSlice(u.Object, []any{map[string]any{"metadata": map[string]any{"name": "data"}}}, "spec", "volumeClaimTemplates"))
		}
	})
}

// reportsClaims makes the target's syncer report that namespaces of workspace hold claims
// downstream.
func reportsClaims(workspace string, namespaces ...string) stOpt {
	return func(st *workloadv1alpha1.SyncTarget) {
		st.Status.WorkspaceHealth = append(st.Status.WorkspaceHealth, workloadv1alpha1.WorkspaceHealth{Path: workspace, Ready: true, PersistentNamespaces: namespaces})
	}
}

func reportsTruncated(workspace string) stOpt {
	return func(st *workloadv1alpha1.SyncTarget) {
		st.Status.WorkspaceHealth = append(st.Status.WorkspaceHealth, workloadv1alpha1.WorkspaceHealth{Path: workspace, Ready: true, PersistentNamespacesTruncated: true})
	}
}

// TestPlacementFailoverKeepsPersistentData: automatic failover (a target not Ready beyond
// the grace period) does not move a namespace with persistent data upstream unless the
// Placement allows it; a drain still moves it.
func TestPlacementFailoverKeepsPersistentData(t *testing.T) {
	grace := 5 * time.Minute
	dead := notReadySince(testNow.Add(-grace - time.Minute))
	cases := []struct {
		name     string
		old      []stOpt
		data     func(f *fixture)
		allowed  bool
		wantMove bool
		wantHeld bool
	}{
		{name: "stateless", old: []stOpt{dead}, wantMove: true},
		{name: "PersistentVolumeClaim", old: []stOpt{dead}, data: func(f *fixture) { f.pvc("data-db-0") }, wantHeld: true},
		{name: "StatefulSet with volumeClaimTemplates", old: []stOpt{dead}, data: func(f *fixture) { f.statefulSet("db", true) }, wantHeld: true},
		{name: "StatefulSet without volumeClaimTemplates", old: []stOpt{dead}, data: func(f *fixture) { f.statefulSet("db", false) }, wantMove: true},
		{name: "statefulFailover Allowed", old: []stOpt{dead}, data: func(f *fixture) { f.pvc("data-db-0") }, allowed: true, wantMove: true},
		{name: "drain moves it anyway", old: []stOpt{evictAfter(testNow.Add(-time.Second))}, data: func(f *fixture) { f.pvc("data-db-0") }, wantMove: true},
		{name: "drain of a dead target moves it anyway", old: []stOpt{dead, evictAfter(testNow.Add(-time.Second))}, data: func(f *fixture) { f.pvc("data-db-0") }, wantMove: true},
		// Claims only downstream (an operator's), known from the syncer's last report.
		{name: "claims reported downstream", old: []stOpt{dead, reportsClaims(wsA, "app")}, wantHeld: true},
		{name: "report too long to list every namespace", old: []stOpt{dead, reportsTruncated(wsA)}, wantHeld: true},
		{name: "claims reported for another namespace", old: []stOpt{dead, reportsClaims(wsA, "other")}, wantMove: true},
		{name: "claims reported for another workspace", old: []stOpt{dead, reportsClaims("root:org:elsewhere", "app")}, wantMove: true},
		{name: "claims reported, statefulFailover Allowed", old: []stOpt{dead, reportsClaims(wsA, "app")}, allowed: true, wantMove: true},
		{name: "within the grace period", old: []stOpt{notReadySince(testNow.Add(-time.Minute))}, data: func(f *fixture) { f.pvc("data-db-0") }},
		{name: "cordoned", old: []stOpt{cordoned}, data: func(f *fixture) { f.pvc("data-db-0") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			metrics := tmc.NewTMCMetrics("test")
			f := newFixture(t, func(o *Options) { o.UnhealthyGracePeriod = grace; o.Metrics = metrics })
			k1 := f.syncTarget("t1", tc.old...)
			k2 := f.syncTarget("t2")
			f.location("loc", nil, nil)
			f.placement(wsA, "p", nsSelector())
			if tc.allowed {
				f.updatePlacement(wsA, "p", func(p *schedulingv1alpha1.Placement) {
					p.Spec.StatefulFailover = schedulingv1alpha1.StatefulFailoverAllowed
				})
			}
			placedNamespace(f, k1)
			if tc.data != nil {
				tc.data(f)
			}
			f.step(wsA, "app")
			f.step(wsA, "app")
			want := []string{k1}
			if tc.wantMove {
				want = sorted(k1, k2)
			}
			if got := f.targetsOf(wsA, "app"); !slices.Equal(got, want) {
				t.Fatalf("targets %v, want %v", got, want)
			}
			held := 0
			for _, e := range f.events(wsA) {
				if strings.HasPrefix(e, "Warning "+EventFailoverHeld) {
					held++
					if !strings.Contains(e, "SyncTarget t1") || !strings.Contains(e, "statefulFailover Never") {
						t.Errorf("event %q does not name the target and the policy", e)
					}
				}
			}
			if wantEvents := map[bool]int{true: 1, false: 0}[tc.wantHeld]; held != wantEvents {
				t.Fatalf("%d FailoverHeld events over two reconciles, want %d", held, wantEvents)
			}
			if got := testutil.ToFloat64(metrics.CounterVec(DecisionsMetric).WithLabelValues(wsA, ResultFailoverHeld)); got != float64(held) {
				t.Fatalf("failover_held decisions = %v, want %d", got, held)
			}
			p, _ := f.reconcilePlacement(wsA, "p")
			c := condition(p, schedulingv1alpha1.PlacementScheduled)
			if isHeld := c.Reason == schedulingv1alpha1.ReasonFailoverHeld; isHeld != tc.wantHeld || (isHeld && (c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "app"))) {
				t.Fatalf("Scheduled = %+v, want FailoverHeld=%v naming app", c, tc.wantHeld)
			}
		})
	}
}

// TestPlacementFailoverResumesWithoutData: the held namespace moves once its last claim is
// gone, and a new episode is reported again.
func TestPlacementFailoverResumesWithoutData(t *testing.T) {
	f := newFixture(t)
	k1 := f.syncTarget("t1", notReadySince(testNow.Add(-time.Hour)))
	k2 := f.syncTarget("t2")
	f.location("loc", nil, nil)
	f.placement(wsA, "p", nsSelector())
	placedNamespace(f, k1)
	f.pvc("data-db-0")
	f.pvc("data-db-1")
	f.step(wsA, "app")
	if got := f.targetsOf(wsA, "app"); !slices.Equal(got, []string{k1}) {
		t.Fatalf("targets %v, want t1 only", got)
	}
	if events := f.events(wsA); len(events) != 1 || !strings.Contains(events[0], "PersistentVolumeClaim data-db-0 and 1 more") {
		t.Fatalf("events %v, want one FailoverHeld naming the claims", events)
	}
	for _, name := range []string{"data-db-0", "data-db-1"} {
		must(t, f.dyn[wsA].Resource(persistentVolumeClaimsGVR).Namespace("app").Delete(t.Context(), name, metav1.DeleteOptions{}))
	}
	f.step(wsA, "app")
	if got := f.targetsOf(wsA, "app"); !slices.Equal(got, sorted(k1, k2)) {
		t.Fatalf("targets %v after the claims went, want t1 and t2", got)
	}
}
