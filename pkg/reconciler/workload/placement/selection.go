package placement

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// A selector that cannot be evaluated is not a selector that selects nothing. The CRDs
// reject invalid operators, but a Placement stored before that validation (or written
// around it, or with a key or value the CRD cannot check cheaply) can still hold one.
// Reading it as "selects nothing" unscheduled every namespace it placed at once (issue 11);
// instead the decisions it could change are kept as they are.

// selects reports whether p selects ns. The error says that p's namespaceSelector cannot
// be evaluated: p might select ns or not. A Placement being deleted selects nothing (its
// deletion is deliberate), whatever its selector.
func selects(p *schedulingv1alpha1.Placement, ns *corev1.Namespace) (bool, error) {
	if p.DeletionTimestamp != nil || p.Spec.NamespaceSelector == nil {
		return false, nil
	}
	sel, err := namespaceSelector(p)
	if err != nil {
		return false, err
	}
	return sel.Matches(labels.Set(ns.Labels)), nil
}

func namespaceSelector(p *schedulingv1alpha1.Placement) (labels.Selector, error) {
	sel, err := metav1.LabelSelectorAsSelector(p.Spec.NamespaceSelector)
	if err != nil {
		return nil, fmt.Errorf("namespaceSelector cannot be evaluated: %w", err)
	}
	return sel, nil
}

// namespaceSelectorError returns why p's namespaceSelector cannot be evaluated, nil if it
// can (or p is being deleted or has none).
func namespaceSelectorError(p *schedulingv1alpha1.Placement) error {
	if p.DeletionTimestamp != nil || p.Spec.NamespaceSelector == nil {
		return nil
	}
	_, err := namespaceSelector(p)
	return err
}

// fate is what the Placements of a workspace decide for one namespace.
type fate struct {
	// placement is the Placement the namespace follows: the first by name that selects it,
	// or, when frozen, the one that placed it (nil if none or gone).
	placement *schedulingv1alpha1.Placement
	// frozen, when not empty, says why nothing may change for the namespace: a Placement
	// whose namespaceSelector cannot be evaluated might take it.
	frozen string
}

// fateOf decides which Placement a namespace follows. The first Placement by name that
// selects it wins. A Placement whose namespaceSelector cannot be evaluated might select
// it; when such a Placement sorts before the winner (or there is no winner), the namespace
// keeps every current decision if following the winner would take it away from the
// Placement that placed it: no unscheduling and no move to another Placement. A namespace
// that no Placement placed yet, or that stays with its Placement, follows the winner
// (scheduling it, or keeping it where it is, destroys nothing).
func fateOf(sorted []*schedulingv1alpha1.Placement, ns *corev1.Namespace) fate {
	var winner, undecidable *schedulingv1alpha1.Placement
	var undecidableErr error
	for _, p := range sorted {
		ok, err := selects(p, ns)
		if err != nil {
			if undecidable == nil {
				undecidable, undecidableErr = p, err
			}
			continue
		}
		if ok {
			winner = p
			break
		}
	}
	current := ns.Annotations[schedulingv1alpha1.PlacementAnnotationKey]
	if undecidable == nil || current == "" || (winner != nil && winner.Name == current) {
		return fate{placement: winner}
	}
	out := fate{frozen: fmt.Sprintf("Placement %s might select the namespace but cannot be evaluated (%v)", undecidable.Name, undecidableErr)}
	for _, p := range sorted {
		if p.Name == current {
			out.placement = p
		}
	}
	return out
}

func sortedPlacements(wl *workloadWorkspace) []*schedulingv1alpha1.Placement {
	placements, _ := wl.placements.List(labels.Everything())
	sort.Slice(placements, func(i, j int) bool { return placements[i].Name < placements[j].Name })
	return placements
}

// deletionPolicy returns the Placement's deletion policy, Delete when unset.
func deletionPolicy(p *schedulingv1alpha1.Placement) schedulingv1alpha1.DeletionPolicy {
	if p.Spec.DeletionPolicy == "" {
		return schedulingv1alpha1.DeletionPolicyDelete
	}
	return p.Spec.DeletionPolicy
}

// setDeletionPolicy writes p's deletion policy to the namespace annotation the syncer reads
// when it removes a copy, so it follows the Placement's changes. An absent annotation means
// Delete, so a namespace placed before the annotation existed is not written for it alone.
func setDeletionPolicy(patch *metaPatch, p *schedulingv1alpha1.Placement) {
	policy := string(deletionPolicy(p))
	current := patch.value(workloadv1alpha1.DeletionPolicyAnnotation)
	if patch.empty() && policyOrDefault(current) == policy {
		return
	}
	patch.setAnnotation(workloadv1alpha1.DeletionPolicyAnnotation, policy)
}
