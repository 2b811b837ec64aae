package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/dynamic"
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
	workloadlisters "github.com/tmc-dev/tmc/sdk/client/listers/workload/v1alpha1"
)

const (
	// ControllerName names the controller in logs, Events and the workqueue.
	ControllerName = "tmc-heartbeat"

	// FieldManager owns HeartbeatHealthy and Ready in SyncTarget status.
	FieldManager = "tmc-controller-heartbeat"

	// DefaultThreshold is how long a heartbeat stays healthy by default: three of the
	// syncer's 20 s heartbeat intervals.
	DefaultThreshold = 60 * time.Second

	// EventReasonHeartbeatMissed is the Warning Event on a SyncTarget whose heartbeat
	// expired.
	EventReasonHeartbeatMissed = "SyncerHeartbeatMissed"
	// EventReasonHeartbeatRecovered is the Normal Event on a SyncTarget whose heartbeat
	// came back after it had expired.
	EventReasonHeartbeatRecovered = "SyncerHeartbeatRecovered"
)

var syncTargetsGVR = workloadv1alpha1.SchemeGroupVersion.WithResource("synctargets")

// Controller keeps HeartbeatHealthy and Ready of the SyncTargets of one location workspace.
type Controller struct {
	workspace string
	threshold time.Duration
	clock     clock.Clock

	queue             *queue.Queue[string]
	syncTargetLister  workloadlisters.SyncTargetLister
	syncTargetsSynced cache.InformerSynced

	// locationDynamic applies the status; locationEvents receives the Events. Both point
	// at the location workspace.
	locationDynamic dynamic.Interface
	locationEvents  typedcorev1.EventInterface
	// recorder is set by Run unless a test injected one.
	recorder record.EventRecorder

	metrics *metrics

	// written remembers, per SyncTarget, the conditions last applied and the
	// resourceVersion they were computed from, so that a reconcile running before the
	// informer has seen the write neither writes again nor repeats its Events.
	writtenMu sync.Mutex
	written   map[string]writtenConditions
}

type writtenConditions struct {
	resourceVersion string
	conditions      []metav1.Condition
}

// NewController returns the heartbeat controller of location workspace ws. A heartbeat
// older than threshold is unhealthy. clk is the time source (nil: the real clock); with a
// clock.WithTicker (both the real and the fake clock are) the workqueue's delays use it too.
// metrics may be nil. The SyncTarget informer is registered on ws.TMCInformers here;
// the caller starts the factory after constructing every controller.
func NewController(ws *workspaces.Workspace, threshold time.Duration, clk clock.Clock, metrics *tmc.TMCMetrics) (*Controller, error) {
	return newController(ws, threshold, clk, metrics, nil)
}

// newController is NewController; observe, if not nil, may add hooks to the queue's
// options before the queue is built (tests record its requeue delays with it).
func newController(ws *workspaces.Workspace, threshold time.Duration, clk clock.Clock, metrics *tmc.TMCMetrics,
	observe func(*queue.Options[string])) (*Controller, error) {
	switch {
	case ws == nil:
		return nil, errors.New("heartbeat controller: workspace is nil")
	case ws.Dynamic == nil:
		return nil, fmt.Errorf("heartbeat controller: workspace %q has no dynamic client", ws.Path)
	case ws.Kube == nil:
		return nil, fmt.Errorf("heartbeat controller: workspace %q has no Kubernetes client", ws.Path)
	case ws.TMCInformers == nil:
		return nil, fmt.Errorf("heartbeat controller: workspace %q has no TMC informer factory", ws.Path)
	case threshold <= 0:
		return nil, fmt.Errorf("heartbeat controller: threshold must be positive, got %s", threshold)
	}
	if clk == nil {
		clk = clock.RealClock{}
	}
	m, err := newMetrics(metrics, ws.Path)
	if err != nil {
		return nil, fmt.Errorf("heartbeat controller: failed to register metrics: %w", err)
	}

	informer := ws.TMCInformers.Workload().V1alpha1().SyncTargets()
	c := &Controller{
		workspace:         ws.Path,
		threshold:         threshold,
		clock:             clk,
		syncTargetLister:  informer.Lister(),
		syncTargetsSynced: informer.Informer().HasSynced,
		locationDynamic:   ws.Dynamic,
		locationEvents:    ws.Kube.CoreV1().Events(""),
		metrics:           m,
		written:           map[string]writtenConditions{},
	}
	queueOptions := queue.Options[string]{
		Name:      ControllerName + "-" + ws.Path,
		Component: ControllerName,
		LogValues: func(name string) []any { return []any{"syncTarget", klog.KRef("", name)} },
	}
	if metrics != nil {
		queueOptions.MetricsProvider = metrics.WorkqueueMetricsProvider()
		queueOptions.Recovery.Registerer = metrics.Registerer()
	}
	if withTicker, ok := clk.(clock.WithTicker); ok {
		queueOptions.Clock = withTicker
	}
	if observe != nil {
		observe(&queueOptions)
	}
	// A healthy target's reconcile returns the time left until its heartbeat expires as
	// requeueAfter, so the expiry is seen exactly on time without polling.
	c.queue = queue.New(c.reconcile, queueOptions)
	if _, err := informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueue,
		// Every update counts: a heartbeat moves lastSyncerHeartbeatTime, the syncer may
		// change SyncerReady, and somebody may have edited our conditions.
		UpdateFunc: func(_, newObj any) { c.enqueue(newObj) },
		DeleteFunc: c.enqueue,
	}); err != nil {
		return nil, fmt.Errorf("heartbeat controller: failed to watch SyncTargets: %w", err)
	}
	return c, nil
}

func (c *Controller) enqueue(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	c.queue.Add(key)
}

// Run processes SyncTargets with the given number of workers (at least one) until ctx
// ends; it waits for the SyncTarget cache first. Failures are retried by the queue's one
// TMC retry rule (pkg/reconciler/queue): a Forbidden slowly until the RBAC is fixed, a
// SyncTarget that is gone not at all.
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

	logger.Info("Starting controller", "threshold", c.threshold)
	defer logger.Info("Shutting down controller")
	if !cache.WaitForNamedCacheSyncWithContext(ctx, c.syncTargetsSynced) {
		return
	}

	c.queue.Run(ctx, workers)
}
