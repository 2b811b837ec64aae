package integration

import (
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/tmc-dev/tmc/pkg/localenv"
	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
)

// selectorCase is a label selector and the part of the apiserver's error it must produce
// ("" when it is valid).
type selectorCase struct {
	name    string
	sel     metav1.LabelSelector
	wantErr string
}

func requirement(key string, op metav1.LabelSelectorOperator, values ...string) metav1.LabelSelector {
	return metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

var selectorCases = []selectorCase{
	{name: "matchLabels", sel: metav1.LabelSelector{MatchLabels: map[string]string{"team": "a", "example.com/tier": "gold"}}},
	{name: "empty", sel: metav1.LabelSelector{}},
	{name: "In", sel: requirement("team", metav1.LabelSelectorOpIn, "a", "b")},
	{name: "NotIn", sel: requirement("team", metav1.LabelSelectorOpNotIn, "a")},
	{name: "Exists", sel: requirement("team", metav1.LabelSelectorOpExists)},
	{name: "DoesNotExist", sel: requirement("team", metav1.LabelSelectorOpDoesNotExist)},
	// Issue 11: this typo was accepted and unscheduled every namespace the Placement held.
	{name: "lower-case in", sel: requirement("team", "in", "a"), wantErr: "operator must be one of In, NotIn, Exists, DoesNotExist"},
	{name: "unknown operator", sel: requirement("team", "Equals", "a"), wantErr: "operator must be one of"},
	{name: "In without values", sel: requirement("team", metav1.LabelSelectorOpIn), wantErr: "values must be non-empty"},
	{name: "Exists with values", sel: requirement("team", metav1.LabelSelectorOpExists, "a"), wantErr: "values must be empty"},
	{name: "second requirement invalid", sel: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "team", Operator: metav1.LabelSelectorOpExists}, {Key: "tier", Operator: "notin", Values: []string{"x"}}}},
		wantErr: "operator must be one of"},
}

// TestPlacementSelectorValidation creates Placements and Locations on a real apiserver with
// the project's CRDs: every operator and values combination metav1.LabelSelectorAsSelector
// refuses is rejected at admission, in namespaceSelector, locationSelectors and
// instanceSelector, and the enums and defaults of deletionPolicy and statefulFailover hold.
// The syntax of keys and values is not checked at admission: CEL's format library on the
// unbounded strings of metav1.LabelSelector exceeds the apiserver's cost budget; the
// placement controller keeps every decision of a selector it cannot parse instead.
func TestPlacementSelectorValidation(t *testing.T) {
	ctx := t.Context()
	const ws = "root:org:team-a"
	env := localenv.StartForTest(t, localenv.Options{Workspaces: []string{ws}, NoWorkspaceControllers: true})
	cfg := env.Workspace(ws).AdminConfig()
	if err := localenv.InstallCRDs(ctx, cfg); err != nil {
		t.Fatalf("the apiserver refused the CRDs (a CEL rule over the cost budget?): %v", err)
	}
	client, err := tmcclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, sc selectorCase, err error) {
		t.Helper()
		switch {
		case sc.wantErr == "" && err != nil:
			t.Fatalf("valid selector %+v rejected: %v", sc.sel, err)
		case sc.wantErr != "" && !apierrors.IsInvalid(err):
			t.Fatalf("selector %+v: got %v, want Invalid", sc.sel, err)
		case sc.wantErr != "" && !strings.Contains(err.Error(), sc.wantErr):
			t.Fatalf("selector %+v: error %q does not say %q", sc.sel, err, sc.wantErr)
		}
	}
	for _, sc := range selectorCases {
		t.Run("namespaceSelector/"+sc.name, func(t *testing.T) {
			sel := sc.sel
			_, err := client.SchedulingV1alpha1().Placements().Create(ctx, &schedulingv1alpha1.Placement{
				ObjectMeta: metav1.ObjectMeta{GenerateName: "ns-"},
				Spec:       schedulingv1alpha1.PlacementSpec{LocationWorkspace: "root:org:locations", NamespaceSelector: &sel},
			}, metav1.CreateOptions{})
			check(t, sc, err)
		})
		t.Run("locationSelectors/"+sc.name, func(t *testing.T) {
			_, err := client.SchedulingV1alpha1().Placements().Create(ctx, &schedulingv1alpha1.Placement{
				ObjectMeta: metav1.ObjectMeta{GenerateName: "loc-"},
				Spec: schedulingv1alpha1.PlacementSpec{LocationWorkspace: "root:org:locations",
					LocationSelectors: []metav1.LabelSelector{{}, sc.sel}},
			}, metav1.CreateOptions{})
			check(t, sc, err)
		})
		t.Run("instanceSelector/"+sc.name, func(t *testing.T) {
			sel := sc.sel
			_, err := client.SchedulingV1alpha1().Locations().Create(ctx, &schedulingv1alpha1.Location{
				ObjectMeta: metav1.ObjectMeta{GenerateName: "inst-"},
				Spec:       schedulingv1alpha1.LocationSpec{InstanceSelector: &sel},
			}, metav1.CreateOptions{})
			check(t, sc, err)
		})
	}

	t.Run("updates are validated too", func(t *testing.T) {
		p, err := client.SchedulingV1alpha1().Placements().Create(ctx, &schedulingv1alpha1.Placement{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: schedulingv1alpha1.PlacementSpec{LocationWorkspace: "root:org:locations",
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.DeletionPolicy != schedulingv1alpha1.DeletionPolicyDelete || p.Spec.StatefulFailover != schedulingv1alpha1.StatefulFailoverNever {
			t.Fatalf("defaults: deletionPolicy %q statefulFailover %q, want Delete and Never", p.Spec.DeletionPolicy, p.Spec.StatefulFailover)
		}
		sel := requirement("team", "in", "a")
		p.Spec.NamespaceSelector = &sel
		if _, err := client.SchedulingV1alpha1().Placements().Update(ctx, p, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
			t.Fatalf("update to operator in: got %v, want Invalid", err)
		}
	})

	t.Run("policy enums", func(t *testing.T) {
		dyn, err := dynamic.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		placements := dyn.Resource(schema.GroupVersionResource{Group: "scheduling.kcp.io", Version: "v1alpha1", Resource: "placements"})
		for _, spec := range []map[string]any{
			{"locationWorkspace": "root:org:locations", "deletionPolicy": "orphan"},
			{"locationWorkspace": "root:org:locations", "statefulFailover": "Always"},
		} {
			u := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "scheduling.kcp.io/v1alpha1", "kind": "Placement",
				"metadata": map[string]any{"generateName": "enum-"}, "spec": spec}}
			if _, err := placements.Create(ctx, u, metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "Unsupported value") {
				t.Errorf("spec %v: got %v, want Invalid: Unsupported value", spec, err)
			}
		}
	})
}
