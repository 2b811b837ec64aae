package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// FieldManager is the server-side-apply field manager of everything the syncer writes.
const FieldManager = "tmc-workload-syncer"

// specKey names an upstream object: the spec controller syncs it down (or deletes its
// downstream copy).
type specKey struct {
	workspace string
	gvr       schema.GroupVersionResource
	namespace string
	name      string
}

func (k specKey) String() string {
	return k.workspace + "|" + k.gvr.String() + "|" + k.namespace + "/" + k.name
}

// statusKey names a downstream object: the status controller copies its status up.
type statusKey struct {
	gvr       schema.GroupVersionResource
	namespace string
	name      string
}

func (k statusKey) String() string { return k.gvr.String() + "|" + k.namespace + "/" + k.name }

// controllers are the spec controller (upstream → downstream, including deletion) and the
// status controller (downstream status → upstream), each on a typed rate-limited queue.
// Failures are classified into TMC errors and the recovery manager decides when to retry;
// a failing object backs off on its own and never blocks the others.
type controllers struct {
	syncer *Syncer

	specQueue   workqueue.TypedRateLimitingInterface[specKey]
	statusQueue workqueue.TypedRateLimitingInterface[statusKey]

	mu        sync.Mutex
	firstSeen map[string]time.Time // queue key → when the change that queued it was seen
	failing   map[string]tmc.TMCErrorType
}

func newControllers(s *Syncer) *controllers {
	provider := s.metrics.tmc.WorkqueueMetricsProvider()
	return &controllers{
		syncer: s,
		specQueue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[specKey](),
			workqueue.TypedRateLimitingQueueConfig[specKey]{Name: "spec", MetricsProvider: provider}),
		statusQueue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[statusKey](),
			workqueue.TypedRateLimitingQueueConfig[statusKey]{Name: "status", MetricsProvider: provider}),
		firstSeen: map[string]time.Time{},
		failing:   map[string]tmc.TMCErrorType{},
	}
}

func (c *controllers) markSeen(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.firstSeen[key]; !ok {
		c.firstSeen[key] = time.Now()
	}
}

func (c *controllers) takeSeen(key string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.firstSeen[key]
	delete(c.firstSeen, key)
	return t
}

func (c *controllers) enqueueSpec(k specKey) {
	c.markSeen("spec|" + k.String())
	c.specQueue.Add(k)
}

func (c *controllers) enqueueStatus(k statusKey) {
	c.markSeen("status|" + k.String())
	c.statusQueue.Add(k)
}

// upstreamHandler queues the spec key of every upstream event.
func (c *controllers) upstreamHandler(ws string, gvr schema.GroupVersionResource) cache.ResourceEventHandler {
	enqueue := func(obj interface{}) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return
		}
		c.enqueueSpec(specKey{workspace: ws, gvr: gvr, namespace: u.GetNamespace(), name: u.GetName()})
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj interface{}) { enqueue(obj) },
		DeleteFunc: enqueue,
	}
}

// downstreamHandler queues the status key of a downstream change, and the spec key of its
// upstream object so that drift is reverted and deletions complete.
func (c *controllers) downstreamHandler(gvr schema.GroupVersionResource) cache.ResourceEventHandler {
	enqueue := func(obj interface{}, deleted bool) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return
		}
		if !deleted {
			c.enqueueStatus(statusKey{gvr: gvr, namespace: u.GetNamespace(), name: u.GetName()})
		}
		if loc, ok := c.syncer.namespaces.locatorOf(u.GetNamespace()); ok {
			c.enqueueSpec(specKey{workspace: loc.ClusterName, gvr: gvr, namespace: loc.Namespace, name: u.GetName()})
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { enqueue(obj, false) },
		UpdateFunc: func(_, obj interface{}) { enqueue(obj, false) },
		DeleteFunc: func(obj interface{}) { enqueue(obj, true) },
	}
}

// run starts the workers and blocks until ctx ends.
func (c *controllers) run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer c.specQueue.ShutDown()
	defer c.statusQueue.ShutDown()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(2)
		go func() { defer wg.Done(); wait.UntilWithContext(ctx, c.specWorker, time.Second) }()
		go func() { defer wg.Done(); wait.UntilWithContext(ctx, c.statusWorker, time.Second) }()
	}
	<-ctx.Done()
	c.specQueue.ShutDown()
	c.statusQueue.ShutDown()
	wg.Wait()
}

func (c *controllers) specWorker(ctx context.Context) {
	for processNext(ctx, c, c.specQueue, "spec", c.processSpec) {
	}
}

func (c *controllers) statusWorker(ctx context.Context) {
	for processNext(ctx, c, c.statusQueue, "status", c.processStatus) {
	}
}

// processNext handles one key: success forgets its backoff; a failure is classified and
// the recovery manager decides whether and when to retry it.
func processNext[K interface {
	comparable
	String() string
}](ctx context.Context, c *controllers, queue workqueue.TypedRateLimitingInterface[K], name string, process func(context.Context, K) error) bool {
	key, quit := queue.Get()
	if quit {
		return false
	}
	defer queue.Done(key)
	logger := klog.FromContext(ctx).WithValues("controller", name, "key", key.String())
	ctx = klog.NewContext(ctx, logger)

	err := process(ctx, key)
	id := name + "|" + key.String()
	if err == nil {
		queue.Forget(key)
		c.syncer.recovery.RecordSuccess(id, targetFor(err))
		c.clearFailing(id)
		return true
	}
	var requeue *requeueAfterError
	if errors.As(err, &requeue) {
		queue.Forget(key)
		queue.AddAfter(key, requeue.after)
		return true
	}
	tmcErr := tmc.Classify(err).WithComponent("syncer").WithOperation(name)
	decision := c.syncer.recovery.HandleError(ctx, id, targetFor(tmcErr), tmcErr)
	c.syncer.metrics.error(tmcErr.Type)
	c.syncer.errors.record(tmcErr)
	c.setFailing(id, tmcErr.Type)
	if decision.Retry {
		logger.V(2).Info("Sync failed; retrying", "errorType", tmcErr.Type, "retryAfter", decision.After, "err", err)
		queue.AddAfter(key, decision.After)
	} else {
		logger.Error(err, "Sync failed; not retrying until the object changes", "errorType", tmcErr.Type)
		queue.Forget(key)
	}
	return true
}

// targetFor names the circuit-breaker target an error belongs to: the downstream cluster
// for every syncer write, which is where connection failures matter most.
func targetFor(error) string { return "downstream" }

func (c *controllers) setFailing(id string, t tmc.TMCErrorType) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failing[id] = t
}

func (c *controllers) clearFailing(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.failing, id)
}

// failingCounts returns the number of keys currently failing, by error type.
func (c *controllers) failingCounts() map[tmc.TMCErrorType]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[tmc.TMCErrorType]int{}
	for _, t := range c.failing {
		out[t]++
	}
	return out
}

// requeueAfterError asks for the key to be processed again after a delay, without
// counting as a failure.
type requeueAfterError struct{ after time.Duration }

func (e *requeueAfterError) Error() string { return fmt.Sprintf("requeue after %s", e.after) }

func requeueAfter(d time.Duration) error { return &requeueAfterError{after: d} }

// processSpec syncs one upstream object down, in a fixed order: upstream gone → delete the
// downstream copy (only after a live confirmation); removal requested → delete downstream,
// then release the finalizer; finalizer first; namespace; transform; conflict check; apply
// only when something changed.
func (c *controllers) processSpec(ctx context.Context, key specKey) error {
	s := c.syncer
	began := time.Now()
	res, ok := s.engine.resource(key.gvr)
	if !ok {
		return nil
	}
	upstreamInf, ok := s.engine.upstreamInformer(key.workspace, key.gvr)
	if !ok {
		// The workspace is not watched (any more): leave downstream alone.
		return nil
	}
	wc, ok := s.engine.workspaceClients(key.workspace)
	if !ok {
		return nil
	}
	locator := s.locator(key.workspace, key.namespace)
	downstreamNamespace, err := locator.DownstreamNamespaceName()
	if err != nil {
		return err
	}
	logger := klog.FromContext(ctx).WithValues("workspace", key.workspace, "upstreamNamespace", key.namespace, "downstreamNamespace", downstreamNamespace, "name", key.name, "resource", key.gvr.Resource)
	ctx = klog.NewContext(ctx, logger)
	defer func() { s.metrics.observeSync(key.workspace, res.label(), time.Since(began)) }()

	obj, err := upstreamInf.lister.ByNamespace(key.namespace).Get(key.name)
	if apierrors.IsNotFound(err) {
		return c.handleUpstreamGone(ctx, key, upstreamInf, wc, downstreamNamespace)
	}
	if err != nil {
		return err
	}
	upstreamObj := obj.(*unstructured.Unstructured)
	stateLabel := workloadv1alpha1.ClusterResourceStateLabel(s.stKey)

	if c.removalRequested(upstreamObj) {
		return c.removeDownstream(ctx, key, wc, upstreamObj, downstreamNamespace)
	}
	if upstreamObj.GetLabels()[stateLabel] != workloadv1alpha1.ResourceStateSync {
		return nil
	}

	// The finalizer goes on before anything is written downstream, so that an upstream
	// delete can never leave an orphan behind.
	finalizer := workloadv1alpha1.SyncerFinalizerName(s.stKey)
	if !hasString(upstreamObj.GetFinalizers(), finalizer) {
		updated := upstreamObj.DeepCopy()
		updated.SetFinalizers(append(updated.GetFinalizers(), finalizer))
		if _, err := wc.dynamic.Resource(key.gvr).Namespace(key.namespace).Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("failed to add finalizer to upstream %s: %w", key.gvr.Resource, err)
		}
		s.metrics.upstreamWrite(operationPatchFinalizer)
		logger.V(3).Info("Added syncer finalizer upstream")
		return nil
	}

	if err := s.namespaces.ensure(ctx, locator, downstreamNamespace); err != nil {
		c.event(wc, upstreamObj, corev1.EventTypeWarning, "NamespaceError", err.Error())
		return err
	}

	tc := transform.Context{
		SyncTargetKey:       s.stKey,
		SyncTargetName:      s.cfg.SyncTargetName,
		UpstreamWorkspace:   key.workspace,
		UpstreamNamespace:   key.namespace,
		DownstreamNamespace: downstreamNamespace,
		GVR:                 key.gvr,
	}
	desired, err := s.chain.Down(ctx, tc, upstreamObj)
	if transform.IsFiltered(err) {
		logger.V(4).Info("Not syncing object", "reason", err.Error())
		return nil
	}
	if err != nil {
		if transform.IsInvalidInput(err) {
			c.event(wc, upstreamObj, corev1.EventTypeWarning, "InvalidSyncAnnotation", err.Error())
			return tmc.NewTMCError(tmc.TMCErrorTypeInvalidResource, err, "the object cannot be synced as annotated", tmc.TMCErrorSeverityMedium)
		}
		return err
	}
	if err := transform.SetHash(desired); err != nil {
		return err
	}

	downstreamInf, ok := s.engine.downstreamInformer(key.gvr)
	if !ok {
		return nil
	}
	var live *unstructured.Unstructured
	if o, err := downstreamInf.lister.ByNamespace(downstreamNamespace).Get(key.name); err == nil {
		live = o.(*unstructured.Unstructured)
	} else if apierrors.IsNotFound(err) {
		// Not in our (ownership-filtered) cache: look for an object we do not own.
		o, err := s.downstreamDynamic.Resource(key.gvr).Namespace(downstreamNamespace).Get(ctx, key.name, metav1.GetOptions{})
		switch {
		case err == nil:
			if o.GetLabels()[workloadv1alpha1.InternalDownstreamClusterLabel] != s.stKey {
				return c.conflict(ctx, key, wc, upstreamObj, res, downstreamNamespace)
			}
			live = o
		case !apierrors.IsNotFound(err):
			return fmt.Errorf("failed to get downstream %s: %w", key.gvr.Resource, err)
		}
	} else {
		return err
	}
	if live != nil && live.GetDeletionTimestamp() != nil {
		// Wait until a previous deletion finishes before re-creating.
		return requeueAfter(time.Second)
	}
	if need, reason := transform.NeedsApply(desired, live); !need {
		s.metrics.skipped(directionDown)
		c.takeSeen("spec|" + key.String())
		logger.V(4).Info("Downstream object up to date")
		return nil
	} else {
		logger.V(3).Info("Applying downstream object", "reason", reason)
	}
	if _, err := s.downstreamDynamic.Resource(key.gvr).Namespace(downstreamNamespace).Apply(ctx, key.name, desired, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
		if ev := eventReasonFor(err); ev != "" {
			c.event(wc, upstreamObj, corev1.EventTypeWarning, ev, fmt.Sprintf("The physical cluster of SyncTarget %s rejected the object: %v", s.cfg.SyncTargetName, err))
		}
		return fmt.Errorf("failed to apply downstream %s: %w", key.gvr.Resource, err)
	}
	s.metrics.downstreamWrite(operationApply)
	s.metrics.synced(key.workspace, res.label(), directionDown)
	s.metrics.observeEndToEnd(directionDown, c.takeSeen("spec|"+key.String()))
	return nil
}

// removalRequested reports whether the object is to be removed from this target: deleted
// upstream, or the per-target deletion annotation set with no soft finalizer left, or no
// longer labelled for syncing while we still hold our finalizer.
func (c *controllers) removalRequested(upstreamObj *unstructured.Unstructured) bool {
	s := c.syncer
	if upstreamObj.GetDeletionTimestamp() != nil {
		return true
	}
	ann := upstreamObj.GetAnnotations()
	if _, ok := ann[workloadv1alpha1.DeletionAnnotation(s.stKey)]; ok {
		return len(workloadv1alpha1.SoftFinalizers(ann[workloadv1alpha1.SoftFinalizersAnnotation(s.stKey)])) == 0
	}
	if upstreamObj.GetLabels()[workloadv1alpha1.ClusterResourceStateLabel(s.stKey)] != workloadv1alpha1.ResourceStateSync {
		return hasString(upstreamObj.GetFinalizers(), workloadv1alpha1.SyncerFinalizerName(s.stKey))
	}
	return false
}

// removeDownstream deletes the downstream copy and, once it is confirmed gone, releases the
// upstream object: finalizer removed, and for a per-target removal also the state label and
// the per-target annotations.
func (c *controllers) removeDownstream(ctx context.Context, key specKey, wc *workspaceClients, upstreamObj *unstructured.Unstructured, downstreamNamespace string) error {
	s := c.syncer
	logger := klog.FromContext(ctx)
	gone, err := c.deleteDownstream(ctx, key, downstreamNamespace)
	if err != nil || !gone {
		return err
	}
	finalizer := workloadv1alpha1.SyncerFinalizerName(s.stKey)
	perTarget := upstreamObj.GetDeletionTimestamp() == nil
	if !hasString(upstreamObj.GetFinalizers(), finalizer) && !perTarget {
		return nil
	}
	updated := upstreamObj.DeepCopy()
	updated.SetFinalizers(removeString(updated.GetFinalizers(), finalizer))
	if perTarget {
		labels := updated.GetLabels()
		delete(labels, workloadv1alpha1.ClusterResourceStateLabel(s.stKey))
		updated.SetLabels(labels)
		ann := updated.GetAnnotations()
		delete(ann, workloadv1alpha1.DeletionAnnotation(s.stKey))
		delete(ann, workloadv1alpha1.StatusAnnotation(s.stKey))
		updated.SetAnnotations(ann)
	}
	if _, err := wc.dynamic.Resource(key.gvr).Namespace(key.namespace).Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("failed to release upstream %s: %w", key.gvr.Resource, err)
	}
	s.metrics.upstreamWrite(operationPatchFinalizer)
	logger.V(2).Info("Downstream copy removed; released the upstream object")
	s.namespaces.consider(downstreamNamespace)
	return nil
}

// deleteDownstream deletes the downstream object and reports whether it is gone, confirmed
// by a live read.
func (c *controllers) deleteDownstream(ctx context.Context, key specKey, downstreamNamespace string) (bool, error) {
	s := c.syncer
	client := s.downstreamDynamic.Resource(key.gvr).Namespace(downstreamNamespace)
	live, err := client.Get(ctx, key.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("failed to get downstream %s: %w", key.gvr.Resource, err)
	}
	if live.GetLabels()[workloadv1alpha1.InternalDownstreamClusterLabel] != s.stKey {
		// Not ours: never delete it. The upstream object is released.
		return true, nil
	}
	if live.GetDeletionTimestamp() == nil {
		err := client.Delete(ctx, key.name, metav1.DeleteOptions{
			PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
			Preconditions:     &metav1.Preconditions{UID: ptr.To(live.GetUID())},
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("failed to delete downstream %s: %w", key.gvr.Resource, err)
		}
		s.metrics.downstreamWrite(operationDelete)
		klog.FromContext(ctx).V(2).Info("Deleted downstream object")
	}
	// The downstream delete event requeues the key; poll as a fallback.
	return false, requeueAfter(2 * time.Second)
}

// handleUpstreamGone handles an object that left the upstream cache: deleted, or no longer
// labelled for this target. Losing the upstream must never delete anything, so the informer
// has to be synced and a live read has to confirm the object is really gone (or really
// unlabelled) before the downstream copy is deleted. An unlabelled object that still carries
// our finalizer is released once its copy is gone.
func (c *controllers) handleUpstreamGone(ctx context.Context, key specKey, upstreamInf *informerHandle, wc *workspaceClients, downstreamNamespace string) error {
	s := c.syncer
	if !upstreamInf.synced() {
		return requeueAfter(5 * time.Second)
	}
	live, err := wc.dynamic.Resource(key.gvr).Namespace(key.namespace).Get(ctx, key.name, metav1.GetOptions{})
	switch {
	case err == nil:
		if live.GetLabels()[workloadv1alpha1.ClusterResourceStateLabel(s.stKey)] == workloadv1alpha1.ResourceStateSync {
			// Our cache lags; the object will arrive.
			return nil
		}
		// Still there, but no longer placed on this target: remove the copy, then release.
		gone, err := c.deleteDownstream(ctx, key, downstreamNamespace)
		if err != nil || !gone {
			return err
		}
		finalizer := workloadv1alpha1.SyncerFinalizerName(s.stKey)
		if hasString(live.GetFinalizers(), finalizer) {
			live.SetFinalizers(removeString(live.GetFinalizers(), finalizer))
			if _, err := wc.dynamic.Resource(key.gvr).Namespace(key.namespace).Update(ctx, live, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("failed to release upstream %s: %w", key.gvr.Resource, err)
			}
			s.metrics.upstreamWrite(operationPatchFinalizer)
		}
	case apierrors.IsNotFound(err):
		gone, err := c.deleteDownstream(ctx, key, downstreamNamespace)
		if err != nil || !gone {
			return err
		}
	default:
		return fmt.Errorf("failed to confirm that upstream %s is gone: %w", key.gvr.Resource, err)
	}
	s.namespaces.consider(downstreamNamespace)
	return nil
}

// conflict reports a downstream object that exists without our ownership label: it is left
// untouched, and the user learns about it from an Event, the error metric and the
// SyncTarget's error summary.
func (c *controllers) conflict(ctx context.Context, key specKey, wc *workspaceClients, upstreamObj *unstructured.Unstructured, res resourceInfo, downstreamNamespace string) error {
	s := c.syncer
	msg := fmt.Sprintf("%s %s/%s already exists in the physical cluster of SyncTarget %s without the label %s=%s; TMC leaves it untouched. Delete or label it to let TMC manage it.",
		res.kind, downstreamNamespace, key.name, s.cfg.SyncTargetName, workloadv1alpha1.InternalDownstreamClusterLabel, s.stKey)
	c.event(wc, upstreamObj, corev1.EventTypeWarning, "ResourceConflict", msg)
	s.metrics.conflicts.WithLabelValues(s.metrics.clusterName, key.workspace, res.label()).Inc()
	klog.FromContext(ctx).V(2).Info("Downstream object exists without our ownership label; leaving it alone")
	return tmc.NewTMCError(tmc.TMCErrorTypeResourceConflict, errors.New(msg), "downstream object not owned by TMC", tmc.TMCErrorSeverityMedium).
		WithResource(key.gvr.Resource + " " + key.namespace + "/" + key.name).WithWorkspace(key.workspace)
}

// processStatus copies the status of one downstream object to its upstream object, only
// when it differs.
func (c *controllers) processStatus(ctx context.Context, key statusKey) error {
	s := c.syncer
	res, ok := s.engine.resource(key.gvr)
	if !ok || !res.hasStatus {
		return nil
	}
	downstreamInf, ok := s.engine.downstreamInformer(key.gvr)
	if !ok {
		return nil
	}
	obj, err := downstreamInf.lister.ByNamespace(key.namespace).Get(key.name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	downstreamObj := obj.(*unstructured.Unstructured)
	loc, ok := s.namespaces.locatorOf(key.namespace)
	if !ok {
		return nil
	}
	upstreamInf, ok := s.engine.upstreamInformer(loc.ClusterName, key.gvr)
	if !ok {
		return nil
	}
	wc, ok := s.engine.workspaceClients(loc.ClusterName)
	if !ok {
		return nil
	}
	began := time.Now()
	defer func() { s.metrics.observeSync(loc.ClusterName, res.label(), time.Since(began)) }()
	up, err := upstreamInf.lister.ByNamespace(loc.Namespace).Get(key.name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	upstreamObj := up.(*unstructured.Unstructured)
	if upstreamObj.GetDeletionTimestamp() != nil {
		return nil
	}
	client := wc.dynamic.Resource(key.gvr).Namespace(loc.Namespace)
	if c.onSeveralTargets(upstreamObj) {
		return c.writeStatusAnnotation(ctx, key, client, upstreamObj, downstreamObj, loc.ClusterName, res)
	}
	updated, changed := transform.StatusForUpstream(upstreamObj, downstreamObj)
	if !changed {
		s.metrics.skipped(directionUp)
		c.takeSeen("status|" + key.String())
		return nil
	}
	if _, err := client.UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("failed to update upstream status: %w", err)
	}
	s.metrics.upstreamWrite(operationUpdateStatus)
	s.metrics.synced(loc.ClusterName, res.label(), directionUp)
	s.metrics.observeEndToEnd(directionUp, c.takeSeen("status|"+key.String()))
	klog.FromContext(ctx).V(3).Info("Updated upstream status", "workspace", loc.ClusterName, "upstreamNamespace", loc.Namespace)
	return nil
}

// onSeveralTargets reports whether the upstream object is synced to more than one target.
func (c *controllers) onSeveralTargets(upstreamObj *unstructured.Unstructured) bool {
	n := 0
	for k, v := range upstreamObj.GetLabels() {
		if _, ok := workloadv1alpha1.SyncTargetKeyFromLabel(workloadv1alpha1.ClusterResourceStateLabelPrefix, k); ok && v == workloadv1alpha1.ResourceStateSync {
			n++
		}
	}
	return n > 1
}

func hasString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func removeString(list []string, s string) []string {
	out := make([]string, 0, len(list))
	for _, v := range list {
		if v != s {
			out = append(out, v)
		}
	}
	return out
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

// writeStatusAnnotation records the downstream status in the per-target status annotation,
// used instead of .status when the object runs on several targets.
func (c *controllers) writeStatusAnnotation(ctx context.Context, key statusKey, client dynamic.ResourceInterface, upstreamObj, downstreamObj *unstructured.Unstructured, workspace string, res resourceInfo) error {
	s := c.syncer
	status, found, err := unstructured.NestedFieldNoCopy(downstreamObj.Object, "status")
	if err != nil || !found {
		return nil
	}
	b, err := json.Marshal(status)
	if err != nil {
		return fmt.Errorf("failed to marshal downstream status: %w", err)
	}
	annotation := workloadv1alpha1.StatusAnnotation(s.stKey)
	if upstreamObj.GetAnnotations()[annotation] == string(b) {
		s.metrics.skipped(directionUp)
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{annotation: string(b)}}})
	if err != nil {
		return fmt.Errorf("failed to build status annotation patch: %w", err)
	}
	if _, err := client.Patch(ctx, key.name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("failed to write the per-target status annotation: %w", err)
	}
	s.metrics.upstreamWrite(operationUpdateStatus)
	s.metrics.synced(workspace, res.label(), directionUp)
	s.metrics.observeEndToEnd(directionUp, c.takeSeen("status|"+key.String()))
	return nil
}

// event records an Event on an upstream object, in its workspace.
func (c *controllers) event(wc *workspaceClients, upstreamObj *unstructured.Unstructured, eventType, reason, message string) {
	if wc.recorder == nil {
		return
	}
	wc.recorder.Event(upstreamObj, eventType, reason, message)
}
