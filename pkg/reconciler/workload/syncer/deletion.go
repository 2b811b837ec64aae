package syncer

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// Delays while a removal cannot finish yet. A downstream delete event re-queues the key at
// once; a terminating copy is otherwise looked at with the backoff of stuck.go.
const (
	upstreamCachePoll = 5 * time.Second
	// deletionHeldRequeue: the budget held a deletion; ask again later (the breaker
	// re-queues nothing itself).
	deletionHeldRequeue = 30 * time.Second
	// upstreamLostRequeue: an upstream-lost copy is kept; look again (resumed? upstream
	// back?) after this.
	upstreamLostRequeue = time.Minute
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

// downstreamRemover removes downstream copies — only the syncer's own, each delete guarded
// by its UID — per the deletion policy (Delete or Orphan), and releases the upstream object
// once a live read confirms no copy of ours is left. Deletions the syncer decides on its
// own go through the budget; a deletion the user asked for (deletionTimestamp) never does.
type downstreamRemover struct {
	target               syncTarget
	downstreamClient     dynamic.Interface
	downstreamNamespaces typedcorev1.NamespaceInterface
	considerNamespace    func(downstreamNamespace string)
	// upstreamNamespace returns the cached upstream namespace, whose deletion policy
	// applies to objects without their own.
	upstreamNamespace func(workspace, name string) (*corev1.Namespace, bool)
	// targetDeleting reports whether the served SyncTarget has a deletionTimestamp (nil:
	// never).
	targetDeleting func() bool
	budget         deletionBudget
	lost           *lostObjects
	stuck          *stuckDeletions
	metrics        *syncerMetrics
}

// remove removes the downstream copy and, once it is confirmed gone (or orphaned),
// releases the upstream object: finalizer removed, and for a per-target removal also the
// state label and the per-target annotations, after clearing a status nobody else backs.
func (r *downstreamRemover) remove(ctx context.Context, req specRequest, upstreamObj *unstructured.Unstructured) (time.Duration, error) {
	if requeue, err := r.removeCopy(ctx, req, upstreamObj); requeue > 0 || err != nil {
		return requeue, err
	}
	released, err := r.releaseAfterRemoval(ctx, req, upstreamObj, upstreamObj.GetDeletionTimestamp() == nil)
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
// unlabelled). An object that is gone while its copy is still ours was lost, not deleted
// (a delete would have left our finalizer waiting): its copy goes only if the budget admits
// it. An unlabelled object is removed from this target like any other per-target removal.
func (r *downstreamRemover) upstreamGone(ctx context.Context, req specRequest) (time.Duration, error) {
	if !req.upstream.synced() {
		return upstreamCachePoll, nil
	}
	upstreamClient := req.upstream.client.Namespace(req.key.upstreamNamespace)
	upstreamObj, err := upstreamClient.Get(ctx, req.key.name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if requeue, err := r.upstreamLost(ctx, req); requeue > 0 || err != nil {
			return requeue, err
		}
	case err != nil:
		return 0, fmt.Errorf("failed to confirm that upstream %s is gone: %w", req.key.gvr.Resource, err)
	case upstreamObj.GetLabels()[workloadv1alpha1.ClusterResourceStateLabel(r.target.key)] == workloadv1alpha1.ResourceStateSync:
		// Our cache lags; the object will arrive.
		r.lost.forget(req.key)
		return 0, nil
	default:
		// Still there, but no longer placed on this target: remove the copy, then release.
		r.lost.forget(req.key)
		if requeue, err := r.removeCopy(ctx, req, upstreamObj); requeue > 0 || err != nil {
			return requeue, err
		}
		if _, err := r.releaseAfterRemoval(ctx, req, upstreamObj, upstreamObj.GetDeletionTimestamp() == nil); err != nil {
			return 0, err
		}
	}
	r.considerNamespace(req.downstreamNamespace)
	return 0, nil
}

// upstreamLost handles a live 404 upstream. A copy of ours still running is kept unless
// the budget admits its deletion with reason upstream-lost (the breaker does not until an
// operator resumes); a kept copy is counted, reported and looked at again later.
func (r *downstreamRemover) upstreamLost(ctx context.Context, req specRequest) (time.Duration, error) {
	downstreamObj, err := r.ownCopy(ctx, req)
	if err != nil {
		return 0, err
	}
	if downstreamObj == nil {
		r.lost.forget(req.key)
		return 0, nil
	}
	if downstreamObj.GetDeletionTimestamp() == nil && !r.budget.admit(ctx, r.planned(req, deletionUpstreamLost)) {
		r.lost.mark(ctx, req)
		return upstreamLostRequeue, nil
	}
	r.lost.forget(req.key)
	// The copy carries the object's own deletion policy annotation (it is synced down).
	policy, _ := r.deletionPolicy(req, downstreamObj.GetAnnotations())
	return r.removeOwnCopy(ctx, req, nil, downstreamObj, policy, "")
}

// isTargetDeleting reports whether the served SyncTarget is being deleted.
func (r *downstreamRemover) isTargetDeleting() bool {
	return r.targetDeleting != nil && r.targetDeleting()
}

// removalReason is the budget reason of removing upstreamObj's copy; "" for a deletion
// the user asked for, which never goes through the budget.
func (r *downstreamRemover) removalReason(upstreamObj *unstructured.Unstructured) string {
	switch {
	case upstreamObj.GetDeletionTimestamp() != nil:
		return ""
	case r.isTargetDeleting():
		return deletionTargetDeleted
	default:
		return deletionUnscheduled
	}
}

func (r *downstreamRemover) planned(req specRequest, reason string) plannedDeletion {
	return plannedDeletion{
		workspace:           req.key.workspace,
		resource:            req.key.gvr.GroupResource().String(),
		downstreamNamespace: req.downstreamNamespace,
		name:                req.key.name,
		reason:              reason,
		objects:             1,
	}
}

// removeCopy removes the downstream copy of upstreamObj per its deletion policy. It
// returns 0 once no copy of ours is left, else the delay after which to look again.
func (r *downstreamRemover) removeCopy(ctx context.Context, req specRequest, upstreamObj *unstructured.Unstructured) (time.Duration, error) {
	downstreamObj, err := r.ownCopy(ctx, req)
	if err != nil || downstreamObj == nil {
		return 0, err
	}
	policy, valid := r.deletionPolicy(req, upstreamObj.GetAnnotations())
	if !valid {
		event(req.upstream, upstreamObj, corev1.EventTypeWarning, "InvalidDeletionPolicy", fmt.Sprintf(
			"The deletion policy %s is neither %s nor %s; the copy in the physical cluster of SyncTarget %s is orphaned to be safe",
			workloadv1alpha1.DeletionPolicyAnnotation, workloadv1alpha1.DeletionPolicyDelete, workloadv1alpha1.DeletionPolicyOrphan, r.target.name))
	}
	return r.removeOwnCopy(ctx, req, upstreamObj, downstreamObj, policy, r.removalReason(upstreamObj))
}

// removeOwnCopy orphans or deletes the copy of ours. A deletion with a reason is admitted
// by the budget first (held: the copy is kept and looked at again later); reason "" is a
// deletion the user asked for or one already admitted. upstreamObj may be nil (lost).
func (r *downstreamRemover) removeOwnCopy(ctx context.Context, req specRequest, upstreamObj, downstreamObj *unstructured.Unstructured, policy, reason string) (time.Duration, error) {
	logger := klog.FromContext(ctx)
	if policy == workloadv1alpha1.DeletionPolicyOrphan {
		return 0, r.orphan(ctx, req, upstreamObj, downstreamObj)
	}
	if downstreamObj.GetDeletionTimestamp() == nil {
		if reason != "" && !r.budget.admit(ctx, r.planned(req, reason)) {
			logger.V(2).Info("Deletion budget exhausted; keeping the downstream copy for now", "reason", reason)
			return deletionHeldRequeue, nil
		}
		err := r.downstreamClient.Resource(req.key.gvr).Namespace(req.downstreamNamespace).Delete(ctx, req.key.name, metav1.DeleteOptions{
			PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
			Preconditions:     &metav1.Preconditions{UID: ptr.To(downstreamObj.GetUID())},
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return 0, fmt.Errorf("failed to delete downstream %s: %w", req.key.gvr.Resource, err)
		}
		r.metrics.downstreamWrite(operationDelete)
		logger.V(2).Info("Deleted downstream object", "reason", reason)
	}
	return r.stuck.wait(ctx, req, upstreamObj, downstreamObj, r.target.name), nil
}

// ownCopy reads the downstream copy live; nil if there is none or it is not ours (which is
// never touched: the upstream object is released); a volume is ours only as the copy of
// this workspace's (volumes.go). A kcp-root-ca.crt is never the copy of
// an upstream object: it is the hub CA publisher's (hub_ca.go).
func (r *downstreamRemover) ownCopy(ctx context.Context, req specRequest) (*unstructured.Unstructured, error) {
	if isHubCACopy(req.key.gvr, req.downstreamNamespace, req.key.name) {
		return nil, nil
	}
	downstreamObj, err := r.downstreamClient.Resource(req.key.gvr).Namespace(req.downstreamNamespace).Get(ctx, req.key.name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("failed to get downstream %s: %w", req.key.gvr.Resource, err)
	}
	if err != nil || downstreamObj.GetLabels()[workloadv1alpha1.InternalDownstreamClusterLabel] != r.target.key ||
		(req.resource.clusterScoped && !ownVolumeCopy(r.target, req.locator.ClusterName, downstreamObj)) {
		r.stuck.forget(req.key)
		return nil, nil
	}
	return downstreamObj, nil
}
