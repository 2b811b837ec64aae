package placement

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// Automatic failover moves a namespace off a SyncTarget that has not been Ready for the
// grace period. For a namespace with persistent data that is a loss, not a recovery: the
// new cluster's PersistentVolumeClaims start empty, and the old ones are deleted once the
// old target heals. Unless its Placement allows it (spec.statefulFailover: Allowed), such a
// namespace stays where its data is; a drain (spec.evictAfter) still moves it.
//
// Persistent data is seen from two sides: upstream, PersistentVolumeClaims synced from
// there and StatefulSets whose volumeClaimTemplates make claims downstream; downstream, the
// namespaces whose copies hold claims of any origin (an operator's, say), which each
// target's syncer reports in status.workspaceHealth[].persistentNamespaces. The last report
// stays on a target whose syncer went silent, which is when failover asks.

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

// reportedPersistentData names the persistent data st's syncer last reported for a
// namespace of workspace ("" if none): claims on its cluster, or a report too long to list
// every namespace (then each one of the workspace counts).
func reportedPersistentData(st *workloadv1alpha1.SyncTarget, workspace, namespace string) string {
	if st == nil {
		return ""
	}
	for _, h := range st.Status.WorkspaceHealth {
		if h.Path != workspace {
			continue
		}
		if slices.Contains(h.PersistentNamespaces, namespace) {
			return fmt.Sprintf("PersistentVolumeClaims on the cluster of SyncTarget %s (reported by its syncer)", st.Name)
		}
		if h.PersistentNamespacesTruncated {
			return fmt.Sprintf("possibly PersistentVolumeClaims on the cluster of SyncTarget %s (its syncer reported more namespaces with claims than it lists)", st.Name)
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
func (c *Controller) failoverHold(wl *workloadWorkspace, namespace string, p *schedulingv1alpha1.Placement) func(*workloadv1alpha1.SyncTarget) string {
	return func(st *workloadv1alpha1.SyncTarget) string {
		if p.Spec.StatefulFailover == schedulingv1alpha1.StatefulFailoverAllowed {
			return ""
		}
		data := c.persistentData(wl, namespace)
		if data == "" {
			data = reportedPersistentData(st, wl.path, namespace)
		}
		if data == "" {
			return ""
		}
		return fmt.Sprintf("the namespace holds %s, which automatic failover would leave behind, and Placement %s has statefulFailover %s",
			data, p.Name, schedulingv1alpha1.StatefulFailoverNever)
	}
}
