package release

import (
	"context"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/resource"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// upsyncTypes are the types a syncer upsyncs of its own accord (pods, the volumes bound to
// synced claims, the endpoints of services that ask for it), with the version listed when
// the object caches do not cover them. Upsynced objects of the SyncTarget's other types are
// found where those are.
var upsyncTypes = []uncachedType{
	{resource: workloadv1alpha1.ResourceToSync{Resource: "pods"}, version: "v1"},
	{resource: workloadv1alpha1.ResourceToSync{Resource: "endpoints"}, version: "v1"},
	{resource: workloadv1alpha1.ResourceToSync{Group: "discovery.k8s.io", Resource: "endpointslices"}, version: "v1"},
	{resource: workloadv1alpha1.ResourceToSync{Resource: "persistentvolumes"}, version: "v1"},
}

// upsynced reports whether an upstream object is an upsynced copy for stKey: its state
// label is Upsync. It has one source, the target's physical cluster, and nothing to
// release: once the target is gone it is deleted.
func upsynced(obj metav1.Object, stKey string) bool {
	return obj.GetLabels()[workloadv1alpha1.ClusterResourceStateLabel(stKey)] == workloadv1alpha1.ResourceStateUpsync
}

// splitUpsynced returns the upsynced objects of stKey and the others, in order.
func splitUpsynced(stKey string, objects []resource.TargetObject) (up, rest []resource.TargetObject) {
	for _, o := range objects {
		if upsynced(o.Object, stKey) {
			up = append(up, o)
		} else {
			rest = append(rest, o)
		}
	}
	return up, rest
}

// deleteUpsynced deletes each upsynced object of the target: the syncer finalizer is
// removed first (guarded by the resourceVersion the decision was taken on), then the
// object is deleted with its uid as precondition, so that nothing that replaced it is.
// Only objects whose state label is Upsync for this target are ever deleted. It goes on
// after a failure and returns the first.
func (c *Controller) deleteUpsynced(ctx context.Context, t target, objects []resource.TargetObject) (released, error) {
	logger := klog.FromContext(ctx)
	rel := released{in: map[nsName]bool{}}
	var firstErr error
	failed := 0
	for _, o := range objects {
		if !upsynced(o.Object, t.key) {
			continue
		}
		wl := c.workload(o.Workspace)
		if wl == nil {
			continue
		}
		if err := c.deleteUpsyncedObject(ctx, wl, t.key, o); err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		rel.objects++
		if ns := o.Object.GetNamespace(); ns != "" {
			rel.in[nsName{workspace: o.Workspace, name: ns}] = true
		}
		logger.V(2).Info("Deleted upsynced upstream object of the gone SyncTarget", "objectWorkspace", o.Workspace,
			"resource", o.Resource.GroupResource().String(), "upstreamObject", klog.KRef(o.Object.GetNamespace(), o.Object.GetName()))
	}
	if failed > 1 {
		firstErr = fmt.Errorf("%d upsynced objects not deleted: %w", failed, firstErr)
	}
	return rel, firstErr
}

// deleteUpsyncedObject removes the syncer finalizer of stKey from one upsynced object and
// deletes it; one gone meanwhile needs nothing.
func (c *Controller) deleteUpsyncedObject(ctx context.Context, wl *workloadState, stKey string, o resource.TargetObject) error {
	obj := o.Object
	client := wl.workspace.Dynamic.Resource(o.Resource).Namespace(obj.GetNamespace())
	what := fmt.Sprintf("%s %s in workspace %s", o.Resource.GroupResource(), klog.KRef(obj.GetNamespace(), obj.GetName()), o.Workspace)
	finalizer := workloadv1alpha1.SyncerFinalizerName(stKey)
	if slices.Contains(obj.GetFinalizers(), finalizer) {
		patch, err := finalizersPatch(obj.GetResourceVersion(), remaining(obj.GetFinalizers(), finalizer))
		if err != nil {
			return err
		}
		_, err = client.Patch(ctx, obj.GetName(), types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("failed to remove the syncer finalizer of upsynced %s: %w", what, err)
		}
	}
	// Without grace, also for a copy already terminating: no kubelet upstream ever finishes
	// a graceful deletion of a pod bound to a node, so the copy (and its namespace, if being
	// deleted) would stay Terminating.
	var noGrace int64
	opts := metav1.DeleteOptions{GracePeriodSeconds: &noGrace}
	if uid := obj.GetUID(); uid != "" {
		opts.Preconditions = &metav1.Preconditions{UID: &uid}
	}
	err := client.Delete(ctx, obj.GetName(), opts)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to delete upsynced %s: %w", what, err)
	}
	return nil
}
