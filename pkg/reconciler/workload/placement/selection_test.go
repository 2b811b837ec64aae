package placement

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// typo is the namespaceSelector of issue 11: lower-case "in", which the CRD now rejects
// but a Placement stored before that validation can still hold.
func typo() *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "in", Values: []string{"a"}}}}
}

func (f *fixture) updatePlacement(ws, name string, mutate func(*schedulingv1alpha1.Placement)) {
	f.t.Helper()
	p, err := f.tmc[ws].SchedulingV1alpha1().Placements().Get(f.t.Context(), name, metav1.GetOptions{})
	must(f.t, err)
	mutate(p)
	_, err = f.tmc[ws].SchedulingV1alpha1().Placements().Update(f.t.Context(), p, metav1.UpdateOptions{})
	must(f.t, err)
}

func TestFateOf(t *testing.T) {
	valid := func(name string, kv ...string) *schedulingv1alpha1.Placement {
		return &schedulingv1alpha1.Placement{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: schedulingv1alpha1.PlacementSpec{NamespaceSelector: nsSelector(kv...)}}
	}
	broken := func(name string) *schedulingv1alpha1.Placement {
		return &schedulingv1alpha1.Placement{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: schedulingv1alpha1.PlacementSpec{NamespaceSelector: typo()}}
	}
	deletedBroken := broken("a")
	now := metav1.Now()
	deletedBroken.DeletionTimestamp = &now
	cases := []struct {
		name       string
		placements []*schedulingv1alpha1.Placement // sorted by name
		placedBy   string                          // placement annotation of the namespace
		want       string                          // Placement followed ("" none)
		wantFrozen bool
	}{
		{name: "placed by the broken one, nothing else selects", placements: []*schedulingv1alpha1.Placement{broken("a")}, placedBy: "a", want: "a", wantFrozen: true},
		{name: "placed by the broken one, a later one selects", placements: []*schedulingv1alpha1.Placement{broken("a"), valid("b", "team", "a")}, placedBy: "a", want: "a", wantFrozen: true},
		{name: "placed by the broken one, an earlier one selects", placements: []*schedulingv1alpha1.Placement{valid("0", "team", "a"), broken("a")}, placedBy: "a", want: "0"},
		{name: "not placed, a later one selects", placements: []*schedulingv1alpha1.Placement{broken("a"), valid("b", "team", "a")}, want: "b"},
		{name: "not placed, nothing selects", placements: []*schedulingv1alpha1.Placement{broken("a")}},
		{name: "stays with its Placement", placements: []*schedulingv1alpha1.Placement{broken("a"), valid("b", "team", "a")}, placedBy: "b", want: "b"},
		{name: "its Placement stopped selecting it", placements: []*schedulingv1alpha1.Placement{broken("a"), valid("b", "team", "b")}, placedBy: "b", want: "b", wantFrozen: true},
		{name: "its Placement is gone", placements: []*schedulingv1alpha1.Placement{broken("a")}, placedBy: "b", wantFrozen: true},
		{name: "a broken Placement sorting after the winner does not matter", placements: []*schedulingv1alpha1.Placement{valid("0", "team", "a"), broken("z")}, placedBy: "c", want: "0"},
		{name: "a deleted broken Placement selects nothing", placements: []*schedulingv1alpha1.Placement{deletedBroken}, placedBy: "a"},
		{name: "all valid, not selected any more", placements: []*schedulingv1alpha1.Placement{valid("b", "team", "b")}, placedBy: "b"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app", Labels: labelMap("team", "a")}}
			if tc.placedBy != "" {
				ns.Annotations = map[string]string{schedulingv1alpha1.PlacementAnnotationKey: tc.placedBy}
			}
			got := fateOf(tc.placements, ns)
			name := ""
			if got.placement != nil {
				name = got.placement.Name
			}
			if name != tc.want || (got.frozen != "") != tc.wantFrozen {
				t.Fatalf("fate = %q frozen %q, want %q frozen=%v", name, got.frozen, tc.want, tc.wantFrozen)
			}
		})
	}
}

// TestPlacementUnevaluableSelectorKeepsDecisions is issue 11's typo: the Placement that
// placed a running namespace gets a namespaceSelector that cannot be parsed. Nothing is
// written to any namespace, nothing new is scheduled through it, and it says why.
func TestPlacementUnevaluableSelectorKeepsDecisions(t *testing.T) {
	f := newFixture(t)
	k1 := f.syncTarget("t1")
	f.syncTarget("t2")
	f.location("loc", nil, nil)
	f.placement(wsA, "p", nsSelector("team", "a"))
	placedNamespace(f, k1)
	f.updateNamespaceLabels(wsA, "app", "team", "a")
	f.step(wsA, "app")
	f.namespace(wsA, "fresh", labelMap("team", "a"))
	f.events(wsA)

	f.updatePlacement(wsA, "p", func(p *schedulingv1alpha1.Placement) { p.Spec.NamespaceSelector = typo() })
	before := countActions(f.kube[wsA].Actions(), "patch", "")
	for range 2 {
		f.step(wsA, "app")
		f.step(wsA, "fresh")
	}
	if n := countActions(f.kube[wsA].Actions(), "patch", "") - before; n != 0 {
		t.Fatalf("%d namespace patches while the selector cannot be evaluated, want none", n)
	}
	if got := f.targetsOf(wsA, "app"); !slices.Equal(got, []string{k1}) || hasDeletion(f.ns(wsA, "app"), k1) {
		t.Fatalf("app on %v (annotations %v), want kept on t1 without a deletion annotation", got, f.ns(wsA, "app").Annotations)
	}
	if got := f.targetsOf(wsA, "fresh"); len(got) != 0 {
		t.Fatalf("fresh scheduled on %v through an unevaluable Placement", got)
	}
	if events := f.events(wsA); len(events) != 1 || !strings.HasPrefix(events[0], "Warning "+EventPlacementUnevaluable) {
		t.Fatalf("events %v, want one %s warning (app, once per episode)", events, EventPlacementUnevaluable)
	}
	p, _ := f.reconcilePlacement(wsA, "p")
	if c := condition(p, schedulingv1alpha1.PlacementSelectorValid); c == nil || c.Status != metav1.ConditionFalse ||
		c.Reason != schedulingv1alpha1.ReasonInvalidSelector || !strings.Contains(c.Message, `"in" is not a valid label selector operator`) {
		t.Fatalf("SelectorValid = %+v, want False InvalidSelector with the parse error", c)
	}
	if c := condition(p, schedulingv1alpha1.PlacementScheduled); c == nil || c.Status != metav1.ConditionFalse ||
		c.Reason != schedulingv1alpha1.ReasonInvalidSelector || !strings.Contains(c.Message, "1 namespaces keep their SyncTargets") {
		t.Fatalf("Scheduled = %+v, want False InvalidSelector counting the kept namespace", c)
	}
	if c := condition(p, schedulingv1alpha1.PlacementUnscheduling); c == nil || c.Status != metav1.ConditionFalse {
		t.Fatalf("Unscheduling = %+v, want False", c)
	}
	if p.Status.Phase != schedulingv1alpha1.PlacementBound {
		t.Fatalf("phase %q, want Bound (app is still placed through it)", p.Status.Phase)
	}

	// Fixed: app stays where it is and fresh is scheduled.
	f.updatePlacement(wsA, "p", func(p *schedulingv1alpha1.Placement) { p.Spec.NamespaceSelector = nsSelector("team", "a") })
	f.step(wsA, "app")
	f.step(wsA, "fresh")
	if got := f.targetsOf(wsA, "app"); !slices.Equal(got, []string{k1}) || hasDeletion(f.ns(wsA, "app"), k1) {
		t.Fatalf("after the fix app on %v, want t1", got)
	}
	if got := f.targetsOf(wsA, "fresh"); len(got) != 1 {
		t.Fatalf("after the fix fresh on %v, want one target", got)
	}
	p, _ = f.reconcilePlacement(wsA, "p")
	if c := condition(p, schedulingv1alpha1.PlacementSelectorValid); c.Status != metav1.ConditionTrue {
		t.Fatalf("SelectorValid = %+v after the fix, want True", c)
	}
}

// TestPlacementUnevaluableInstanceSelectorKeepsDecisions: a Location the Placement matches
// has an instanceSelector that cannot be parsed. Read as "no instances", the namespace's
// target would no longer be eligible and the namespace would move to the other Location.
func TestPlacementUnevaluableInstanceSelectorKeepsDecisions(t *testing.T) {
	f := newFixture(t)
	k1 := f.syncTarget("t1", withLabels("pool", "one"))
	f.syncTarget("t2", withLabels("pool", "two"))
	f.location("a", nil, &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "pool", Operator: "in", Values: []string{"one"}}}})
	f.location("b", nil, &metav1.LabelSelector{MatchLabels: labelMap("pool", "two")})
	f.placement(wsA, "p", nsSelector())
	placedNamespace(f, k1)
	for range 2 {
		f.step(wsA, "app")
	}
	if n := countActions(f.kube[wsA].Actions(), "patch", ""); n != 0 {
		t.Fatalf("%d namespace patches, want none", n)
	}
	if got := f.targetsOf(wsA, "app"); !slices.Equal(got, []string{k1}) {
		t.Fatalf("app on %v, want kept on t1", got)
	}
	if events := f.events(wsA); len(events) != 1 || !strings.HasPrefix(events[0], "Warning "+EventPlacementUnevaluable) {
		t.Fatalf("events %v, want one %s warning and no Unschedulable", events, EventPlacementUnevaluable)
	}
	p, _ := f.reconcilePlacement(wsA, "p")
	if c := condition(p, schedulingv1alpha1.PlacementSelectorValid); c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "instanceSelector of Location a") {
		t.Fatalf("SelectorValid = %+v, want False naming Location a's instanceSelector", c)
	}
}

func (f *fixture) updateNamespaceLabels(ws, name string, kv ...string) {
	f.t.Helper()
	ns := f.ns(ws, name)
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	for k, v := range labelMap(kv...) {
		ns.Labels[k] = v
	}
	_, err := f.kube[ws].CoreV1().Namespaces().Update(f.t.Context(), ns, metav1.UpdateOptions{})
	must(f.t, err)
}

// TestPlacementUnschedulingIsVisible: a Placement's selector and deletion policy change
// in one edit; the namespace it no longer selects is removed with the new policy, an
// Event says so, and the Placement counts it until the removal completes.
func TestPlacementUnschedulingIsVisible(t *testing.T) {
	f := newFixture(t)
	k1 := f.syncTarget("t1")
	f.location("loc", nil, nil)
	f.placement(wsA, "p", nsSelector("team", "a"))
	placedNamespace(f, k1)
	f.updateNamespaceLabels(wsA, "app", "team", "a")
	f.step(wsA, "app")
	f.events(wsA)

	f.updatePlacement(wsA, "p", func(p *schedulingv1alpha1.Placement) {
		p.Spec.NamespaceSelector = nsSelector("team", "b")
		p.Spec.DeletionPolicy = schedulingv1alpha1.DeletionPolicyOrphan
	})
	f.step(wsA, "app")
	ns := f.ns(wsA, "app")
	if !hasDeletion(ns, k1) || ns.Annotations[workloadv1alpha1.DeletionPolicyAnnotation] != workloadv1alpha1.DeletionPolicyOrphan {
		t.Fatalf("annotations %v, want t1's deletion annotation and deletion policy Orphan", ns.Annotations)
	}
	events := f.events(wsA)
	if len(events) != 1 || !strings.HasPrefix(events[0], "Warning Unscheduled Placement p no longer selects the namespace") ||
		!strings.Contains(events[0], "SyncTarget t1") || !strings.Contains(events[0], "left running") {
		t.Fatalf("events %v, want one Unscheduled warning naming p, t1 and the orphan policy", events)
	}
	p, _ := f.reconcilePlacement(wsA, "p")
	if c := condition(p, schedulingv1alpha1.PlacementUnscheduling); c == nil || c.Status != metav1.ConditionTrue ||
		c.Reason != schedulingv1alpha1.ReasonNamespacesUnscheduling || !strings.Contains(c.Message, "1 namespaces") ||
		!strings.Contains(c.Message, "app") || !strings.Contains(c.Message, "Orphan") {
		t.Fatalf("Unscheduling = %+v, want True counting app with policy Orphan", c)
	}

	// The syncer released every object: the removal completes and the count drops.
	f.deployment(wsA, "app", "web", ptrInt64(2), nil, nil)
	f.configMap("cfg")
	f.step(wsA, "app")
	if len(f.targetsOf(wsA, "app")) != 0 || hasDeletion(f.ns(wsA, "app"), k1) {
		t.Fatalf("removal not finished: %v", f.ns(wsA, "app").Annotations)
	}
	p, _ = f.reconcilePlacement(wsA, "p")
	if c := condition(p, schedulingv1alpha1.PlacementUnscheduling); c.Status != metav1.ConditionFalse {
		t.Fatalf("Unscheduling = %+v after the removal, want False", c)
	}
}

// TestPlacementDeletionPolicyAnnotation: scheduling writes the Placement's policy in the
// same patch as the placement; a policy change is carried to every placed namespace; a
// namespace placed before the annotation existed is not written while the policy is the
// default.
func TestPlacementDeletionPolicyAnnotation(t *testing.T) {
	f := newFixture(t)
	k1 := f.syncTarget("t1")
	f.location("loc", nil, nil)
	f.placement(wsA, "p", nsSelector())
	placedNamespace(f, k1) // placed without the annotation
	f.namespace(wsA, "fresh", nil)
	f.step(wsA, "app")
	f.step(wsA, "fresh")
	if n := countActions(f.kube[wsA].Actions(), "patch", ""); n != 1 {
		t.Fatalf("%d patches, want 1 (scheduling fresh, policy included)", n)
	}
	if got := f.ns(wsA, "fresh").Annotations[workloadv1alpha1.DeletionPolicyAnnotation]; got != workloadv1alpha1.DeletionPolicyDelete {
		t.Fatalf("fresh deletion policy %q, want Delete", got)
	}
	if _, ok := f.ns(wsA, "app").Annotations[workloadv1alpha1.DeletionPolicyAnnotation]; ok {
		t.Fatal("app was written only to add the default policy")
	}

	f.updatePlacement(wsA, "p", func(p *schedulingv1alpha1.Placement) { p.Spec.DeletionPolicy = schedulingv1alpha1.DeletionPolicyOrphan })
	f.step(wsA, "app")
	f.step(wsA, "fresh")
	for _, name := range []string{"app", "fresh"} {
		if got := f.ns(wsA, name).Annotations[workloadv1alpha1.DeletionPolicyAnnotation]; got != workloadv1alpha1.DeletionPolicyOrphan {
			t.Fatalf("%s deletion policy %q after the change, want Orphan", name, got)
		}
	}
	f.updatePlacement(wsA, "p", func(p *schedulingv1alpha1.Placement) { p.Spec.DeletionPolicy = "" })
	f.step(wsA, "app")
	if got := f.ns(wsA, "app").Annotations[workloadv1alpha1.DeletionPolicyAnnotation]; got != workloadv1alpha1.DeletionPolicyDelete {
		t.Fatalf("app deletion policy %q after going back to the default, want Delete", got)
	}
}
