package location

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/tmc-dev/tmc/pkg/reconciler/queue"
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

	queue             *queue.Queue[string]
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

	locations := ws.TMCInformers.Scheduling().V1alpha1().Locations()
	syncTargets := ws.TMCInformers.Workload().V1alpha1().SyncTargets()
	c := &Controller{
		workspace:         ws.Path,
		clock:             clock.RealClock{},
		locationLister:    locations.Lister(),
		syncTargetLister:  syncTargets.Lister(),
		locationsSynced:   locations.Informer().HasSynced,
		syncTargetsSynced: syncTargets.Informer().HasSynced,
		locationClient:    ws.TMC.SchedulingV1alpha1().Locations(),
		locationEvents:    ws.Kube.CoreV1().Events(""),
		metrics:           m,
	}
	queueOptions := queue.Options[string]{
		Name:      ControllerName + "-" + ws.Path,
		Component: ControllerName,
		LogValues: func(name string) []any { return []any{"location", klog.KRef("", name)} },
	}
	if metrics != nil {
		queueOptions.MetricsProvider = metrics.WorkqueueMetricsProvider()
		queueOptions.Recovery.Registerer = metrics.Registerer()
	}
	// A future evictAfter comes back as requeueAfter, so the Location is counted again
	// exactly when that instance starts evicting.
	c.queue = queue.New(c.reconcile, queueOptions)
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
// it waits for the Location and SyncTarget caches first. Failures are retried by the queue's
// one TMC retry rule (pkg/reconciler/queue).
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()

	logger := klog.FromContext(ctx).WithValues("controller", ControllerName, "workspace", c.workspace)
	ctx = klog.NewContext(ctx, logger)

	if c.recorder == nil {
		var stopEvents func()
		c.recorder, stopEvents = tmc.NewEventRecorder(ctx, c.locationEvents, tmcscheme.Scheme, corev1.EventSource{Component: ControllerName})
		defer stopEvents()
	}

	logger.Info("Starting controller")
	defer logger.Info("Shutting down controller")
	if !cache.WaitForNamedCacheSyncWithContext(ctx, c.locationsSynced, c.syncTargetsSynced) {
		return
	}

	c.queue.Run(ctx, workers)
}
