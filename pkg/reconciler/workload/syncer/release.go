package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// releaseAfterRemoval releases the upstream object once its copy is gone. For a per-target
// removal that leaves the object on no target, the status written from the copy goes
// first (it would claim a copy that no longer exists), while our finalizer still holds the
// object so that a failure is retried. It reports whether it released anything.
func (r *downstreamRemover) releaseAfterRemoval(ctx context.Context, req specRequest, upstreamObj *unstructured.Unstructured, perTarget bool) (bool, error) {
	metadata := r.releasePatch(upstreamObj, perTarget)
	if len(metadata) == 0 {
		return false, nil
	}
	if perTarget {
		cleared, err := r.clearStatus(ctx, req, upstreamObj)
		if err != nil {
			return false, err
		}
		if cleared != nil {
			upstreamObj = cleared
		}
	}
	return r.patchUpstream(ctx, req, upstreamObj, metadata)
}

// releasePatch returns the metadata a release removes: the syncer finalizer and, for a
// per-target removal, the target's state label and per-target annotations. Empty when
// there is nothing to remove.
func (r *downstreamRemover) releasePatch(upstreamObj *unstructured.Unstructured, perTarget bool) map[string]any {
	metadata := map[string]any{}
	finalizer := workloadv1alpha1.SyncerFinalizerName(r.target.key)
	if finalizers := upstreamObj.GetFinalizers(); slices.Contains(finalizers, finalizer) {
		remaining := slices.DeleteFunc(slices.Clone(finalizers), func(f string) bool { return f == finalizer })
		if len(remaining) == 0 {
			remaining = nil // null: the list is removed
		}
		metadata["finalizers"] = remaining
	}
	if !perTarget {
		return metadata
	}
	if _, ok := upstreamObj.GetLabels()[workloadv1alpha1.ClusterResourceStateLabel(r.target.key)]; ok {
		metadata["labels"] = map[string]any{workloadv1alpha1.ClusterResourceStateLabel(r.target.key): nil}
	}
	annotations := map[string]any{}
	for _, k := range []string{workloadv1alpha1.DeletionAnnotation(r.target.key), workloadv1alpha1.StatusAnnotation(r.target.key)} {
		if _, ok := upstreamObj.GetAnnotations()[k]; ok {
			annotations[k] = nil
		}
	}
	if len(annotations) > 0 {
		metadata["annotations"] = annotations
	}
	return metadata
}

// patchUpstream writes a release as a JSON merge patch of metadata with the object's
// resourceVersion as precondition (a conflict is retried by the queue). An object gone
// meanwhile needs no release.
func (r *downstreamRemover) patchUpstream(ctx context.Context, req specRequest, upstreamObj *unstructured.Unstructured, metadata map[string]any) (bool, error) {
	patch, err := metadataPatch(upstreamObj.GetResourceVersion(), metadata)
	if err != nil {
		return false, err
	}
	_, err = req.upstream.client.Namespace(req.key.upstreamNamespace).Patch(ctx, req.key.name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("failed to release upstream %s: %w", req.key.gvr.Resource, err)
	}
	r.metrics.upstreamWrite(operationPatchFinalizer)
	return true, nil
}

// metadataPatch returns a JSON merge patch of the given metadata fields (a nil value
// removes the key) with resourceVersion as precondition: the write fails with a conflict
// instead of overwriting a change it did not see.
func metadataPatch(resourceVersion string, metadata map[string]any) ([]byte, error) {
	m := maps.Clone(metadata)
	m["resourceVersion"] = resourceVersion
	patch, err := json.Marshal(map[string]any{"metadata": m})
	if err != nil {
		return nil, fmt.Errorf("failed to build metadata patch: %w", err)
	}
	return patch, nil
}

// clearStatus clears the upstream status (through the status subresource) when this
// target's removal leaves the object on no target: the status described the copy that is
// gone. It returns the updated object, nil when it wrote nothing: a type without status,
// no status, or another target's state label Sync (that target's syncer writes it).
func (r *downstreamRemover) clearStatus(ctx context.Context, req specRequest, upstreamObj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	if !req.resource.hasStatus || onOtherTarget(r.target.key, upstreamObj) {
		return nil, nil
	}
	status, found, _ := unstructured.NestedFieldNoCopy(upstreamObj.Object, "status")
	if m, isMap := status.(map[string]any); !found || status == nil || (isMap && len(m) == 0) {
		return nil, nil
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": upstreamObj.GetResourceVersion()},
		"status":   nil,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to build status patch: %w", err)
	}
	updated, err := req.upstream.client.Namespace(req.key.upstreamNamespace).Patch(ctx, req.key.name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) {
		// Gone, or the type has no status subresource upstream.
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to clear upstream status: %w", err)
	}
	r.metrics.upstreamWrite(operationUpdateStatus)
	klog.FromContext(ctx).V(3).Info("Cleared upstream status: no copy is left on any target")
	return updated, nil
}

// onOtherTarget reports whether another target than stKey has the upstream object in state
// Sync.
func onOtherTarget(stKey string, upstreamObj *unstructured.Unstructured) bool {
	for k, v := range upstreamObj.GetLabels() {
		key, ok := workloadv1alpha1.SyncTargetKeyFromLabel(workloadv1alpha1.ClusterResourceStateLabelPrefix, k)
		if ok && key != stKey && v == workloadv1alpha1.ResourceStateSync {
			return true
		}
	}
	return false
}
