package placement

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func TestPlacementNamespaceSelector(t *testing.T) {
	cases := []struct {
		name       string
		placements map[string]*metav1.LabelSelector
		nsLabels   map[string]string
		want       string // placement annotation; "" means not scheduled
	}{
		{name: "nil selector matches nothing", placements: map[string]*metav1.LabelSelector{"p": nil}, nsLabels: labelMap("team", "a")},
		{name: "empty selector matches everything", placements: map[string]*metav1.LabelSelector{"p": {}}, want: "p"},
		{name: "matching labels", placements: map[string]*metav1.LabelSelector{"p": nsSelector("team", "a")}, nsLabels: labelMap("team", "a"), want: "p"},
		{name: "non-matching labels", placements: map[string]*metav1.LabelSelector{"p": nsSelector("team", "b")}, nsLabels: labelMap("team", "a")},
		{name: "several match: first by name wins",
			placements: map[string]*metav1.LabelSelector{"zz": {}, "mm": nsSelector("team", "a"), "aa": nsSelector("team", "b")},
			nsLabels:   labelMap("team", "a"), want: "mm"},
		{name: "an unevaluable selector schedules nothing new",
			placements: map[string]*metav1.LabelSelector{"p": {MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Bogus"}}}},
			nsLabels:   labelMap("team", "a")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			key := f.syncTarget("t1")
			f.location("loc", nil, nil)
			for name, sel := range tc.placements {
				f.placement(wsA, name, sel)
			}
			f.namespace(wsA, "ns", tc.nsLabels)
			f.step(wsA, "ns")
			ns := f.ns(wsA, "ns")
			if got := ns.Annotations[schedulingv1alpha1.PlacementAnnotationKey]; got != tc.want {
				t.Fatalf("placement annotation %q, want %q", got, tc.want)
			}
			scheduled := ns.Labels[workloadv1alpha1.ClusterResourceStateLabel(key)] == workloadv1alpha1.ResourceStateSync
			if scheduled != (tc.want != "") {
				t.Fatalf("scheduled = %v, want %v (labels %v)", scheduled, tc.want != "", ns.Labels)
			}
		})
	}
}

// spreadSetup creates two Ready targets and namespaces ns1..nsN in wsA selected by p.
func spreadSetup(t *testing.T, n int) (*fixture, string, string) {
	f := newFixture(t)
	k1 := f.syncTarget("t1")
	k2 := f.syncTarget("t2")
	f.location("loc", nil, nil)
	f.placement(wsA, "p", nsSelector())
	for i := 1; i <= n; i++ {
		f.namespace(wsA, fmt.Sprintf("ns%d", i), nil)
	}
	f.sync()
	return f, k1, k2
}

func assignment(f *fixture, n int) map[string]string {
	out := map[string]string{}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("ns%d", i)
		targets := f.targetsOf(wsA, name)
		if len(targets) != 1 {
			f.t.Fatalf("namespace %s on %v, want exactly one target", name, targets)
		}
		out[name] = targets[0]
	}
	return out
}

func TestPlacementSpreadAcrossTargets(t *testing.T) {
	// Reconciled back to back without the caches catching up in between: the assumed
	// writes must count, or all three would land on the same target.
	f, k1, k2 := spreadSetup(t, 3)
	for i := 1; i <= 3; i++ {
		f.reconcileNS(wsA, fmt.Sprintf("ns%d", i))
	}
	got := assignment(f, 3)
	counts := map[string]int{}
	for _, k := range got {
		counts[k]++
	}
	if spread := []int{counts[k1], counts[k2]}; !slices.Equal(spread, []int{2, 1}) && !slices.Equal(spread, []int{1, 2}) {
		t.Fatalf("spread %v, want 2/1 over t1 and t2", counts)
	}
	if n := countActions(f.kube[wsA].Actions(), "patch", ""); n != 3 {
		t.Fatalf("%d namespace patches, want 3", n)
	}

	// Determinism: a fresh controller on fresh clients decides the same, also when the
	// caches catch up between the decisions.
	g, _, _ := spreadSetup(t, 3)
	for i := 1; i <= 3; i++ {
		g.step(wsA, fmt.Sprintf("ns%d", i))
	}
	if again := assignment(g, 3); !mapsEqual(again, got) {
		t.Fatalf("fresh controller decided %v, first one %v", again, got)
	}

	// Restart: nothing moves and nothing is written.
	f.sync()
	before := countActions(f.kube[wsA].Actions(), "patch", "")
	f.restart()
	for i := 1; i <= 3; i++ {
		f.step(wsA, fmt.Sprintf("ns%d", i))
	}
	if after := countActions(f.kube[wsA].Actions(), "patch", ""); after != before {
		t.Fatalf("%d patches after a restart, want none", after-before)
	}
	if again := assignment(f, 3); !mapsEqual(again, got) {
		t.Fatalf("after restart %v, before %v", again, got)
	}
}

func TestPlacementSpreadCountsAllWorkspaces(t *testing.T) {
	f := newFixture(t)
	k1 := f.syncTarget("t1")
	k2 := f.syncTarget("t2")
	f.location("loc", nil, nil)
	f.placement(wsB, "p", nsSelector())
	f.placement(wsA, "p", nsSelector())
	// Two namespaces of team-b already on t1.
	for _, name := range []string{"b1", "b2"} {
		_, err := f.kube[wsB].CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels:      map[string]string{workloadv1alpha1.ClusterResourceStateLabel(k1): "Sync"},
			Annotations: map[string]string{schedulingv1alpha1.PlacementAnnotationKey: "p"}}}, metav1.CreateOptions{})
		must(t, err)
	}
	f.namespace(wsA, "a1", nil)
	f.namespace(wsA, "a2", nil)
	f.step(wsA, "a1")
	f.step(wsA, "a2")
	if got := [][]string{f.targetsOf(wsA, "a1"), f.targetsOf(wsA, "a2")}; !slices.Equal(got[0], []string{k2}) || !slices.Equal(got[1], []string{k2}) {
		t.Fatalf("team-a namespaces on %v, want both on t2 (t1 carries team-b's two)", got)
	}
}

func TestPlacementStability(t *testing.T) {
	f := newFixture(t)
	k1 := f.syncTarget("t1")
	f.syncTarget("t2")
	f.location("loc", nil, nil)
	f.placement(wsA, "p", nsSelector())
	for _, name := range []string{"ns1", "ns2", "ns3"} {
		_, err := f.kube[wsA].CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels:      map[string]string{workloadv1alpha1.ClusterResourceStateLabel(k1): "Sync"},
			Annotations: map[string]string{schedulingv1alpha1.PlacementAnnotationKey: "p"}}}, metav1.CreateOptions{})
		must(t, err)
	}
	for _, name := range []string{"ns1", "ns2", "ns3"} {
		if d := f.step(wsA, name); d != 0 {
			t.Fatalf("requeue %v for a healthy target", d)
		}
		if got := f.targetsOf(wsA, name); !slices.Equal(got, []string{k1}) {
			t.Fatalf("%s moved to %v although t1 is valid", name, got)
		}
	}
	if n := countActions(f.kube[wsA].Actions(), "patch", ""); n != 0 {
		t.Fatalf("%d patches, want none", n)
	}
}

func TestPlacementCordonedTarget(t *testing.T) {
	f := newFixture(t)
	k1 := f.syncTarget("t1", cordoned)
	k2 := f.syncTarget("t2")
	f.location("loc", nil, nil)
	f.placement(wsA, "p", nsSelector())
	_, err := f.kube[wsA].CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "old",
		Labels:      map[string]string{workloadv1alpha1.ClusterResourceStateLabel(k1): "Sync"},
		Annotations: map[string]string{schedulingv1alpha1.PlacementAnnotationKey: "p"}}}, metav1.CreateOptions{})
	must(t, err)
	// t2 is busier, but t1 is cordoned.
	for i := 0; i < 3; i++ {
		f.namespace(wsB, fmt.Sprintf("b%d", i), map[string]string{workloadv1alpha1.ClusterResourceStateLabel(k2): "Sync"})
	}
	for i := 0; i < 3; i++ {
		f.namespace(wsA, fmt.Sprintf("new%d", i), nil)
		f.step(wsA, fmt.Sprintf("new%d", i))
		if got := f.targetsOf(wsA, fmt.Sprintf("new%d", i)); !slices.Equal(got, []string{k2}) {
			t.Fatalf("new namespace on %v, want t2 only", got)
		}
	}
	f.step(wsA, "old")
	if got := f.targetsOf(wsA, "old"); !slices.Equal(got, []string{k1}) {
		t.Fatalf("existing namespace on %v, want it kept on cordoned t1", got)
	}
	if _, ok := f.ns(wsA, "old").Annotations[workloadv1alpha1.DeletionAnnotation(k1)]; ok {
		t.Fatal("cordoned target got a deletion annotation")
	}
}

func TestPlacementTypesInUse(t *testing.T) {
	inUse := map[string][]workloadv1alpha1.ResourceToSync{
		"web":  {{Group: "apps", Resource: "deployments"}, {Group: "networking.k8s.io", Resource: "ingresses"}},
		"jobs": {{Group: "batch", Resource: "cronjobs"}},
	}
	f := newFixture(t, func(o *Options) {
		o.TypesInUse = func(ws, ns string) []workloadv1alpha1.ResourceToSync { return inUse[ns] }
	})
	f.syncTarget("t1", accepting("deployments.apps", "configmaps"))
	k2 := f.syncTarget("t2", accepting("deployments.apps", "ingresses.networking.k8s.io"))
	f.location("loc", nil, nil)
	f.placement(wsA, "p", nsSelector())
	f.namespace(wsA, "web", nil)
	f.namespace(wsA, "jobs", nil)
	for _, name := range []string{"web", "jobs"} {
		f.step(wsA, name)
	}
	if got := f.targetsOf(wsA, "web"); !slices.Equal(got, []string{k2}) {
		t.Fatalf("web on %v, want t2 (only one accepting ingresses)", got)
	}
	if got := f.targetsOf(wsA, "jobs"); len(got) != 0 {
		t.Fatalf("jobs on %v, want unscheduled (no target accepts cronjobs)", got)
	}
	p, _ := f.reconcilePlacement(wsA, "p")
	c := condition(p, schedulingv1alpha1.PlacementScheduled)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != schedulingv1alpha1.ReasonNoValidTarget || !strings.Contains(c.Message, "jobs") {
		t.Fatalf("Scheduled = %+v, want False NoValidTarget naming jobs", c)
	}
	if events := f.events(wsA); !containsEvent(events, "Warning Unschedulable") {
		t.Fatalf("events %v, want an Unschedulable warning", events)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func containsEvent(events []string, prefix string) bool {
	for _, e := range events {
		if strings.HasPrefix(e, prefix) {
			return true
		}
	}
	return false
}
