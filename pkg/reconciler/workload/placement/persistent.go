package placement

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
)

// Automatic failover moves a namespace off a SyncTarget that has not been Ready for the
// grace period. For a namespace with persistent data that is a loss, not a recovery: the
// new cluster's PersistentVolumeClaims start empty, and the old ones are deleted once the
// old target heals. Unless its Placement allows it (spec.statefulFailover: Allowed), such a
// namespace stays where its data is; a drain (spec.evictAfter) still moves it.
//
// The controller sees only the upstream side: PersistentVolumeClaims synced from there
// and StatefulSets whose volumeClaimTemplates make claims downstream. Claims created on
// the physical cluster by anything else are invisible to it and do not hold a namespace.

// persistentData names the persistent data a namespace holds upstream ("" if none): its
// first PersistentVolumeClaim, or its first StatefulSet with volumeClaimTemplates.
func (c *Controller) persistentData(wl *workloadWorkspace, namespace string) string {
	if lister, ok := wl.objects[persistentVolumeClaimsGVR]; ok {
		objs, err := lister.ByNamespace(namespace).List(labels.Everything())
		if err != nil {
			// Unknown is not none: hold rather than move data away.
			return fmt.Sprintf("persistent volume claims that could not be listed (%v)", err)
		}
		if name, n := firstName(objs, nil); n > 0 {
			return countedName("PersistentVolumeClaim", name, n)
		}
	}
	if lister, ok := wl.objects[statefulSetsGVR]; ok {
		objs, err := lister.ByNamespace(namespace).List(labels.Everything())
		if err != nil {
			return fmt.Sprintf("stateful sets that could not be listed (%v)", err)
		}
		withClaims := func(u *unstructured.Unstructured) bool {
			templates, _, _ := unstructured.NestedSlice(u.Object, "spec", "volumeClaimTemplates")
			return len(templates) > 0
		}
		if name, n := firstName(objs, withClaims); n > 0 {
			return countedName("StatefulSet", name, n) + " with volumeClaimTemplates"
		}
	}
	return ""
}

// firstName returns the smallest name among the objects keep accepts (nil: all) and how
// many there are.
func firstName(objs []runtime.Object, keep func(*unstructured.Unstructured) bool) (string, int) {
	first, n := "", 0
	for _, obj := range objs {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok || (keep != nil && !keep(u)) {
			continue
		}
		n++
		if first == "" || u.GetName() < first {
			first = u.GetName()
		}
	}
	return first, n
}

func countedName(kind, name string, n int) string {
	if n == 1 {
		return kind + " " + name
	}
	return fmt.Sprintf("%s %s and %d more", kind, name, n-1)
}

// failoverHold returns, for judge, the reason a namespace must not be moved by automatic
// failover: it holds persistent data and p does not allow stateful failover. Called only
// when a target's grace period has run out, so the common case lists nothing.
func (c *Controller) failoverHold(wl *workloadWorkspace, namespace string, p *schedulingv1alpha1.Placement) func() string {
	return func() string {
		if p.Spec.StatefulFailover == schedulingv1alpha1.StatefulFailoverAllowed {
			return ""
		}
		data := c.persistentData(wl, namespace)
		if data == "" {
			return ""
		}
		return fmt.Sprintf("the namespace holds %s, which automatic failover would leave behind, and Placement %s has statefulFailover %s",
			data, p.Name, schedulingv1alpha1.StatefulFailoverNever)
	}
}
