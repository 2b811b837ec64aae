package syncer

import (
	"context"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// Polling fallbacks while a removal is in progress: the downstream delete event requeues
// the key at once; these only matter if that event is missed.
const (
	downstreamDeletePoll = 2 * time.Second
	upstreamCachePoll    = 5 * time.Second
)

// removalRequested reports whether an upstream object is to be removed from the target
// stKey: deleted upstream, or the per-target deletion annotation set with no soft
// finalizer left, or no longer labelled for syncing while still holding our finalizer.
func removalRequested(stKey string, upstreamObj *unstructured.Unstructured) bool {
	if upstreamObj.GetDeletionTimestamp() != nil {
		return true
	}
	ann := upstreamObj.GetAnnotations()
	if _, ok := ann[workloadv1alpha1.DeletionAnnotation(stKey)]; ok {
		return len(workloadv1alpha1.SoftFinalizers(ann[workloadv1alpha1.SoftFinalizersAnnotation(stKey)])) == 0
	}
	if upstreamObj.GetLabels()[workloadv1alpha1.ClusterResourceStateLabel(stKey)] != workloadv1alpha1.ResourceStateSync {
		return slices.Contains(upstreamObj.GetFinalizers(), workloadv1alpha1.SyncerFinalizerName(stKey))
	}
	return false
}

// downstreamRemover deletes downstream copies — only the syncer's own, each guarded by its
// UID — and releases the upstream object once a live read confirms the copy is gone.
type downstreamRemover struct {
	target            syncTarget
	downstreamClient  dynamic.Interface
	considerNamespace func(downstreamNamespace string)
	budget            deletionBudget
	metrics           *syncerMetrics
}

// remove deletes the downstream copy and, once it is confirmed gone, releases the
// upstream object: finalizer removed, and for a per-target removal also the state label
// and the per-target annotations.
func (r *downstreamRemover) remove(ctx context.Context, req specRequest, upstreamObj *unstructured.Unstructured) (time.Duration, error) {
	if requeue, err := r.deleteDownstream(ctx, req); requeue > 0 || err != nil {
		return requeue, err
	}
	released, err := r.release(ctx, req, upstreamObj, upstreamObj.GetDeletionTimestamp() == nil)
	if !released || err != nil {
		return 0, err
	}
	klog.FromContext(ctx).V(2).Info("Downstream copy removed; released the upstream object")
	r.considerNamespace(req.downstreamNamespace)
	return 0, nil
}

// upstreamGone handles an object that left the upstream cache: deleted, or no longer
// labelled for this target. Losing the upstream must never delete anything, so the cache
// has to be synced and a live read has to confirm the object is really gone (or really
// unlabelled) before the downstream copy is deleted. An unlabelled object that still
// carries our finalizer is released once its copy is gone.
func (r *downstreamRemover) upstreamGone(ctx context.Context, req specRequest) (time.Duration, error) {
	if !req.upstream.synced() {
		return upstreamCachePoll, nil
	}
	upstreamClient := req.upstream.client.Namespace(req.key.upstreamNamespace)
	upstreamObj, err := upstreamClient.Get(ctx, req.key.name, metav1.GetOptions{})
	switch {
	case err == nil:
		if upstreamObj.GetLabels()[workloadv1alpha1.ClusterResourceStateLabel(r.target.key)] == workloadv1alpha1.ResourceStateSync {
			// Our cache lags; the object will arrive.
			return 0, nil
		}
		// Still there, but no longer placed on this target: remove the copy, then release.
		if requeue, err := r.deleteDownstream(ctx, req); requeue > 0 || err != nil {
			return requeue, err
		}
		if _, err := r.release(ctx, req, upstreamObj, false); err != nil {
			return 0, err
		}
	case apierrors.IsNotFound(err):
		if requeue, err := r.deleteDownstream(ctx, req); requeue > 0 || err != nil {
			return requeue, err
		}
	default:
		return 0, fmt.Errorf("failed to confirm that upstream %s is gone: %w", req.key.gvr.Resource, err)
	}
	r.considerNamespace(req.downstreamNamespace)
	return 0, nil
}

// release removes the syncer finalizer from the upstream object and, for a per-target
// removal, the target's state label and per-target annotations. It writes only when it
// has something to remove (always for a per-target removal) and reports whether it wrote;
// an object gone meanwhile needs no release.
func (r *downstreamRemover) release(ctx context.Context, req specRequest, upstreamObj *unstructured.Unstructured, perTarget bool) (bool, error) {
	finalizer := workloadv1alpha1.SyncerFinalizerName(r.target.key)
	if !slices.Contains(upstreamObj.GetFinalizers(), finalizer) && !perTarget {
		return false, nil
	}
	updated := upstreamObj.DeepCopy()
	updated.SetFinalizers(slices.DeleteFunc(updated.GetFinalizers(), func(f string) bool { return f == finalizer }))
	if perTarget {
		labels := updated.GetLabels()
		delete(labels, workloadv1alpha1.ClusterResourceStateLabel(r.target.key))
		updated.SetLabels(labels)
		ann := updated.GetAnnotations()
		delete(ann, workloadv1alpha1.DeletionAnnotation(r.target.key))
		delete(ann, workloadv1alpha1.StatusAnnotation(r.target.key))
		updated.SetAnnotations(ann)
	}
	if _, err := req.upstream.client.Namespace(req.key.upstreamNamespace).Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("failed to release upstream %s: %w", req.key.gvr.Resource, err)
	}
	r.metrics.upstreamWrite(operationPatchFinalizer)
	return true, nil
}

// deleteDownstream deletes the downstream copy if it is ours. It returns 0 once a live
// read confirms there is no copy of ours, else the delay after which to look again.
func (r *downstreamRemover) deleteDownstream(ctx context.Context, req specRequest) (time.Duration, error) {
	downstreamClient := r.downstreamClient.Resource(req.key.gvr).Namespace(req.downstreamNamespace)
	downstreamObj, err := downstreamClient.Get(ctx, req.key.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("failed to get downstream %s: %w", req.key.gvr.Resource, err)
	}
	if downstreamObj.GetLabels()[workloadv1alpha1.InternalDownstreamClusterLabel] != r.target.key {
		// Not ours: never delete it. The upstream object is released.
		return 0, nil
	}
	if downstreamObj.GetDeletionTimestamp() == nil {
		err := downstreamClient.Delete(ctx, req.key.name, metav1.DeleteOptions{
			PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
			Preconditions:     &metav1.Preconditions{UID: ptr.To(downstreamObj.GetUID())},
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return 0, fmt.Errorf("failed to delete downstream %s: %w", req.key.gvr.Resource, err)
		}
		r.metrics.downstreamWrite(operationDelete)
		klog.FromContext(ctx).V(2).Info("Deleted downstream object")
	}
	return downstreamDeletePoll, nil
}
