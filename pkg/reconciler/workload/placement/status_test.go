package placement

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clienttesting "k8s.io/client-go/testing"

	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
)

func TestPlacementLocationSelection(t *testing.T) {
	cases := []struct {
		name          string
		setup         func(f *fixture)
		workspace     string // location workspace of the Placement; default locWS
		selectors     []metav1.LabelSelector
		selected      string // "" means none
		wantPhase     schedulingv1alpha1.PlacementPhase
		wantReason    string
		wantInMessage string
	}{{
		name: "no selectors: first Location by name with an available instance",
		setup: func(f *fixture) {
			f.syncTarget("t1")
			f.location("b", nil, nil)
			f.location("a", nil, nil)
		},
		selected: "a", wantPhase: schedulingv1alpha1.PlacementUnbound, wantReason: schedulingv1alpha1.ReasonPlacementReady,
	}, {
		name: "selectors are ORed and filter Locations by label",
		setup: func(f *fixture) {
			f.syncTarget("t1")
			f.location("a", labelMap("region", "us"), nil)
			f.location("b", labelMap("region", "eu"), nil)
			f.location("c", labelMap("region", "ap"), nil)
		},
		selectors: []metav1.LabelSelector{locSelector("region", "eu"), locSelector("region", "ap")},
		selected:  "b", wantPhase: schedulingv1alpha1.PlacementUnbound, wantReason: schedulingv1alpha1.ReasonPlacementReady,
	}, {
		name: "a Location whose instances are all unavailable is skipped",
		setup: func(f *fixture) {
			f.syncTarget("t-a1", withLabels("pool", "a"), cordoned)
			f.syncTarget("t-a2", withLabels("pool", "a"), notReadySince(testNow.Add(-time.Minute)))
			f.syncTarget("t-a3", withLabels("pool", "a"), evictAfter(testNow.Add(-time.Second)))
			f.syncTarget("t-b1", withLabels("pool", "b"))
			f.location("a", nil, &metav1.LabelSelector{MatchLabels: labelMap("pool", "a")})
			f.location("b", nil, &metav1.LabelSelector{MatchLabels: labelMap("pool", "b")})
		},
		selected: "b", wantPhase: schedulingv1alpha1.PlacementUnbound, wantReason: schedulingv1alpha1.ReasonPlacementReady,
	}, {
		name: "no available instance anywhere",
		setup: func(f *fixture) {
			f.syncTarget("t1", cordoned)
			f.location("a", nil, nil)
			f.location("b", nil, nil)
		},
		wantPhase: schedulingv1alpha1.PlacementPending, wantReason: schedulingv1alpha1.ReasonLocationNoMatch, wantInMessage: "a, b",
	}, {
		name: "no Location matches the selectors",
		setup: func(f *fixture) {
			f.syncTarget("t1")
			f.location("a", labelMap("region", "us"), nil)
		},
		selectors: []metav1.LabelSelector{locSelector("region", "eu")},
		wantPhase: schedulingv1alpha1.PlacementPending, wantReason: schedulingv1alpha1.ReasonLocationNotFound,
	}, {
		name:      "location workspace not watched",
		setup:     func(f *fixture) { f.syncTarget("t1"); f.location("a", nil, nil) },
		workspace: "root:elsewhere",
		wantPhase: schedulingv1alpha1.PlacementPending, wantReason: schedulingv1alpha1.ReasonLocationNotFound, wantInMessage: `"root:elsewhere"`,
	}, {
		name:      "invalid selector",
		setup:     func(f *fixture) { f.syncTarget("t1"); f.location("a", nil, nil) },
		selectors: []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "x", Operator: "Bogus"}}}},
		wantPhase: schedulingv1alpha1.PlacementPending, wantReason: schedulingv1alpha1.ReasonLocationInvalid,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.setup(f)
			f.placement(wsA, "p", nsSelector(), tc.selectors...)
			if tc.workspace != "" {
				p, _ := f.tmc[wsA].SchedulingV1alpha1().Placements().Get(t.Context(), "p", metav1.GetOptions{})
				p.Spec.LocationWorkspace = tc.workspace
				_, err := f.tmc[wsA].SchedulingV1alpha1().Placements().Update(t.Context(), p, metav1.UpdateOptions{})
				must(t, err)
			}
			p, _ := f.reconcilePlacement(wsA, "p")
			if p.Status.Phase != tc.wantPhase {
				t.Errorf("phase = %q, want %q", p.Status.Phase, tc.wantPhase)
			}
			got := ""
			if p.Status.SelectedLocation != nil {
				got = p.Status.SelectedLocation.LocationName
			}
			if got != tc.selected {
				t.Errorf("selectedLocation = %q, want %q", got, tc.selected)
			}
			ready := condition(p, schedulingv1alpha1.PlacementReady)
			if ready == nil || ready.Reason != tc.wantReason || !strings.Contains(ready.Message, tc.wantInMessage) {
				t.Errorf("Ready condition = %+v, want reason %s with %q in the message", ready, tc.wantReason, tc.wantInMessage)
			}
			if wantStatus := tc.selected != ""; ready != nil && (ready.Status == metav1.ConditionTrue) != wantStatus {
				t.Errorf("Ready status = %s, want true=%v", ready.Status, wantStatus)
			}
		})
	}
}

// TestPlacementLocationIsSticky checks that a Location becoming available later does not
// take over from the selected one.
func TestPlacementLocationIsSticky(t *testing.T) {
	f := newFixture(t)
	f.syncTarget("t-a", withLabels("pool", "a"), cordoned)
	f.syncTarget("t-b", withLabels("pool", "b"))
	f.location("a", nil, &metav1.LabelSelector{MatchLabels: labelMap("pool", "a")})
	f.location("b", nil, &metav1.LabelSelector{MatchLabels: labelMap("pool", "b")})
	f.placement(wsA, "p", nsSelector())
	if p, _ := f.reconcilePlacement(wsA, "p"); p.Status.SelectedLocation.LocationName != "b" {
		t.Fatalf("selected %v, want b", p.Status.SelectedLocation)
	}
	f.syncTarget("t-a", withLabels("pool", "a")) // uncordoned
	if p, _ := f.reconcilePlacement(wsA, "p"); p.Status.SelectedLocation.LocationName != "b" {
		t.Fatalf("selected %v after Location a became available, want b still", p.Status.SelectedLocation)
	}
}

func TestPlacementPhasesAndConditions(t *testing.T) {
	f := newFixture(t)
	f.placement(wsA, "p", nsSelector("team", "a"))
	f.namespace(wsA, "ns1", labelMap("team", "a"))

	p, _ := f.reconcilePlacement(wsA, "p")
	if p.Status.Phase != schedulingv1alpha1.PlacementPending || p.Status.SelectedLocation != nil {
		t.Fatalf("without Location: phase %q location %v, want Pending and none", p.Status.Phase, p.Status.SelectedLocation)
	}
	if c := condition(p, schedulingv1alpha1.PlacementScheduled); c == nil || c.Status != metav1.ConditionFalse ||
		c.Reason != schedulingv1alpha1.ReasonNoValidTarget || !strings.Contains(c.Message, "ns1") {
		t.Fatalf("Scheduled = %+v, want False NoValidTarget naming ns1", c)
	}

	t1 := f.syncTarget("t1")
	f.location("loc", nil, nil)
	p, _ = f.reconcilePlacement(wsA, "p")
	if p.Status.Phase != schedulingv1alpha1.PlacementUnbound || p.Status.SelectedLocation == nil ||
		*p.Status.SelectedLocation != (schedulingv1alpha1.LocationReference{Path: locWS, LocationName: "loc"}) {
		t.Fatalf("with Location, before scheduling: phase %q location %v, want Unbound loc", p.Status.Phase, p.Status.SelectedLocation)
	}

	f.step(wsA, "ns1")
	p, _ = f.reconcilePlacement(wsA, "p")
	if p.Status.Phase != schedulingv1alpha1.PlacementBound {
		t.Fatalf("phase %q, want Bound", p.Status.Phase)
	}
	want := schedulingv1alpha1.SyncTargetReference{Path: locWS, Name: "t1", Key: t1}
	if p.Status.SelectedSyncTarget == nil || *p.Status.SelectedSyncTarget != want {
		t.Fatalf("selectedSyncTarget = %v, want %v", p.Status.SelectedSyncTarget, want)
	}
	for _, ct := range []string{schedulingv1alpha1.PlacementReady, schedulingv1alpha1.PlacementScheduled} {
		if c := condition(p, ct); c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != 1 {
			t.Fatalf("%s = %+v, want True at generation 1", ct, c)
		}
	}

	// Nothing changed: no write.
	before := countActions(f.tmc[wsA].Actions(), "update", "status")
	f.reconcilePlacement(wsA, "p")
	if after := countActions(f.tmc[wsA].Actions(), "update", "status"); after != before {
		t.Fatalf("status written %d times without a change", after-before)
	}

	// A restarted controller reports the same target.
	f.restart()
	p, _ = f.reconcilePlacement(wsA, "p")
	if p.Status.SelectedSyncTarget == nil || *p.Status.SelectedSyncTarget != want {
		t.Fatalf("after restart selectedSyncTarget = %v, want %v", p.Status.SelectedSyncTarget, want)
	}
}

func TestPlacementSelectedSyncTargetIsMostRecent(t *testing.T) {
	f := newFixture(t)
	f.syncTarget("t1")
	f.syncTarget("t2")
	f.location("loc", nil, nil)
	f.placement(wsA, "p", nsSelector())
	f.namespace(wsA, "ns1", nil)
	f.namespace(wsA, "ns2", nil)
	f.step(wsA, "ns1")
	f.step(wsA, "ns2")
	if f.targetsOf(wsA, "ns1")[0] == f.targetsOf(wsA, "ns2")[0] {
		t.Fatal("two namespaces on the same target although two are empty")
	}
	p, _ := f.reconcilePlacement(wsA, "p")
	if got, want := p.Status.SelectedSyncTarget.Key, f.targetsOf(wsA, "ns2")[0]; got != want {
		t.Fatalf("selectedSyncTarget key %s, want the target of ns2 (%s)", got, want)
	}
}

func countActions(actions []clienttesting.Action, verb, subresource string) int {
	n := 0
	for _, a := range actions {
		if a.GetVerb() == verb && a.GetSubresource() == subresource {
			n++
		}
	}
	return n
}
