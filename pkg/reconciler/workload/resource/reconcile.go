package resource

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// namespaceState is the placement of a namespace: its state labels and deletion
// annotations, by SyncTarget key.
type namespaceState struct {
	labels    map[string]string // stKey → state label value
	deletions map[string]string // stKey → deletion annotation value
}

func namespaceStateOf(ns *corev1.Namespace) namespaceState {
	s := namespaceState{labels: map[string]string{}, deletions: map[string]string{}}
	for k, v := range ns.Labels {
		if stKey, ok := workloadv1alpha1.SyncTargetKeyFromLabel(workloadv1alpha1.ClusterResourceStateLabelPrefix, k); ok {
			s.labels[stKey] = v
		}
	}
	for k, v := range ns.Annotations {
		if stKey, ok := workloadv1alpha1.SyncTargetKeyFromLabel(workloadv1alpha1.InternalClusterDeletionTimestampAnnotationPrefix, k); ok {
			s.deletions[stKey] = v
		}
	}
	return s
}

func (s namespaceState) empty() bool { return len(s.labels) == 0 && len(s.deletions) == 0 }

func (s namespaceState) equal(o namespaceState) bool {
	return maps.Equal(s.labels, o.labels) && maps.Equal(s.deletions, o.deletions)
}

// changes are the labels and annotations to add to an object; nothing is ever removed.
type changes struct {
	labels      map[string]string
	annotations map[string]string
}

func (c changes) empty() bool { return len(c.labels) == 0 && len(c.annotations) == 0 }

// desiredChanges computes what an object with the given labels and annotations needs so
// that it follows its namespace:
//
//   - namespace label =Sync and no namespace deletion annotation for the key: the object
//     gets the label =Sync unless it has a state label for the key already (a value set by
//     someone else, e.g. Upsync, is kept);
//   - namespace deletion annotation for the key and the object labelled for it (any value
//     but Upsync: an upsynced copy is the syncer's, and goes with its downstream source):
//     the object gets the namespace's annotation value unless it has one already;
//   - object labelled Sync for a key the namespace has neither a label nor a deletion
//     annotation for: the object gets the deletion annotation with time now.
func desiredChanges(ns namespaceState, labels, annotations map[string]string, now time.Time) changes {
	out := changes{labels: map[string]string{}, annotations: map[string]string{}}
	for stKey, value := range ns.labels {
		if value != workloadv1alpha1.ResourceStateSync {
			continue
		}
		if _, deleting := ns.deletions[stKey]; deleting {
			continue
		}
		label := workloadv1alpha1.ClusterResourceStateLabel(stKey)
		if _, ok := labels[label]; !ok {
			out.labels[label] = workloadv1alpha1.ResourceStateSync
		}
	}
	for stKey, when := range ns.deletions {
		value, labelled := labels[workloadv1alpha1.ClusterResourceStateLabel(stKey)]
		if !labelled || value == workloadv1alpha1.ResourceStateUpsync {
			// An upsynced copy goes with its downstream source, never by placement.
			continue
		}
		annotation := workloadv1alpha1.DeletionAnnotation(stKey)
		if _, ok := annotations[annotation]; !ok {
			out.annotations[annotation] = when
		}
	}
	for label, value := range labels {
		stKey, ok := workloadv1alpha1.SyncTargetKeyFromLabel(workloadv1alpha1.ClusterResourceStateLabelPrefix, label)
		if !ok || value != workloadv1alpha1.ResourceStateSync {
			continue
		}
		_, placed := ns.labels[stKey]
		_, deleting := ns.deletions[stKey]
		if placed || deleting {
			continue
		}
		annotation := workloadv1alpha1.DeletionAnnotation(stKey)
		if _, ok := annotations[annotation]; !ok {
			out.annotations[annotation] = now.UTC().Format(time.RFC3339)
		}
	}
	return out
}

// mergePatch builds a JSON merge patch that adds the changes and fails with a conflict if
// the object is no longer at resourceVersion, so that a decision taken on a stale cache
// (e.g. a deletion annotation for a label the syncer has just removed) is never written.
func mergePatch(resourceVersion string, ch changes) ([]byte, error) {
	metadata := map[string]any{"resourceVersion": resourceVersion}
	if len(ch.labels) > 0 {
		metadata["labels"] = ch.labels
	}
	if len(ch.annotations) > 0 {
		metadata["annotations"] = ch.annotations
	}
	return json.Marshal(map[string]any{"metadata": metadata})
}

// reconcile makes one object follow its namespace.
func (c *Controller) reconcile(ctx context.Context, key objectKey) error {
	logger := klog.FromContext(ctx)
	state, t := c.lookup(key.workspace, key.gvr)
	if t == nil {
		logger.V(4).Info("Resource type is not watched, skipping")
		return nil
	}
	obj, exists, err := t.informer.GetIndexer().GetByKey(key.namespace + "/" + key.name)
	if err != nil {
		return fmt.Errorf("failed to get object from cache: %w", err)
	}
	if !exists {
		logger.V(4).Info("Object is gone, skipping")
		return nil
	}
	upstreamObj, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return fmt.Errorf("unexpected object type %T in cache", obj)
	}
	if upstreamObj.GetDeletionTimestamp() != nil {
		logger.V(4).Info("Object is being deleted, skipping")
		return nil
	}
	namespace, err := state.namespaceLister.Get(key.namespace)
	if apierrors.IsNotFound(err) {
		logger.V(4).Info("Namespace is gone, skipping")
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to get namespace from cache: %w", err)
	}
	nsState := namespaceStateOf(namespace)
	if nsState.empty() {
		logger.V(4).Info("Namespace is not placed, skipping")
		return nil
	}
	ch := desiredChanges(nsState, upstreamObj.GetLabels(), upstreamObj.GetAnnotations(), c.clock.Now())
	if reason := transform.NotSyncedReason(upstreamObj); reason != "" && len(ch.labels) > 0 {
		// The syncer refuses such an object, so it is never labelled. Deletion annotations
		// still go through: one labelled by hand is then released by the syncer as usual.
		logger.V(4).Info("Not labelling an object the syncer does not sync", "reason", reason)
		clear(ch.labels)
	}
	if ch.empty() {
		logger.V(4).Info("Object already follows its namespace")
		return nil
	}
	patch, err := mergePatch(upstreamObj.GetResourceVersion(), ch)
	if err != nil {
		return fmt.Errorf("failed to build patch: %w", err)
	}
	logger.V(3).Info("Patching object", "labels", ch.labels, "annotations", ch.annotations)
	_, err = state.workspace.Dynamic.Resource(key.gvr).Namespace(key.namespace).
		Patch(ctx, key.name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	if err != nil {
		return fmt.Errorf("failed to patch %s %s/%s: %w", key.gvr.GroupResource(), key.namespace, key.name, err)
	}
	if c.labelUpdates != nil {
		c.labelUpdates.WithLabelValues(key.workspace).Inc()
	}
	logger.V(2).Info("Propagated namespace placement to object", "labels", len(ch.labels), "annotations", len(ch.annotations))
	return nil
}
