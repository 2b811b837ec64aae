package placement

import (
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

var (
	deploymentsGVR            = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	statefulSetsGVR           = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}
	persistentVolumeClaimsGVR = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}
)

// readinessTypes are the workloads whose readiness on the new target gates the removal from
// the old one; every other type is considered ready as soon as it is synced.
var readinessTypes = []schema.GroupVersionResource{deploymentsGVR, statefulSetsGVR}

// watchedObjectTypes are the default synced types (workloadv1alpha1.DefaultResources): their
// changes wake the namespace, and without Options.ObjectsLabelledFor they are what is
// counted before a target's label is removed from a namespace.
var watchedObjectTypes = []schema.GroupVersionResource{
	{Version: "v1", Resource: "configmaps"},
	{Version: "v1", Resource: "secrets"},
	{Version: "v1", Resource: "serviceaccounts"},
	{Version: "v1", Resource: "services"},
	persistentVolumeClaimsGVR,
	deploymentsGVR,
	statefulSetsGVR,
	{Group: "batch", Version: "v1", Resource: "jobs"},
	{Group: "batch", Version: "v1", Resource: "cronjobs"},
	{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"},
}

// workloadsReady reports whether every Deployment and StatefulSet of the namespace (not
// being deleted) reports, in the status annotation of stKey, readyReplicas >= spec.replicas
// (default 1). If not, it names the first one that is not ready and why.
func (c *Controller) workloadsReady(wl *workloadWorkspace, namespace, stKey string) (bool, string) {
	annotation := workloadv1alpha1.StatusAnnotation(stKey)
	for _, gvr := range readinessTypes {
		lister, ok := wl.objects[gvr]
		if !ok {
			continue
		}
		objs, err := lister.ByNamespace(namespace).List(labels.Everything())
		if err != nil {
			return false, fmt.Sprintf("failed to list %s: %v", gvr.Resource, err)
		}
		for _, obj := range objs {
			u, ok := obj.(*unstructured.Unstructured)
			if !ok || u.GetDeletionTimestamp() != nil {
				continue
			}
			if ready, why := workloadReady(u, annotation); !ready {
				return false, fmt.Sprintf("%s %s: %s", gvr.Resource, u.GetName(), why)
			}
		}
	}
	return true, ""
}

func workloadReady(u *unstructured.Unstructured, annotation string) (bool, string) {
	raw, ok := u.GetAnnotations()[annotation]
	if !ok || raw == "" {
		return false, "no status from the new SyncTarget yet"
	}
	var status struct {
		ReadyReplicas int64 `json:"readyReplicas"`
	}
	if err := json.Unmarshal([]byte(raw), &status); err != nil {
		return false, fmt.Sprintf("unreadable status annotation: %v", err)
	}
	replicas, found, err := unstructured.NestedInt64(u.Object, "spec", "replicas")
	if err != nil || !found {
		replicas = 1
	}
	if status.ReadyReplicas < replicas {
		return false, fmt.Sprintf("%d/%d replicas ready", status.ReadyReplicas, replicas)
	}
	return true, ""
}

// objectsLabelled returns how many objects of the namespace still carry the state label of
// stKey.
func (c *Controller) objectsLabelled(wl *workloadWorkspace, namespace, stKey string) int {
	if c.objectsLabelledFor != nil {
		return c.objectsLabelledFor(wl.path, namespace, stKey)
	}
	label := workloadv1alpha1.ClusterResourceStateLabel(stKey)
	n := 0
	for _, gvr := range watchedObjectTypes {
		lister, ok := wl.objects[gvr]
		if !ok {
			continue
		}
		objs, err := lister.ByNamespace(namespace).List(labels.Everything())
		if err != nil {
			// Unknown is not zero: never release a target on a failed count.
			return 1
		}
		for _, obj := range objs {
			if u, ok := obj.(*unstructured.Unstructured); ok {
				if _, labelled := u.GetLabels()[label]; labelled {
					n++
				}
			}
		}
	}
	return n
}
