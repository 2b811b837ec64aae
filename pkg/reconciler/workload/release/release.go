package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/resource"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// nsName names an upstream namespace in a workload workspace.
type nsName struct {
	workspace, name string
}

// namespaceEntry is a cached upstream namespace that carries a key of the target.
type namespaceEntry struct {
	workspace string
	ns        *corev1.Namespace
}

// holdings is what upstream still carries of one SyncTarget key, from the caches.
type holdings struct {
	// objects carry the state label, the syncer finalizer or a per-target annotation.
	objects []resource.TargetObject
	// heldIn counts, per namespace, the objects that still hold the key: state label or
	// syncer finalizer.
	heldIn map[nsName]int
	// namespaces carry the state label or a per-target annotation.
	namespaces []namespaceEntry
}

// held is the number of objects still holding the key.
func (h holdings) held() int {
	n := 0
	for _, v := range h.heldIn {
		n += v
	}
	return n
}

// done reports whether no object holds the key and no namespace carries it: the
// SyncTarget may go.
func (h holdings) done() bool { return h.held() == 0 && len(h.namespaces) == 0 }

// holds reports whether an upstream object holds the SyncTarget key: its state label (any
// value) or its syncer finalizer.
func holds(obj metav1.Object, stKey string) bool {
	if _, ok := obj.GetLabels()[workloadv1alpha1.ClusterResourceStateLabel(stKey)]; ok {
		return true
	}
	return slices.Contains(obj.GetFinalizers(), workloadv1alpha1.SyncerFinalizerName(stKey))
}

func (c *Controller) holdingsFor(stKey string) holdings {
	h := holdings{objects: c.objects.ObjectsFor(stKey), heldIn: map[nsName]int{}}
	for _, o := range h.objects {
		if holds(o.Object, stKey) {
			h.heldIn[nsName{workspace: o.Workspace, name: o.Object.GetNamespace()}]++
		}
	}
	for _, path := range c.workloadPaths() {
		objs, err := c.workload(path).nsIndexer.ByIndex(namespaceKeysIndex, stKey)
		if err != nil {
			continue
		}
		for _, obj := range objs {
			if ns, ok := obj.(*corev1.Namespace); ok {
				h.namespaces = append(h.namespaces, namespaceEntry{workspace: path, ns: ns})
			}
		}
	}
	sort.Slice(h.namespaces, func(i, j int) bool {
		a, b := h.namespaces[i], h.namespaces[j]
		return a.workspace < b.workspace || (a.workspace == b.workspace && a.ns.Name < b.ns.Name)
	})
	return h
}

// evicted returns the objects whose removal from the target was asked (removalAsked).
func (c *Controller) evicted(stKey string, objects []resource.TargetObject) []resource.TargetObject {
	var out []resource.TargetObject
	for _, o := range objects {
		var ns *corev1.Namespace
		if wl := c.workload(o.Workspace); wl != nil {
			ns, _ = wl.namespaces.Get(o.Object.GetNamespace())
		}
		if removalAsked(stKey, o.Object, ns) {
			out = append(out, o)
		}
	}
	return out
}

// removalAsked reports whether an upstream object holding stKey is to leave that target,
// as the syncer would see it: a deletionTimestamp; or the per-target deletion annotation,
// on the object or on its namespace (nil: unknown), with no soft finalizer left; or the
// syncer finalizer without the state label Sync (nor Upsync: an upsynced object carries
// the finalizer and its own label, and leaves only with its target or its namespace).
func removalAsked(stKey string, obj metav1.Object, ns *corev1.Namespace) bool {
	if !holds(obj, stKey) {
		return false
	}
	if obj.GetDeletionTimestamp() != nil {
		return true
	}
	deletion := workloadv1alpha1.DeletionAnnotation(stKey)
	ann := obj.GetAnnotations()
	if hasKey(ann, deletion) || (ns != nil && hasKey(ns.Annotations, deletion)) {
		return len(workloadv1alpha1.SoftFinalizers(ann[workloadv1alpha1.SoftFinalizersAnnotation(stKey)])) == 0
	}
	state := obj.GetLabels()[workloadv1alpha1.ClusterResourceStateLabel(stKey)]
	return slices.Contains(obj.GetFinalizers(), workloadv1alpha1.SyncerFinalizerName(stKey)) &&
		state != workloadv1alpha1.ResourceStateSync && state != workloadv1alpha1.ResourceStateUpsync
}

// evictedNamespaces returns the namespaces with the per-target deletion annotation.
func (c *Controller) evictedNamespaces(stKey string, namespaces []namespaceEntry) []namespaceEntry {
	var out []namespaceEntry
	for _, e := range namespaces {
		if _, ok := e.ns.Annotations[workloadv1alpha1.DeletionAnnotation(stKey)]; ok {
			out = append(out, e)
		}
	}
	return out
}

// released is what one reconcile released.
type released struct {
	objects, namespaces int
	// upsynced counts the upsynced objects deleted.
	upsynced int
	// in are the namespaces affected.
	in map[nsName]bool
}

// markNamespaces gives every namespace labelled for a deleted target the per-target
// deletion annotation (the deletionTimestamp), so that label propagation annotates the
// namespace's objects instead of labelling them again once the syncer released them. It
// reports whether it wrote.
func (c *Controller) markNamespaces(ctx context.Context, t target) (bool, error) {
	label := workloadv1alpha1.ClusterResourceStateLabel(t.key)
	annotation := workloadv1alpha1.DeletionAnnotation(t.key)
	stamp := t.st.DeletionTimestamp.UTC().Format(time.RFC3339)
	wrote := false
	for _, path := range c.workloadPaths() {
		wl := c.workload(path)
		objs, err := wl.nsIndexer.ByIndex(namespaceKeysIndex, t.key)
		if err != nil {
			continue
		}
		for _, obj := range objs {
			ns, ok := obj.(*corev1.Namespace)
			if !ok {
				continue
			}
			_, labelled := ns.Labels[label]
			_, marked := ns.Annotations[annotation]
			if !labelled || marked {
				continue
			}
			patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
				"resourceVersion": ns.ResourceVersion,
				"annotations":     map[string]any{annotation: stamp},
			}})
			if err != nil {
				return wrote, fmt.Errorf("failed to build patch: %w", err)
			}
			if err := c.patchNamespace(ctx, wl, ns.Name, patch); err != nil {
				return wrote, err
			}
			wrote = true
			klog.FromContext(ctx).V(2).Info("Marked namespace for removal from the deleted SyncTarget", "namespaceWorkspace", path, "upstreamNamespace", ns.Name)
		}
	}
	return wrote, nil
}

// releaseWithoutSyncer releases objects — deletes the upsynced ones (deleteUpsynced),
// which have nothing to release — then those of namespaces no object holds the key in any
// more, and records it: Events on the affected namespaces and the SyncTarget, a log line
// and ReleasedMetric.
func (c *Controller) releaseWithoutSyncer(ctx context.Context, loc *locationState, t target, h holdings,
	objects []resource.TargetObject, namespaces []namespaceEntry, reason, why string) error {
	up, rest := splitUpsynced(t.key, objects)
	rel, objectsErr := c.releaseObjects(ctx, t, rest)
	upRel, upsyncedErr := c.deleteUpsynced(ctx, t, up)
	nsRel, namespacesErr := c.releaseNamespaces(ctx, t, h, namespaces)
	rel.namespaces, rel.upsynced = nsRel.namespaces, upRel.objects
	for _, in := range []map[nsName]bool{upRel.in, nsRel.in} {
		for k := range in {
			rel.in[k] = true
		}
	}
	c.countReleased(reason, "object", rel.objects)
	c.countReleased(reason, "upsynced", rel.upsynced)
	c.countReleased(reason, "namespace", rel.namespaces)
	c.announce(ctx, loc, t, rel, reason, why)
	return errors.Join(objectsErr, upsyncedErr, namespacesErr)
}

// releaseObjects removes the syncer finalizer, the state label and the per-target
// annotations of the target from each object. It goes on after a failure and returns the
// first.
func (c *Controller) releaseObjects(ctx context.Context, t target, objects []resource.TargetObject) (released, error) {
	logger := klog.FromContext(ctx)
	rel := released{in: map[nsName]bool{}}
	var firstErr error
	failed := 0
	for _, o := range objects {
		obj := o.Object
		patch, err := releasePatch(obj, t.key)
		if err != nil || patch == nil {
			continue
		}
		wl := c.workload(o.Workspace)
		if wl == nil {
			continue
		}
		_, err = wl.workspace.Dynamic.Resource(o.Resource).Namespace(obj.GetNamespace()).
			Patch(ctx, obj.GetName(), types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = fmt.Errorf("failed to release %s %s/%s in workspace %s: %w", o.Resource.GroupResource(), obj.GetNamespace(), obj.GetName(), o.Workspace, err)
			}
			continue
		}
		rel.objects++
		if ns := obj.GetNamespace(); ns != "" {
			rel.in[nsName{workspace: o.Workspace, name: ns}] = true
		}
		logger.V(2).Info("Released upstream object without the syncer", "objectWorkspace", o.Workspace,
			"resource", o.Resource.GroupResource().String(), "upstreamObject", klog.KRef(obj.GetNamespace(), obj.GetName()))
	}
	if failed > 1 {
		firstErr = fmt.Errorf("%d objects not released: %w", failed, firstErr)
	}
	return rel, firstErr
}

// releaseNamespaces removes the state label and the per-target annotations of the target
// from each of namespaces in which no object holds the key any more.
func (c *Controller) releaseNamespaces(ctx context.Context, t target, h holdings, namespaces []namespaceEntry) (released, error) {
	rel := released{in: map[nsName]bool{}}
	for _, e := range namespaces {
		name := nsName{workspace: e.workspace, name: e.ns.Name}
		if h.heldIn[name] > 0 {
			continue
		}
		patch, err := releasePatch(e.ns, t.key)
		if err != nil || patch == nil {
			continue
		}
		if err := c.patchNamespace(ctx, c.workload(e.workspace), e.ns.Name, patch); err != nil {
			return rel, err
		}
		rel.namespaces++
		rel.in[name] = true
		klog.FromContext(ctx).V(2).Info("Released upstream namespace", "namespaceWorkspace", e.workspace, "upstreamNamespace", e.ns.Name)
	}
	return rel, nil
}

// patchNamespace sends a merge patch to an upstream namespace; one gone meanwhile needs
// nothing.
func (c *Controller) patchNamespace(ctx context.Context, wl *workloadState, name string, patch []byte) error {
	_, err := wl.workspace.Kube.CoreV1().Namespaces().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to patch namespace %s in workspace %s: %w", name, wl.path, err)
	}
	return nil
}

// releasePatch returns the JSON merge patch that removes the state label, the per-target
// annotations and the syncer finalizer of stKey from an object's metadata, guarded by the
// resourceVersion the decision was taken on; nil when the object carries none of them.
func releasePatch(obj metav1.Object, stKey string) ([]byte, error) {
	metadata := map[string]any{}
	if label := workloadv1alpha1.ClusterResourceStateLabel(stKey); hasKey(obj.GetLabels(), label) {
		metadata["labels"] = map[string]any{label: nil}
	}
	annotations := map[string]any{}
	for _, prefix := range resource.PerTargetAnnotationPrefixes {
		if key := prefix + stKey; hasKey(obj.GetAnnotations(), key) {
			annotations[key] = nil
		}
	}
	if len(annotations) > 0 {
		metadata["annotations"] = annotations
	}
	finalizer := workloadv1alpha1.SyncerFinalizerName(stKey)
	if slices.Contains(obj.GetFinalizers(), finalizer) {
		metadata["finalizers"] = remaining(obj.GetFinalizers(), finalizer)
	}
	if len(metadata) == 0 {
		return nil, nil
	}
	metadata["resourceVersion"] = obj.GetResourceVersion()
	patch, err := json.Marshal(map[string]any{"metadata": metadata})
	if err != nil {
		return nil, fmt.Errorf("failed to build patch: %w", err)
	}
	return patch, nil
}

func hasKey(m map[string]string, key string) bool {
	_, ok := m[key]
	return ok
}

// remaining returns finalizers without f, or nil (null in a merge patch) when none is left.
func remaining(finalizers []string, f string) []string {
	out := slices.DeleteFunc(slices.Clone(finalizers), func(s string) bool { return s == f })
	if len(out) == 0 {
		return nil
	}
	return out
}

// finalizersPatch returns the JSON merge patch setting metadata.finalizers, guarded by
// resourceVersion.
func finalizersPatch(resourceVersion string, finalizers []string) ([]byte, error) {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": resourceVersion,
		"finalizers":      finalizers,
	}})
	if err != nil {
		return nil, fmt.Errorf("failed to build patch: %w", err)
	}
	return patch, nil
}

// ensureFinalizer adds SyncTargetCleanupFinalizer to a SyncTarget that lacks it.
func (c *Controller) ensureFinalizer(ctx context.Context, loc *locationState, st *workloadv1alpha1.SyncTarget) error {
	if slices.Contains(st.Finalizers, workloadv1alpha1.SyncTargetCleanupFinalizer) {
		return nil
	}
	finalizers := append(slices.Clone(st.Finalizers), workloadv1alpha1.SyncTargetCleanupFinalizer)
	if err := c.patchSyncTargetFinalizers(ctx, loc, st, finalizers); err != nil {
		return err
	}
	klog.FromContext(ctx).V(3).Info("Added the SyncTarget finalizer", "finalizer", workloadv1alpha1.SyncTargetCleanupFinalizer)
	return nil
}

// removeFinalizer removes SyncTargetCleanupFinalizer from a SyncTarget being deleted.
func (c *Controller) removeFinalizer(ctx context.Context, loc *locationState, st *workloadv1alpha1.SyncTarget) error {
	if !slices.Contains(st.Finalizers, workloadv1alpha1.SyncTargetCleanupFinalizer) {
		return nil
	}
	if err := c.patchSyncTargetFinalizers(ctx, loc, st, remaining(st.Finalizers, workloadv1alpha1.SyncTargetCleanupFinalizer)); err != nil {
		return err
	}
	klog.FromContext(ctx).V(2).Info("Nothing upstream holds the deleted SyncTarget any more; removed its finalizer")
	return nil
}

func (c *Controller) patchSyncTargetFinalizers(ctx context.Context, loc *locationState, st *workloadv1alpha1.SyncTarget, finalizers []string) error {
	patch, err := finalizersPatch(st.ResourceVersion, finalizers)
	if err != nil {
		return err
	}
	_, err = loc.client.WorkloadV1alpha1().SyncTargets().Patch(ctx, st.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to patch the finalizers of SyncTarget %s: %w", st.Name, err)
	}
	return nil
}

// announce records a release without the syncer: a Warning Event on every affected
// upstream namespace and on the SyncTarget, and a log line.
func (c *Controller) announce(ctx context.Context, loc *locationState, t target, rel released, reason, why string) {
	if rel.objects == 0 && rel.namespaces == 0 && rel.upsynced == 0 {
		return
	}
	names := make([]nsName, 0, len(rel.in))
	for k := range rel.in {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		return names[i].workspace < names[j].workspace || (names[i].workspace == names[j].workspace && names[i].name < names[j].name)
	})
	for _, k := range names {
		wl := c.workload(k.workspace)
		if wl == nil || wl.recorder == nil {
			continue
		}
		ns, err := wl.namespaces.Get(k.name)
		if err != nil {
			ns = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: k.name}}
		}
		wl.recorder.Eventf(ns, corev1.EventTypeWarning, EventReasonReleased,
			"Released the upstream objects of SyncTarget %s (location workspace %s) without its syncer: %s; copies may remain on the physical cluster of SyncTarget %s",
			t.name, t.workspace, why, t.name)
	}
	if loc.recorder != nil {
		loc.recorder.Eventf(t.st, corev1.EventTypeWarning, EventReasonReleased,
			"Released %d upstream objects and %d namespaces and deleted %d upsynced objects without the syncer: %s; copies may remain on the physical cluster",
			rel.objects, rel.namespaces, rel.upsynced, why)
	}
	klog.FromContext(ctx).Info("Released upstream objects without the syncer; copies may remain on the physical cluster",
		"reason", reason, "objects", rel.objects, "namespaces", rel.namespaces, "deletedUpsynced", rel.upsynced, "why", why)
}
