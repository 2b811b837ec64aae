package syncer

import (
	"context"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/reconciler/queue"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const (
	// upsyncCacheWait is how long a key waits for a cache that has not synced yet.
	upsyncCacheWait = time.Second
	operationCreate = "create"
	operationUpdate = "update"
	operationBind   = "bind"
)

// upsyncKey names a downstream object that is, or was, upsynced ("" namespace: a
// PersistentVolume).
type upsyncKey struct {
	gvr                 schema.GroupVersionResource
	downstreamNamespace string
	name                string
}

func (k upsyncKey) String() string {
	return k.gvr.String() + "|" + k.downstreamNamespace + "/" + k.name
}

// upsyncOrigin is where a key's copy lives upstream.
type upsyncOrigin struct {
	workspace         string
	upstreamNamespace string
}

// upsyncController mirrors downstream objects up (upsync_sources.go says which): the
// upstream copy is created, kept equal to the downstream object (skipped when its
// UpsyncResourceVersionAnnotation and status already match) and deleted when the
// downstream object is gone, terminating or no longer upsynced, or when the SyncTarget is
// being deleted. A copy is a mirror: deleting it upstream never touches the downstream
// object, it is created again. No copy is removed before the downstream caches, the
// namespaces and its own upstream cache have synced.
type upsyncController struct {
	target syncTarget
	rules  upsyncRules
	// source is an upsynced type and its downstream cache.
	source func(schema.GroupVersionResource) (upsyncSource, bool)
	// copies is the upstream cache of a type's copies in a workspace.
	copies func(ws string, gvr schema.GroupVersionResource) (cache.GenericLister, func() bool, bool)
	// client writes a type's copies in a workspace.
	client           func(ws string, gvr schema.GroupVersionResource) (dynamic.NamespaceableResourceInterface, error)
	workspaceOf      func(cluster string) (string, bool)
	clusterName      func(ws string) (string, bool)
	downstreamName   func(workloadv1alpha1.NamespaceLocator) (string, error)
	namespacesSynced func() bool
	// targetDeleting reports the SyncTarget's deletionTimestamp (set by runControllers).
	targetDeleting func() bool
	metrics        *syncerMetrics
	queue          *queue.Queue[upsyncKey]

	mu sync.Mutex
	// origins are the copies seen upstream, by key: how a copy whose downstream object (or
	// namespace) is gone is found.
	origins map[upsyncKey]upsyncOrigin
}

// enqueue queues a key.
func (c *upsyncController) enqueue(key upsyncKey) { c.queue.Add(key) }

// upstreamChanged queues the key of an upstream copy's event and remembers where it is.
func (c *upsyncController) upstreamChanged(ws string, gvr schema.GroupVersionResource, upstreamObj *unstructured.Unstructured, deleted bool) {
	key := upsyncKey{gvr: gvr, name: upstreamObj.GetName()}
	if ns := upstreamObj.GetNamespace(); ns != "" {
		cluster, ok := c.clusterName(ws)
		if !ok {
			return
		}
		downstreamNamespace, err := c.downstreamName(c.target.locator(cluster, ns))
		if err != nil {
			return
		}
		key.downstreamNamespace = downstreamNamespace
	}
	c.mu.Lock()
	if deleted {
		delete(c.origins, key)
	} else {
		c.origins[key] = upsyncOrigin{workspace: ws, upstreamNamespace: upstreamObj.GetNamespace()}
	}
	c.mu.Unlock()
	c.queue.Add(key)
}

// serviceChanged queues the Endpoints and EndpointSlices of a downstream Service.
func (c *upsyncController) serviceChanged(downstreamNamespace, name string) {
	c.queue.Add(upsyncKey{gvr: endpointsGVR, downstreamNamespace: downstreamNamespace, name: name})
	slices, ok := c.source(endpointSlicesGVR)
	if !ok {
		return
	}
	objs, err := slices.lister.ByNamespace(downstreamNamespace).List(labels.SelectorFromSet(labels.Set{serviceNameLabel: name}))
	if err != nil {
		return
	}
	for _, obj := range objs {
		if m, ok := obj.(metav1.Object); ok {
			c.queue.Add(upsyncKey{gvr: endpointSlicesGVR, downstreamNamespace: downstreamNamespace, name: m.GetName()})
		}
	}
}

// keys returns the keys of every copy seen upstream.
func (c *upsyncController) keys() []upsyncKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]upsyncKey, 0, len(c.origins))
	for key := range c.origins {
		out = append(out, key)
	}
	return out
}

func (c *upsyncController) origin(key upsyncKey) (upsyncOrigin, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.origins[key]
	return o, ok
}

// reconcile brings one key's upstream copy in line with its downstream object.
func (c *upsyncController) reconcile(ctx context.Context, key upsyncKey) (time.Duration, error) {
	src, ok := c.source(key.gvr)
	if !ok {
		return 0, nil
	}
	// An object not listed yet is not gone: nothing is decided before the caches synced.
	if !src.synced() || !c.namespacesSynced() {
		return upsyncCacheWait, nil
	}
	downstreamObj, err := cachedObject(src.lister, key.downstreamNamespace, key.name)
	if err != nil {
		return 0, err
	}
	origin, pvLocator, mirrored := c.mirror(src, downstreamObj)
	if !mirrored {
		if origin, ok = c.origin(key); !ok {
			return 0, nil
		}
	}
	copies, copiesSynced, ok := c.copies(origin.workspace, key.gvr)
	if !ok || !copiesSynced() {
		return upsyncCacheWait, nil
	}
	upstreamObj, err := cachedObject(copies, origin.upstreamNamespace, key.name)
	if err != nil {
		return 0, err
	}
	upstreamClient, err := c.client(origin.workspace, key.gvr)
	if err != nil {
		return 0, err
	}
	rc := upstreamClient.Namespace(origin.upstreamNamespace)
	if !mirrored || c.targetDeleting() {
		return 0, c.remove(ctx, key, rc, upstreamObj)
	}
	return 0, c.write(ctx, src, origin, pvLocator, rc, downstreamObj, upstreamObj)
}

// mirror returns where downstreamObj is upsynced to, when it is.
func (c *upsyncController) mirror(src upsyncSource, downstreamObj *unstructured.Unstructured) (upsyncOrigin, *workloadv1alpha1.NamespaceLocator, bool) {
	if downstreamObj == nil {
		return upsyncOrigin{}, nil, false
	}
	locator, ok := c.rules.locatorFor(src, downstreamObj)
	if !ok {
		return upsyncOrigin{}, nil, false
	}
	ws, ok := c.workspaceOf(locator.ClusterName)
	if !ok {
		return upsyncOrigin{}, nil, false
	}
	if src.clusterScoped() {
		return upsyncOrigin{workspace: ws}, &locator, true
	}
	return upsyncOrigin{workspace: ws, upstreamNamespace: locator.Namespace}, nil, true
}

// remove deletes an upstream copy the syncer wrote: its finalizer first, then the object.
func (c *upsyncController) remove(ctx context.Context, key upsyncKey, rc dynamic.ResourceInterface, upstreamObj *unstructured.Unstructured) error {
	if upstreamObj == nil {
		return nil
	}
	// Only a copy the syncer wrote (it records the downstream resourceVersion) is deleted:
	// an object someone labelled Upsync upstream is not a mirror of anything.
	if _, copied := upstreamObj.GetAnnotations()[workloadv1alpha1.UpsyncResourceVersionAnnotation]; !copied {
		klog.FromContext(ctx).V(2).Info("Not deleting an object labelled Upsync upstream that the syncer did not write", "upstreamNamespace", upstreamObj.GetNamespace(), "name", upstreamObj.GetName())
		return nil
	}
	if released, held := withoutUpsyncFinalizer(upstreamObj, workloadv1alpha1.SyncerFinalizerName(c.target.key)); held {
		if _, err := rc.Update(ctx, released, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("failed to release the upsynced copy: %w", err)
		}
		c.metrics.upstreamWrite(operationPatchFinalizer)
	}
	if err := c.deleteNow(ctx, rc, upstreamObj); err != nil {
		return err
	}
	klog.FromContext(ctx).V(2).Info("Deleted upsynced copy", "upstreamNamespace", upstreamObj.GetNamespace(), "downstreamNamespace", key.downstreamNamespace)
	return nil
}

// deleteNow deletes a copy without grace: no kubelet upstream ever finishes a graceful pod
// deletion, so a copy would stay terminating. Also for a copy already terminating.
func (c *upsyncController) deleteNow(ctx context.Context, rc dynamic.ResourceInterface, upstreamObj *unstructured.Unstructured) error {
	uid := upstreamObj.GetUID()
	var noGrace int64
	if err := rc.Delete(ctx, upstreamObj.GetName(), metav1.DeleteOptions{GracePeriodSeconds: &noGrace, Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to delete the upsynced copy: %w", err)
	}
	c.metrics.upstreamWrite(operationDelete)
	return nil
}

// write creates or updates the upstream copy of downstreamObj.
func (c *upsyncController) write(ctx context.Context, src upsyncSource, origin upsyncOrigin, pvLocator *workloadv1alpha1.NamespaceLocator,
	rc dynamic.ResourceInterface, downstreamObj, upstreamObj *unstructured.Unstructured) error {
	desired, err := upsyncedObject(c.target.key, downstreamObj, origin.upstreamNamespace, pvLocator)
	if err != nil {
		return err
	}
	label := src.gvr.GroupResource().String() + "/" + src.gvr.Version
	switch {
	case upstreamObj == nil:
		err = c.create(ctx, src, rc, desired)
	case upstreamObj.GetDeletionTimestamp() != nil:
		// Deleted upstream by someone: released, and created again once gone (its deletion
		// event queues the key); nothing downstream is touched.
		return c.releaseDeleted(ctx, rc, upstreamObj)
	case upstreamObj.GetAnnotations()[workloadv1alpha1.UpsyncResourceVersionAnnotation] == downstreamObj.GetResourceVersion() &&
		(!src.hasStatus || transform.StatusEqual(upstreamObj, downstreamObj)):
		c.metrics.skipped(directionUp)
		return nil
	default:
		err = c.update(ctx, src, rc, desired, upstreamObj)
	}
	if err != nil {
		return err
	}
	c.metrics.synced(origin.workspace, label, directionUp)
	return nil
}

// create creates the copy, then writes its status (a create ignores it).
func (c *upsyncController) create(ctx context.Context, src upsyncSource, rc dynamic.ResourceInterface, desired *unstructured.Unstructured) error {
	created, err := rc.Create(ctx, desired, metav1.CreateOptions{FieldManager: FieldManager})
	if err != nil {
		return fmt.Errorf("failed to create the upsynced copy: %w", err)
	}
	c.metrics.upstreamWrite(operationCreate)
	klog.FromContext(ctx).V(2).Info("Created upsynced copy", "upstreamNamespace", desired.GetNamespace())
	status, found, _ := unstructured.NestedFieldNoCopy(desired.Object, "status")
	if !src.hasStatus || !found {
		return nil
	}
	created.Object["status"] = status
	if _, err := rc.UpdateStatus(ctx, created, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
		return fmt.Errorf("failed to write the status of the upsynced copy: %w", err)
	}
	c.metrics.upstreamWrite(operationUpdateStatus)
	return nil
}

// update writes the status first, then the object with the new resourceVersion
// annotation: a failed status write is retried, since the annotation still differs.
func (c *upsyncController) update(ctx context.Context, src upsyncSource, rc dynamic.ResourceInterface, desired, upstreamObj *unstructured.Unstructured) error {
	if src.gvr == podsGVR {
		// A pod's node cannot be updated: it is bound, and the copy's next event continues.
		if bound, err := c.bindPod(ctx, rc, desired, upstreamObj); bound || err != nil {
			return err
		}
	}
	current := upstreamObj
	if src.hasStatus && !transform.StatusEqual(upstreamObj, desired) {
		withStatus := upstreamObj.DeepCopy()
		if status, found, _ := unstructured.NestedFieldNoCopy(desired.Object, "status"); found {
			withStatus.Object["status"] = status
		} else {
			delete(withStatus.Object, "status")
		}
		updated, err := rc.UpdateStatus(ctx, withStatus, metav1.UpdateOptions{FieldManager: FieldManager})
		if err != nil {
			return fmt.Errorf("failed to write the status of the upsynced copy: %w", err)
		}
		c.metrics.upstreamWrite(operationUpdateStatus)
		current = updated
	}
	if upstreamObj.GetAnnotations()[workloadv1alpha1.UpsyncResourceVersionAnnotation] == desired.GetAnnotations()[workloadv1alpha1.UpsyncResourceVersionAnnotation] {
		return nil
	}
	mergeUpstreamMetadata(desired, current)
	if src.hasStatus {
		desired.Object["status"] = current.Object["status"]
	}
	if _, err := rc.Update(ctx, desired, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
		return fmt.Errorf("failed to update the upsynced copy: %w", err)
	}
	c.metrics.upstreamWrite(operationUpdate)
	return nil
}

// bindPod binds the copy of a pod scheduled downstream after its copy was created to the
// same node, through the binding subresource (or, refused, deletes the copy to create it
// again); it reports whether it did.
func (c *upsyncController) bindPod(ctx context.Context, rc dynamic.ResourceInterface, desired, upstreamObj *unstructured.Unstructured) (bool, error) {
	nodeName, _, _ := unstructured.NestedString(desired.Object, "spec", "nodeName")
	bound, _, _ := unstructured.NestedString(upstreamObj.Object, "spec", "nodeName")
	if nodeName == "" || bound != "" {
		return false, nil
	}
	binding := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Binding",
		"metadata": map[string]any{"name": upstreamObj.GetName(), "namespace": upstreamObj.GetNamespace(), "uid": string(upstreamObj.GetUID())},
		"target":   map[string]any{"kind": "Node", "name": nodeName},
	}}
	_, err := rc.Create(ctx, binding, metav1.CreateOptions{FieldManager: FieldManager}, "binding")
	if apierrors.IsForbidden(err) || apierrors.IsMethodNotSupported(err) {
		// Binding refused (a view serving no subresources): the copy goes, and is created
		// again, bound, from its downstream pod.
		return true, c.remove(ctx, upsyncKey{gvr: podsGVR, name: upstreamObj.GetName()}, rc, upstreamObj)
	}
	if err != nil {
		return false, fmt.Errorf("failed to bind the upsynced pod to node %s: %w", nodeName, err)
	}
	c.metrics.upstreamWrite(operationBind)
	return true, nil
}

// releaseDeleted releases the finalizer of a copy someone deleted upstream.
func (c *upsyncController) releaseDeleted(ctx context.Context, rc dynamic.ResourceInterface, upstreamObj *unstructured.Unstructured) error {
	if released, held := withoutUpsyncFinalizer(upstreamObj, workloadv1alpha1.SyncerFinalizerName(c.target.key)); held {
		if _, err := rc.Update(ctx, released, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("failed to release the deleted upsynced copy: %w", err)
		}
		c.metrics.upstreamWrite(operationPatchFinalizer)
	}
	// A graceful pod deletion never completes upstream: finished without grace.
	if err := c.deleteNow(ctx, rc, upstreamObj); err != nil {
		return err
	}
	klog.FromContext(ctx).V(2).Info("Upsynced copy deleted upstream; released, to be created again", "upstreamNamespace", upstreamObj.GetNamespace())
	return nil
}

// cachedObject returns the cached object, nil when there is none.
func cachedObject(lister cache.GenericLister, namespace, name string) (*unstructured.Unstructured, error) {
	var obj any
	var err error
	if namespace == "" {
		obj, err = lister.Get(name)
	} else {
		obj, err = lister.ByNamespace(namespace).Get(name)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read the cache: %w", err)
	}
	u, _ := obj.(*unstructured.Unstructured)
	return u, nil
}

// reconcileUpsync runs the downstream informers of the upsynced types for the accepted
// ones and the upstream caches of their copies for the watched workspaces (through the
// upsyncer views of st with syncer views).
func (d *dataPath) reconcileUpsync(ctx context.Context, st *workloadv1alpha1.SyncTarget) error {
	if err := d.upsyncSources.reconcile(ctx, d.engine.resourceList()); err != nil {
		return err
	}
	return d.upsyncCopies.reconcile(ctx, d.engine.namedWorkspaces(), d.upsyncSources.types(), upsyncerViewURLs(st))
}

// namedWorkspaces returns the watched workspaces whose logical-cluster name is known.
func (e *engine) namedWorkspaces() []string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]string, 0, len(e.clusterNames))
	for ws := range e.clusterNames {
		if _, ok := e.upstreamWorkspaces[ws]; ok {
			out = append(out, ws)
		}
	}
	return out
}
