package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// typeReleaseAttempts bounds the writes per object when it changes under the release.
const typeReleaseAttempts = 3

// typeRelease is the upstream cache and client of a type that left the accepted set, in
// one workspace: what releasing its upstream objects reads and writes.
type typeRelease struct {
	key    upstreamInformerKey
	lister cache.GenericLister
	synced func() bool
	client dynamic.NamespaceableResourceInterface
}

// acceptTypes makes want the accepted types, so that the spec and status controllers stop
// acting on the others at once, and returns the running upstream caches of the types that
// are no longer accepted (removed from spec.resources, Incompatible or Unauthorized), and
// those types, for the live release (typeReleaser).
func (e *engine) acceptTypes(want map[schema.GroupVersionResource]resourceInfo, states []workloadv1alpha1.SyncedResource) ([]typeRelease, []workloadv1alpha1.SyncedResource) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var removed []workloadv1alpha1.SyncedResource
	for gvr := range e.resources {
		if _, ok := want[gvr]; !ok {
			removed = append(removed, workloadv1alpha1.SyncedResource{
				ResourceToSync: workloadv1alpha1.ResourceToSync{Group: gvr.Group, Resource: gvr.Resource},
				Versions:       []string{gvr.Version},
				State:          workloadv1alpha1.ResourceStateAccepted,
			})
		}
	}
	e.resourceStates = states
	e.resources = want
	var out []typeRelease
	for key, h := range e.upstreamInformers {
		if _, ok := want[key.gvr]; ok {
			continue
		}
		upstream, ok := e.upstreamWorkspaces[key.workspace]
		if !ok {
			continue
		}
		out = append(out, typeRelease{key: key, lister: h.lister, synced: h.hasSynced, client: upstream.dynamic.Resource(key.gvr)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].key.workspace != out[j].key.workspace {
			return out[i].key.workspace < out[j].key.workspace
		}
		return out[i].key.gvr.String() < out[j].key.gvr.String()
	})
	return out, removed
}

// acceptsResource reports whether a type is accepted, at any version.
func (e *engine) acceptsResource(res workloadv1alpha1.ResourceToSync) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	for gvr := range e.resources {
		if gvr.Group == res.Group && gvr.Resource == res.Resource {
			return true
		}
	}
	return false
}

// upstreamDynamicFor returns the dynamic client of a watched upstream workspace.
func (e *engine) upstreamDynamicFor(workspace string) (dynamic.Interface, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	upstream, ok := e.upstreamWorkspaces[workspace]
	if !ok {
		return nil, false
	}
	return upstream.dynamic, true
}

// releaseRemovedTypes removes our finalizer from every cached upstream object of the given
// types, so that deleting them upstream completes although nothing syncs them any more.
// Their downstream copies stay as they are (still labelled): if the type comes back, the
// spec controller adds the finalizer again and finds the copies up to date. It returns the
// pairs whose release is not complete (cache not synced, or a write failed); they are
// retried on the next reconcile. It runs outside the engine lock: it writes upstream.
func (e *engine) releaseRemovedTypes(ctx context.Context, releases []typeRelease) map[upstreamInformerKey]bool {
	unreleased := map[upstreamInformerKey]bool{}
	for _, r := range releases {
		logger := klog.FromContext(ctx).WithValues("workspace", r.key.workspace, "resource", r.key.gvr.String())
		if !r.synced() {
			logger.Info("Resource type no longer synced, but its upstream cache has not synced; releasing its objects later")
			unreleased[r.key] = true
			continue
		}
		objs, err := r.lister.List(labels.Everything())
		if err != nil {
			logger.Error(err, "Failed to list upstream objects of a resource type no longer synced")
			unreleased[r.key] = true
			continue
		}
		released, failed := 0, 0
		for _, obj := range objs {
			upstreamObj, ok := obj.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			wrote, err := releaseUpstreamFinalizer(ctx, r.client, e.stKey, upstreamObj)
			if err != nil {
				failed++
				logger.Error(err, "Failed to release upstream object", "upstreamNamespace", upstreamObj.GetNamespace(), "name", upstreamObj.GetName())
				continue
			}
			if wrote {
				released++
				e.metrics.upstreamWrite(operationPatchFinalizer)
			}
		}
		if failed > 0 {
			unreleased[r.key] = true
		}
		logger.Info("Resource type no longer synced; released its upstream objects (downstream copies are kept)", "released", released, "failed", failed)
	}
	return unreleased
}

// releaseUpstreamFinalizer removes the syncer finalizer of target stKey from upstreamObj
// with a JSON merge patch carrying its resourceVersion as precondition. An object that
// changed meanwhile is read again and patched again; one without a resourceVersion is
// skipped (nothing safe to patch against). It reports whether it wrote.
func releaseUpstreamFinalizer(ctx context.Context, client dynamic.NamespaceableResourceInterface, stKey string, upstreamObj *unstructured.Unstructured) (bool, error) {
	finalizer := workloadv1alpha1.SyncerFinalizerName(stKey)
	upstreamClient := client.Namespace(upstreamObj.GetNamespace())
	for range typeReleaseAttempts {
		if !slices.Contains(upstreamObj.GetFinalizers(), finalizer) || upstreamObj.GetResourceVersion() == "" {
			return false, nil
		}
		remaining := slices.DeleteFunc(slices.Clone(upstreamObj.GetFinalizers()), func(f string) bool { return f == finalizer })
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
			"resourceVersion": upstreamObj.GetResourceVersion(),
			"finalizers":      remaining,
		}})
		if err != nil {
			return false, fmt.Errorf("failed to encode the finalizer patch: %w", err)
		}
		_, err = upstreamClient.Patch(ctx, upstreamObj.GetName(), types.MergePatchType, patch, metav1.PatchOptions{})
		switch {
		case err == nil:
			return true, nil
		case apierrors.IsNotFound(err):
			return false, nil
		case !apierrors.IsConflict(err):
			return false, fmt.Errorf("failed to remove the syncer finalizer: %w", err)
		}
		upstreamObj, err = upstreamClient.Get(ctx, upstreamObj.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("failed to read the object again after a conflict: %w", err)
		}
	}
	return false, fmt.Errorf("failed to remove the syncer finalizer: the object kept changing (%d attempts)", typeReleaseAttempts)
}
