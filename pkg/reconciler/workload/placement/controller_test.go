package placement

import (
	"context"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	"github.com/tmc-dev/tmc/pkg/workspaces"
	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func TestPlacementNewControllerChecksDependencies(t *testing.T) {
	ws, _, _, _ := newWorkspace(wsA)
	incomplete := *ws
	incomplete.TMC = nil
	cases := []struct {
		name string
		set  *workspaces.Set
		opts Options
	}{
		{name: "nil set"},
		{name: "workspace without clients", set: &workspaces.Set{Workload: map[string]*workspaces.Workspace{wsA: &incomplete}}},
		{name: "negative grace period", set: &workspaces.Set{}, opts: Options{UnhealthyGracePeriod: -time.Second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewController(tc.set, tc.opts); err == nil {
				t.Fatal("NewController succeeded, want an error")
			}
		})
	}
	c, err := NewController(&workspaces.Set{Workload: map[string]*workspaces.Workspace{wsA: ws}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.grace != DefaultUnhealthyGracePeriod {
		t.Fatalf("grace %v, want the default %v", c.grace, DefaultUnhealthyGracePeriod)
	}
}

// TestPlacementRun runs the controller on started informers: a Placement and a namespace
// end up scheduled and Bound through the event handlers alone, and deleting the Placement
// unschedules the namespace.
func TestPlacementRun(t *testing.T) {
	f := newFixture(t)
	// A fresh controller with the real clock, its own Event broadcasters and metrics.
	f.opts = Options{Clock: clock.RealClock{}, Metrics: tmc.NewTMCMetrics("test")}
	ctrl, err := NewController(f.set, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	key := f.syncTarget("t1")
	f.location("loc", nil, nil)
	f.placement(wsA, "p", nsSelector("team", "a"))
	f.namespace(wsA, "ns1", labelMap("team", "a"))

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for _, ws := range f.set.All() {
		ws.Start(ctx)
	}
	wg.Add(1)
	go func() { defer wg.Done(); ctrl.Run(ctx, 2) }()

	poll := func(what string, cond func() bool) {
		t.Helper()
		err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) { return cond(), nil })
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
	poll("ns1 to be scheduled on t1", func() bool {
		got := f.targetsOf(wsA, "ns1")
		return len(got) == 1 && got[0] == key
	})
	poll("Placement to be Bound", func() bool {
		p, err := f.tmc[wsA].SchedulingV1alpha1().Placements().Get(ctx, "p", metav1.GetOptions{})
		return err == nil && p.Status.Phase == schedulingv1alpha1.PlacementBound
	})

	// A second namespace appears: it is scheduled too.
	f.namespace(wsA, "ns2", labelMap("team", "a"))
	poll("ns2 to be scheduled", func() bool { return len(f.targetsOf(wsA, "ns2")) == 1 })

	// Deleting the Placement unschedules; with no objects in the namespaces the labels go.
	must(t, f.tmc[wsA].SchedulingV1alpha1().Placements().Delete(ctx, "p", metav1.DeleteOptions{}))
	poll("namespaces to be unscheduled", func() bool {
		for _, name := range []string{"ns1", "ns2"} {
			ns := f.ns(wsA, name)
			if len(f.targetsOf(wsA, name)) != 0 || ns.Annotations[schedulingv1alpha1.PlacementAnnotationKey] != "" {
				return false
			}
		}
		return true
	})
}

func TestPlacementEventFilters(t *testing.T) {
	f := newFixture(t)
	f.placement(wsA, "p", nsSelector())
	f.namespace(wsA, "ns1", nil)
	f.sync()
	drain := func() (namespaces, placements int) {
		return len(f.ctrl.namespaceQueue.Drain()), len(f.ctrl.placementQueue.Drain())
	}

	st := &workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{Name: "t1"}}
	beat := st.DeepCopy()
	now := metav1.NewTime(testNow)
	beat.Status.LastSyncerHeartbeatTime = &now
	cordon := st.DeepCopy()
	cordon.Spec.Unschedulable = true
	if schedulingInputsChanged(st, beat) {
		t.Error("a heartbeat counts as a scheduling change")
	}
	if !schedulingInputsChanged(st, cordon) {
		t.Error("cordoning does not count as a scheduling change")
	}

	p, _ := f.tmc[wsA].SchedulingV1alpha1().Placements().Get(t.Context(), "p", metav1.GetOptions{})
	withStatus := p.DeepCopy()
	withStatus.Status.Phase = schedulingv1alpha1.PlacementBound
	drain()
	f.ctrl.placementChanged(wsA, withStatus, placementInputsChanged(p, withStatus))
	if n, pl := drain(); n != 0 || pl != 1 {
		t.Errorf("status-only Placement update queued %d namespaces and %d Placements, want 0 and 1", n, pl)
	}
	moved := p.DeepCopy()
	moved.Spec.NamespaceSelector = nsSelector("x", "y")
	f.ctrl.placementChanged(wsA, moved, placementInputsChanged(p, moved))
	if n, _ := drain(); n != 1 {
		t.Errorf("selector change queued %d namespaces, want 1", n)
	}

	obj := &unstructured.Unstructured{}
	obj.SetNamespace("ns1")
	f.ctrl.objectChanged(wsA, nil, obj, false)
	if n, _ := drain(); n != 0 {
		t.Error("an unlabelled object woke its namespace")
	}
	f.ctrl.objectChanged(wsA, nil, obj, true)
	if n, _ := drain(); n != 1 {
		t.Error("an unlabelled PersistentVolumeClaim or StatefulSet did not wake its namespace")
	}
	labelled := obj.DeepCopy()
	labelled.SetLabels(map[string]string{workloadv1alpha1.ClusterResourceStateLabel("k"): "Sync"})
	f.ctrl.objectChanged(wsA, labelled, obj, false) // the label was removed
	if n, _ := drain(); n != 1 {
		t.Error("losing a state label did not wake the namespace")
	}
}
