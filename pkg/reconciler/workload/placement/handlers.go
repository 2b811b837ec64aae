package placement

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
)

// placementChanged queues the Placement and, when what namespaces depend on changed, every
// namespace of its workspace: the selector, the Location or the Placement's existence may
// have changed for any of them.
func (c *Controller) placementChanged(path string, obj any, namespacesToo bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if name, ok := nameOf(obj); ok {
		c.placementQueue.Add(queueKey{workspace: path, name: name})
	}
	if namespacesToo {
		c.enqueueNamespaces(path)
	}
}

// placementInputsChanged reports whether an update can change a namespace's decision: the
// spec, the deletion, or the selected Location (which new namespaces follow). Updates of
// the rest of the status, mostly this controller's own, do not wake every namespace.
func placementInputsChanged(oldObj, newObj any) bool {
	oldP, ok1 := oldObj.(*schedulingv1alpha1.Placement)
	newP, ok2 := newObj.(*schedulingv1alpha1.Placement)
	if !ok1 || !ok2 {
		return true
	}
	return !equality.Semantic.DeepEqual(oldP.Spec, newP.Spec) ||
		(oldP.DeletionTimestamp == nil) != (newP.DeletionTimestamp == nil) ||
		!equality.Semantic.DeepEqual(oldP.Status.SelectedLocation, newP.Status.SelectedLocation)
}

// namespaceChanged queues the namespace and the Placements of its workspace (their phase
// and Scheduled condition count namespaces).
func (c *Controller) namespaceChanged(path string, obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return
	}
	c.assumed.observe(path, ns)
	c.namespaceQueue.Add(queueKey{workspace: path, name: ns.Name})
	c.enqueuePlacements(path)
}

// objectChanged queues the namespace of an object that carries (or carried) a state label:
// its readiness on a new target or the loss of an old target's label can complete a move.
// With always, any object of the type queues its namespace (persistent data decides
// whether failover may move it).
func (c *Controller) objectChanged(path string, oldObj, newObj any, always bool) {
	if d, ok := newObj.(cache.DeletedFinalStateUnknown); ok {
		newObj = d.Obj
	}
	for _, obj := range []any{oldObj, newObj} {
		m, ok := obj.(interface {
			GetNamespace() string
			GetLabels() map[string]string
		})
		if !ok || m.GetNamespace() == "" || (!always && !hasStateLabel(m.GetLabels())) {
			continue
		}
		c.namespaceQueue.Add(queueKey{workspace: path, name: m.GetNamespace()})
		return
	}
}

// enqueueForLocationWorkspace queues the Placements that use a location workspace and the
// namespaces of their workspaces.
func (c *Controller) enqueueForLocationWorkspace(locationPath string) {
	for path, wl := range c.workloadWorkspaces() {
		placements, err := wl.placements.List(labels.Everything())
		if err != nil {
			continue
		}
		uses := false
		for _, p := range placements {
			if p.Spec.LocationWorkspace == locationPath {
				uses = true
				c.placementQueue.Add(queueKey{workspace: path, name: p.Name})
			}
		}
		if uses {
			c.enqueueNamespaces(path)
		}
	}
}

func (c *Controller) enqueueNamespaces(path string) {
	wl, ok := c.workloadWorkspace(path)
	if !ok {
		return
	}
	namespaces, err := wl.namespaces.List(labels.Everything())
	if err != nil {
		return
	}
	for _, ns := range namespaces {
		c.namespaceQueue.Add(queueKey{workspace: path, name: ns.Name})
	}
}

func (c *Controller) enqueuePlacements(path string) {
	wl, ok := c.workloadWorkspace(path)
	if !ok {
		return
	}
	placements, err := wl.placements.List(labels.Everything())
	if err != nil {
		return
	}
	for _, p := range placements {
		c.placementQueue.Add(queueKey{workspace: path, name: p.Name})
	}
}

func nameOf(obj any) (string, bool) {
	m, ok := obj.(interface{ GetName() string })
	if !ok {
		return "", false
	}
	return m.GetName(), true
}
