package syncer

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// Downstream write operations of the deletion policy Orphan.
const (
	operationOrphan         = "orphan"
	operationMarkOrphanedIn = "mark_namespace_orphans"
	orphanedEventReason     = "Orphaned"
)

// deletionPolicy returns the deletion policy for a copy: the object's own annotation (given
// by annotations), else its upstream namespace's (set there from the Placement), else
// Delete. valid is false for a value that is neither Delete nor Orphan, which is taken as
// Orphan: a typo must not cost a workload.
func (r *downstreamRemover) deletionPolicy(req specRequest, annotations map[string]string) (policy string, valid bool) {
	value := annotations[workloadv1alpha1.DeletionPolicyAnnotation]
	if value == "" && r.upstreamNamespace != nil {
		if upstreamNamespace, ok := r.upstreamNamespace(req.key.workspace, req.key.upstreamNamespace); ok {
			value = upstreamNamespace.Annotations[workloadv1alpha1.DeletionPolicyAnnotation]
		}
	}
	switch {
	case value == "" || strings.EqualFold(value, workloadv1alpha1.DeletionPolicyDelete):
		return workloadv1alpha1.DeletionPolicyDelete, true
	case strings.EqualFold(value, workloadv1alpha1.DeletionPolicyOrphan):
		return workloadv1alpha1.DeletionPolicyOrphan, true
	}
	return workloadv1alpha1.DeletionPolicyOrphan, false
}

// orphan leaves the downstream copy running without our ownership label. The downstream
// namespace is marked as holding orphans first, so that a retry after a partial failure
// still finds the copy ours and the namespace cleanup never deletes the copy with its
// namespace. upstreamObj (nil when lost) gets an Event naming the SyncTarget.
func (r *downstreamRemover) orphan(ctx context.Context, req specRequest, upstreamObj, downstreamObj *unstructured.Unstructured) error {
	if err := r.markOrphanedIn(ctx, req.downstreamNamespace); err != nil {
		return err
	}
	patch, err := metadataPatch(downstreamObj.GetResourceVersion(), map[string]any{
		"labels": map[string]any{workloadv1alpha1.InternalDownstreamClusterLabel: nil},
	})
	if err != nil {
		return err
	}
	_, err = r.downstreamClient.Resource(req.key.gvr).Namespace(req.downstreamNamespace).Patch(ctx, req.key.name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to orphan downstream %s: %w", req.key.gvr.Resource, err)
	}
	r.metrics.downstreamWrite(operationOrphan)
	r.stuck.forget(req.key)
	klog.FromContext(ctx).V(2).Info("Orphaned downstream object: left running without the ownership label")
	if upstreamObj != nil {
		event(req.upstream, upstreamObj, corev1.EventTypeNormal, orphanedEventReason, fmt.Sprintf(
			"Deletion policy %s: the copy %s/%s in the physical cluster of SyncTarget %s keeps running without TMC's ownership label; TMC no longer manages it",
			workloadv1alpha1.DeletionPolicyOrphan, req.downstreamNamespace, req.key.name, r.target.name))
	}
	return nil
}

// markOrphanedIn sets DownstreamOrphansAnnotation on the downstream namespace unless it
// is there already.
func (r *downstreamRemover) markOrphanedIn(ctx context.Context, downstreamNamespace string) error {
	if downstreamNamespace == "" {
		// A cluster-scoped copy (a volume) lies in no namespace.
		return nil
	}
	ns, err := r.downstreamNamespaces.Get(ctx, downstreamNamespace, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to get downstream namespace %s: %w", downstreamNamespace, err)
	}
	if _, ok := ns.Annotations[workloadv1alpha1.DownstreamOrphansAnnotation]; ok {
		return nil
	}
	patch, err := metadataPatch(ns.ResourceVersion, map[string]any{
		"annotations": map[string]any{workloadv1alpha1.DownstreamOrphansAnnotation: time.Now().UTC().Format(time.RFC3339)},
	})
	if err != nil {
		return err
	}
	if _, err := r.downstreamNamespaces.Patch(ctx, downstreamNamespace, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("failed to mark downstream namespace %s as holding orphans: %w", downstreamNamespace, err)
	}
	r.metrics.downstreamWrite(operationMarkOrphanedIn)
	return nil
}
