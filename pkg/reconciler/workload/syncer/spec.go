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
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/reconciler/queue"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// FieldManager is the server-side-apply field manager of everything the syncer writes.
const FieldManager = "tmc-workload-syncer"

// specKey names an upstream object: the spec controller syncs it down (or removes its
// downstream copy).
type specKey struct {
	workspace         string
	gvr               schema.GroupVersionResource
	upstreamNamespace string
	name              string
}

func (k specKey) String() string {
	return k.workspace + "|" + k.gvr.String() + "|" + k.upstreamNamespace + "/" + k.name
}

// specRequest is what one reconcile of a specKey works on.
type specRequest struct {
	key                 specKey
	resource            resourceInfo
	upstream            upstreamView
	downstreamNamespace string
	locator             workloadv1alpha1.NamespaceLocator
}

// namespaceEnsurer names and creates the downstream namespace of a locator, or reports why
// it cannot.
type namespaceEnsurer interface {
	downstreamName(locator workloadv1alpha1.NamespaceLocator) (string, error)
	ensure(ctx context.Context, locator workloadv1alpha1.NamespaceLocator, downstreamNamespace string) error
}

// specController syncs upstream objects down: finalizer first, then the namespace, the
// transformed object, and a server-side apply only when something changed. Removals go to
// the downstreamRemover.
type specController struct {
	target   syncTarget
	chain    *transform.Chain
	resource func(schema.GroupVersionResource) (resourceInfo, bool)
	upstream func(workspace string, gvr schema.GroupVersionResource) (upstreamView, bool)
	// clusterName is the logical-cluster name of a watched workspace (its locators' cluster).
	clusterName      func(workspace string) (string, bool)
	downstream       func(schema.GroupVersionResource) (downstreamView, bool)
	downstreamClient dynamic.Interface
	namespaces       namespaceEnsurer
	remover          *downstreamRemover
	metrics          *syncerMetrics
	latency          *latencyTracker
	queue            *queue.Queue[specKey]
	// tenancy returns the SyncTarget's containment allowances (nil: none).
	tenancy func() workloadv1alpha1.SyncTargetTenancy

	// downstreamNamespaces is the downstream namespace cache (nil until it is watched);
	// targetConflictPolicy the SyncTarget's spec.conflictPolicy (nil: Abort). conflict.go
	// uses both.
	downstreamNamespaces func() corelisters.NamespaceLister
	targetConflictPolicy func() workloadv1alpha1.ConflictPolicy
}

// enqueue queues an upstream object, remembering when its change was seen.
func (c *specController) enqueue(key specKey) {
	c.latency.seen("spec|" + key.String())
	c.queue.Add(key)
}

// reconcile syncs one upstream object down, phase by phase: gone upstream → remove the
// copy (after a live confirmation; a lost object's copy is kept); removal requested or the
// SyncTarget being deleted → remove, then release; finalizer; namespace; desired object;
// conflict policy for an object we do not own; compare; apply (after a terminating copy is
// gone).
func (c *specController) reconcile(ctx context.Context, key specKey) (time.Duration, error) {
	req, ok, err := c.request(key)
	if !ok || err != nil {
		return 0, err
	}
	logger := klog.FromContext(ctx).WithValues("workspace", key.workspace, "upstreamNamespace", key.upstreamNamespace,
		"downstreamNamespace", req.downstreamNamespace, "name", key.name, "resource", key.gvr.Resource)
	ctx = klog.NewContext(ctx, logger)
	defer func(began time.Time) { c.metrics.observeSync(key.workspace, req.resource.label(), time.Since(began)) }(time.Now())

	obj, err := req.upstream.lister.ByNamespace(key.upstreamNamespace).Get(key.name)
	if apierrors.IsNotFound(err) {
		return c.remover.upstreamGone(ctx, req)
	}
	if err != nil {
		return 0, err
	}
	upstreamObj := obj.(*unstructured.Unstructured)
	c.remover.lost.forget(key)
	if removalRequested(c.target.key, upstreamObj) || c.remover.isTargetDeleting() {
		return c.remover.remove(ctx, req, upstreamObj)
	}
	if upstreamObj.GetLabels()[workloadv1alpha1.ClusterResourceStateLabel(c.target.key)] != workloadv1alpha1.ResourceStateSync {
		return 0, nil
	}
	if req.resource.clusterScoped {
		return c.reconcileVolume(ctx, req, upstreamObj)
	}
	if added, err := c.ensureFinalizer(ctx, req, upstreamObj); added || err != nil {
		return 0, err
	}
	if err := c.namespaces.ensure(ctx, req.locator, req.downstreamNamespace); err != nil {
		event(req.upstream, upstreamObj, corev1.EventTypeWarning, "NamespaceError", err.Error())
		return 0, err
	}
	desired, err := c.desired(ctx, req, upstreamObj)
	if desired == nil || err != nil {
		return 0, err
	}
	downstreamObj, watched, err := c.current(ctx, req)
	if !watched || err != nil {
		return 0, err
	}
	if downstreamObj != nil && downstreamObj.GetLabels()[workloadv1alpha1.InternalDownstreamClusterLabel] != c.target.key {
		return 0, c.resolveConflict(ctx, req, upstreamObj, desired, downstreamObj)
	}
	if downstreamObj != nil && downstreamObj.GetDeletionTimestamp() != nil {
		// Wait until a previous deletion finishes before re-creating.
		return c.remover.stuck.wait(ctx, req, upstreamObj, downstreamObj, c.target.name), nil
	}
	c.remover.stuck.forget(key)
	return 0, c.apply(ctx, req, upstreamObj, desired, downstreamObj)
}

// request resolves the key: an accepted type, a watched workspace, a downstream namespace.
// Without the first two there is nothing to do (and nothing downstream is touched).
func (c *specController) request(key specKey) (specRequest, bool, error) {
	res, ok := c.resource(key.gvr)
	if !ok {
		return specRequest{}, false, nil
	}
	upstream, ok := c.upstream(key.workspace, key.gvr)
	if !ok {
		return specRequest{}, false, nil
	}
	cluster, ok := c.clusterName(key.workspace)
	if !ok {
		return specRequest{}, false, nil
	}
	locator := c.target.locator(cluster, key.upstreamNamespace)
	if res.clusterScoped {
		// A volume is written cluster-wide; its claim's locator is checked in volumes.go.
		return specRequest{key: key, resource: res, upstream: upstream, locator: locator}, true, nil
	}
	downstreamNamespace, err := c.namespaces.downstreamName(locator)
	if err != nil {
		return specRequest{}, false, err
	}
	return specRequest{key: key, resource: res, upstream: upstream, downstreamNamespace: downstreamNamespace, locator: locator}, true, nil
}

// ensureFinalizer adds the syncer finalizer upstream before anything is written
// downstream, so that an upstream delete can never leave an orphan behind. It writes a
// JSON merge patch of the finalizers with the cached resourceVersion as precondition — a
// metadata write, never a full Update at the downstream's version — and reports whether it
// wrote (the change comes back through the informer; a conflict is retried by the queue).
func (c *specController) ensureFinalizer(ctx context.Context, req specRequest, upstreamObj *unstructured.Unstructured) (bool, error) {
	finalizer := workloadv1alpha1.SyncerFinalizerName(c.target.key)
	if slices.Contains(upstreamObj.GetFinalizers(), finalizer) {
		return false, nil
	}
	patch, err := metadataPatch(upstreamObj.GetResourceVersion(), map[string]any{
		"finalizers": append(slices.Clone(upstreamObj.GetFinalizers()), finalizer),
	})
	if err != nil {
		return false, err
	}
	if _, err := req.upstream.client.Namespace(req.key.upstreamNamespace).Patch(ctx, req.key.name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return false, fmt.Errorf("failed to add finalizer to upstream %s: %w", req.key.gvr.Resource, err)
	}
	c.metrics.upstreamWrite(operationPatchFinalizer)
	klog.FromContext(ctx).V(3).Info("Added syncer finalizer upstream")
	return true, nil
}

// desired runs the transformation chain; nil means the chain filtered the object out.
func (c *specController) desired(ctx context.Context, req specRequest, upstreamObj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	tc := transform.Context{
		SyncTargetKey:       c.target.key,
		SyncTargetName:      c.target.name,
		UpstreamWorkspace:   req.key.workspace,
		UpstreamNamespace:   req.key.upstreamNamespace,
		DownstreamNamespace: req.downstreamNamespace,
		GVR:                 req.key.gvr,
		Tenancy:             c.tenancyAllowances(),
	}
	desired, err := c.chain.Down(ctx, tc, upstreamObj)
	switch {
	case transform.IsFiltered(err):
		klog.FromContext(ctx).V(4).Info("Not syncing object", "reason", err.Error())
		return nil, nil
	case transform.IsInvalidInput(err):
		event(req.upstream, upstreamObj, corev1.EventTypeWarning, "InvalidSyncAnnotation", err.Error())
		return nil, tmc.NewTMCError(tmc.TMCErrorTypeInvalidResource, err, "the object cannot be synced as annotated", tmc.TMCErrorSeverityMedium)
	case err != nil:
		return nil, err
	}
	if err := transform.SetHash(desired); err != nil {
		return nil, err
	}
	return desired, nil
}

// current returns the downstream object (nil if there is none): our copy from the
// ownership-filtered cache, else a live read that also finds objects we do not own (the
// caller resolves those by the conflict policy, conflict.go). watched is false while the
// type has no downstream informer: then nothing is written.
func (c *specController) current(ctx context.Context, req specRequest) (downstreamObj *unstructured.Unstructured, watched bool, err error) {
	downstream, ok := c.downstream(req.key.gvr)
	if !ok {
		return nil, false, nil
	}
	obj, err := downstream.lister.ByNamespace(req.downstreamNamespace).Get(req.key.name)
	if err == nil {
		return obj.(*unstructured.Unstructured), true, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, true, err
	}
	downstreamObj, err = c.downstreamClient.Resource(req.key.gvr).Namespace(req.downstreamNamespace).Get(ctx, req.key.name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, true, nil
	case err != nil:
		return nil, true, fmt.Errorf("failed to get downstream %s: %w", req.key.gvr.Resource, err)
	}
	return downstreamObj, true, nil
}

// apply writes desired downstream unless the copy is already up to date.
func (c *specController) apply(ctx context.Context, req specRequest, upstreamObj, desired, downstreamObj *unstructured.Unstructured) error {
	logger := klog.FromContext(ctx)
	need, reason := transform.NeedsApply(desired, downstreamObj)
	if !need {
		c.metrics.skipped(directionDown)
		c.latency.take("spec|" + req.key.String())
		logger.V(4).Info("Downstream object up to date")
		return nil
	}
	logger.V(3).Info("Applying downstream object", "reason", reason)
	_, err := c.downstreamClient.Resource(req.key.gvr).Namespace(req.downstreamNamespace).
		Apply(ctx, req.key.name, desired, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if err != nil {
		if reason := eventReasonFor(err); reason != "" {
			event(req.upstream, upstreamObj, corev1.EventTypeWarning, reason, fmt.Sprintf("The physical cluster of SyncTarget %s rejected the object: %v", c.target.name, err))
		}
		return fmt.Errorf("failed to apply downstream %s: %w", req.key.gvr.Resource, err)
	}
	c.metrics.downstreamWrite(operationApply)
	c.reportDropped(req, upstreamObj, desired, downstreamObj)
	c.metrics.synced(req.key.workspace, req.resource.label(), directionDown)
	c.metrics.observeEndToEnd(directionDown, c.latency.take("spec|"+req.key.String()))
	return nil
}

// eventReasonFor returns the Event reason for a downstream rejection the user can act on.
func eventReasonFor(err error) string {
	switch tmc.TypeOf(err) {
	case tmc.TMCErrorTypeAdmissionDenied:
		return "AdmissionDenied"
	case tmc.TMCErrorTypeQuotaExceeded:
		return "QuotaExceeded"
	case tmc.TMCErrorTypeInvalidResource:
		return "InvalidResource"
	case tmc.TMCErrorTypeForbidden:
		return "Forbidden"
	}
	return ""
}

// event records an Event on an upstream object, in its workspace.
func event(upstream upstreamView, upstreamObj *unstructured.Unstructured, eventType, reason, message string) {
	if upstream.recorder != nil {
		upstream.recorder.Event(upstreamObj, eventType, reason, message)
	}
}
