package location

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	"github.com/tmc-dev/tmc/pkg/workspaces"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcscheme "github.com/tmc-dev/tmc/sdk/client/clientset/versioned/scheme"
	schedulingclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned/typed/scheduling/v1alpha1"
	schedulinglisters "github.com/tmc-dev/tmc/sdk/client/listers/scheduling/v1alpha1"
	workloadlisters "github.com/tmc-dev/tmc/sdk/client/listers/workload/v1alpha1"
)

const (
	// ControllerName names the controller in logs, Events and the workqueue.
	ControllerName = "tmc-location"

	// EventReasonInvalidInstanceSelector is the Warning Event on a Location whose
	// instanceSelector or resource cannot be used; it then counts no instances.
	EventReasonInvalidInstanceSelector = "InvalidInstanceSelector"
)

// Controller keeps status.instances and status.availableInstances of the Locations of one
// location workspace.
type Controller struct {
	workspace string
	clock     clock.PassiveClock

	queue             workqueue.TypedRateLimitingInterface[string]
	locationLister    schedulinglisters.LocationLister
	syncTargetLister  workloadlisters.SyncTargetLister
	locationsSynced   cache.InformerSynced
	syncTargetsSynced cache.InformerSynced

	locationClient schedulingclient.LocationInterface
	locationEvents typedcorev1.EventInterface
	// recorder is set by Run unless a test injected one.
	recorder record.EventRecorder

	metrics *metrics
}

// NewController returns the Location controller of location workspace ws; metrics may be
// nil. The Location and SyncTarget informers are registered on ws.TMCInformers here; the
// caller starts the factory after constructing every controller.
func NewController(ws *workspaces.Workspace, metrics *tmc.TMCMetrics) (*Controller, error) {
	switch {
	case ws == nil:
		return nil, errors.New("location controller: workspace is nil")
	case ws.TMC == nil:
		return nil, fmt.Errorf("location controller: workspace %q has no TMC client", ws.Path)
	case ws.Kube == nil:
		return nil, fmt.Errorf("location controller: workspace %q has no Kubernetes client", ws.Path)
	case ws.TMCInformers == nil:
		return nil, fmt.Errorf("location controller: workspace %q has no TMC informer factory", ws.Path)
	}
	m, err := newMetrics(metrics, ws.Path)
	if err != nil {
		return nil, fmt.Errorf("location controller: failed to register metrics: %w", err)
	}
	queueConfig := workqueue.TypedRateLimitingQueueConfig[string]{Name: ControllerName + "-" + ws.Path}
	if metrics != nil {
		queueConfig.MetricsProvider = metrics.WorkqueueMetricsProvider()
	}

	locations := ws.TMCInformers.Scheduling().V1alpha1().Locations()
	syncTargets := ws.TMCInformers.Workload().V1alpha1().SyncTargets()
	c := &Controller{
		workspace:         ws.Path,
		clock:             clock.RealClock{},
		queue:             workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](), queueConfig),
		locationLister:    locations.Lister(),
		syncTargetLister:  syncTargets.Lister(),
		locationsSynced:   locations.Informer().HasSynced,
		syncTargetsSynced: syncTargets.Informer().HasSynced,
		locationClient:    ws.TMC.SchedulingV1alpha1().Locations(),
		locationEvents:    ws.Kube.CoreV1().Events(""),
		metrics:           m,
	}
	if _, err := locations.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueLocation,
		UpdateFunc: func(_, newObj any) { c.enqueueLocation(newObj) },
		DeleteFunc: c.enqueueLocation,
	}); err != nil {
		return nil, fmt.Errorf("location controller: failed to watch Locations: %w", err)
	}
	if _, err := syncTargets.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { c.enqueueAllLocations() },
		UpdateFunc: func(oldObj, newObj any) {
			oldST, ok1 := oldObj.(*workloadv1alpha1.SyncTarget)
			newST, ok2 := newObj.(*workloadv1alpha1.SyncTarget)
			if !ok1 || !ok2 || countsMayDiffer(oldST, newST) {
				c.enqueueAllLocations()
			}
		},
		DeleteFunc: func(any) { c.enqueueAllLocations() },
	}); err != nil {
		return nil, fmt.Errorf("location controller: failed to watch SyncTargets: %w", err)
	}
	return c, nil
}

// countsMayDiffer reports whether a SyncTarget update can change any Location's counts.
// Heartbeats, which update every target every 20 s, change none of these.
func countsMayDiffer(oldST, newST *workloadv1alpha1.SyncTarget) bool {
	return !labels.Equals(SelectionLabels(oldST), SelectionLabels(newST)) ||
		oldST.Spec.Unschedulable != newST.Spec.Unschedulable ||
		!oldST.Spec.EvictAfter.Equal(newST.Spec.EvictAfter) ||
		meta.IsStatusConditionTrue(oldST.Status.Conditions, workloadv1alpha1.SyncTargetReady) !=
			meta.IsStatusConditionTrue(newST.Status.Conditions, workloadv1alpha1.SyncTargetReady)
}

func (c *Controller) enqueueLocation(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	c.queue.Add(key)
}

func (c *Controller) enqueueAllLocations() {
	locations, err := c.locationLister.List(labels.Everything())
	if err != nil {
		utilruntime.HandleError(fmt.Errorf("failed to list Locations: %w", err))
		return
	}
	for _, loc := range locations {
		c.queue.Add(loc.Name)
	}
}

// Run processes Locations with the given number of workers (at least one) until ctx ends;
// it waits for the Location and SyncTarget caches first.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()

	logger := klog.FromContext(ctx).WithValues("controller", ControllerName, "workspace", c.workspace)
	ctx = klog.NewContext(ctx, logger)

	if c.recorder == nil {
		broadcaster := record.NewBroadcaster(record.WithContext(ctx))
		broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.locationEvents})
		defer broadcaster.Shutdown()
		c.recorder = broadcaster.NewRecorder(tmcscheme.Scheme, corev1.EventSource{Component: ControllerName})
	}

	logger.Info("Starting controller")
	defer logger.Info("Shutting down controller")
	if !cache.WaitForNamedCacheSyncWithContext(ctx, c.locationsSynced, c.syncTargetsSynced) {
		return
	}

	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() { wait.UntilWithContext(ctx, c.worker, time.Second) })
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
}

func (c *Controller) worker(ctx context.Context) {
	for c.processNextWorkItem(ctx) {
	}
}

// processNextWorkItem reconciles one Location. Success forgets its backoff and schedules
// the next evictAfter; a failure is retried with the queue's per-item exponential backoff
// (5 ms doubling up to 1000 s), or after the server's Retry-After.
func (c *Controller) processNextWorkItem(ctx context.Context) bool {
	name, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(name)

	logger := klog.FromContext(ctx).WithValues("location", klog.KRef("", name))
	ctx = klog.NewContext(ctx, logger)

	requeueAfter, err := c.reconcile(ctx, name)
	if err == nil {
		c.queue.Forget(name)
		if requeueAfter > 0 {
			logger.V(4).Info("Counting again when an instance starts evicting", "after", requeueAfter)
			c.queue.AddAfter(name, requeueAfter)
		}
		return true
	}
	if errors.Is(err, context.Canceled) {
		c.queue.Forget(name)
		return true
	}
	tmcErr := tmc.Classify(err).WithComponent(ControllerName).WithOperation("reconcile").WithWorkspace(c.workspace).WithResource("locations " + name)
	if tmcErr.Retryable {
		logger.V(2).Info("Reconcile failed; retrying", "errorType", tmcErr.Type, "err", err)
	} else {
		logger.Error(err, "Reconcile failed; retrying with backoff", "errorType", tmcErr.Type)
	}
	if tmcErr.RetryAfter > 0 {
		c.queue.AddAfter(name, tmcErr.RetryAfter)
		return true
	}
	c.queue.AddRateLimited(name)
	return true
}
