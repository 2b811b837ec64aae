package resource

import (
	"maps"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// metaAccessor unwraps tombstones and returns the object's metadata.
func metaAccessor(obj interface{}) (metav1.Object, error) {
	if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tombstone.Obj
	}
	return meta.Accessor(obj)
}

// stateLabelKeys returns, sorted, the SyncTarget keys of the state labels in labels.
func stateLabelKeys(labels map[string]string) []string {
	var out []string
	for k := range labels {
		if stKey, ok := workloadv1alpha1.SyncTargetKeyFromLabel(workloadv1alpha1.ClusterResourceStateLabelPrefix, k); ok {
			out = append(out, stKey)
		}
	}
	sort.Strings(out)
	return out
}

// objectHandler queues objects whose labels or annotations changed (and every object on a
// resync), and tells the state handlers about state-label changes.
func (c *Controller) objectHandler(workspace string, gvr schema.GroupVersionResource) cache.ResourceEventHandler {
	enqueue := func(o metav1.Object) {
		c.queue.Add(objectKey{workspace: workspace, gvr: gvr, namespace: o.GetNamespace(), name: o.GetName()})
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) {
			o, err := metaAccessor(obj)
			if err != nil {
				return
			}
			enqueue(o)
			if len(stateLabelKeys(o.GetLabels())) > 0 {
				c.notifyStateChange(workspace)
			}
		},
		UpdateFunc: func(oldObj, newObj interface{}) {
			oldO, err := metaAccessor(oldObj)
			if err != nil {
				return
			}
			newO, err := metaAccessor(newObj)
			if err != nil {
				return
			}
			resync := oldO.GetResourceVersion() == newO.GetResourceVersion()
			if resync || !maps.Equal(oldO.GetLabels(), newO.GetLabels()) || !maps.Equal(oldO.GetAnnotations(), newO.GetAnnotations()) {
				enqueue(newO)
			}
			if !slices.Equal(stateLabelKeys(oldO.GetLabels()), stateLabelKeys(newO.GetLabels())) {
				c.notifyStateChange(workspace)
			}
		},
		DeleteFunc: func(obj interface{}) {
			o, err := metaAccessor(obj)
			if err != nil {
				return
			}
			if len(stateLabelKeys(o.GetLabels())) > 0 {
				c.notifyStateChange(workspace)
			}
		},
	}
}

// namespaceHandler queues every object of a namespace whose placement (state labels or
// deletion annotations) changed.
func (c *Controller) namespaceHandler(workspace string) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) {
			ns, ok := obj.(*corev1.Namespace)
			if ok && !namespaceStateOf(ns).empty() {
				c.enqueueNamespace(workspace, ns.Name)
			}
		},
		UpdateFunc: func(oldObj, newObj interface{}) {
			oldNs, ok := oldObj.(*corev1.Namespace)
			if !ok {
				return
			}
			newNs, ok := newObj.(*corev1.Namespace)
			if !ok {
				return
			}
			if !namespaceStateOf(oldNs).equal(namespaceStateOf(newNs)) {
				c.enqueueNamespace(workspace, newNs.Name)
			}
		},
		// A deleted namespace takes its objects with it; their own events follow.
	}
}

// enqueueNamespace queues every cached object of a synced type in the namespace.
func (c *Controller) enqueueNamespace(workspace, namespace string) {
	for _, t := range c.typesOf(workspace) {
		keys, err := t.informer.GetIndexer().IndexKeys(cache.NamespaceIndex, namespace)
		if err != nil {
			continue
		}
		for _, key := range keys {
			ns, name, err := cache.SplitMetaNamespaceKey(key)
			if err != nil {
				continue
			}
			c.queue.Add(objectKey{workspace: workspace, gvr: t.gvr, namespace: ns, name: name})
		}
	}
}
