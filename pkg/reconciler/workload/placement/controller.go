package placement

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/tmc-dev/tmc/pkg/reconciler/queue"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	"github.com/tmc-dev/tmc/pkg/workspaces"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	schedulinglisters "github.com/tmc-dev/tmc/sdk/client/listers/scheduling/v1alpha1"
	workloadlisters "github.com/tmc-dev/tmc/sdk/client/listers/workload/v1alpha1"
)

// ControllerName names the controller in logs, workqueue metrics and Events.
const ControllerName = "tmc-placement"

// DecisionsMetric counts scheduling decisions by workspace and result.
const DecisionsMetric = "tmc_placement_decisions_total"

// DefaultUnhealthyGracePeriod is how long a SyncTarget may be not Ready before its
// namespaces are rescheduled.
const DefaultUnhealthyGracePeriod = 5 * time.Minute

// Results of a scheduling decision (label "result" of DecisionsMetric).
const (
	ResultScheduled     = "scheduled"
	ResultRescheduled   = "rescheduled"
	ResultUnschedulable = "unschedulable"
	ResultUnscheduled   = "unscheduled"
	// ResultFailoverHeld: a namespace with persistent data stays on a target past its grace
	// period (once per episode).
	ResultFailoverHeld = "failover_held"
)

// Options configures the controller. Only Clock has no default; all fields are optional.
type Options struct {
	// UnhealthyGracePeriod is how long a target may be Ready=False (counted from the Ready
	// condition's lastTransitionTime) before its namespaces move. Zero means 5m.
	UnhealthyGracePeriod time.Duration
	// TypesInUse returns the resource types that have objects in a namespace; a new target
	// must accept all of them. Nil: only Ready and schedulable are checked.
	TypesInUse func(workspace, namespace string) []workloadv1alpha1.ResourceToSync
	// ObjectsLabelledFor returns how many objects in a namespace still carry the state label
	// of stKey (any synced type). Nil: the controller counts the default synced types from
	// its own caches.
	ObjectsLabelledFor func(workspace, namespace, stKey string) int
	// EventRecorderFor returns the recorder for Events on the namespaces of a workload
	// workspace. Nil: Events are written into each workspace through its Kube client.
	EventRecorderFor func(workspace string) record.EventRecorder
	// Clock is the time source (a FakeClock in tests). Nil means the real clock.
	Clock clock.Clock
	// Metrics receives the decision counter and the workqueue metrics. May be nil.
	Metrics *tmc.TMCMetrics
}

// removalRecheck is how often a namespace waiting for objects to lose a target's label is
// looked at again when the count comes from Options.ObjectsLabelledFor, whose changes this
// controller is not notified of for types beyond the default ones it watches.
const removalRecheck = 30 * time.Second

// queueKey names a namespace or a Placement (both cluster-scoped) in a workload workspace.
type queueKey struct {
	workspace string
	name      string
}

func (k queueKey) String() string { return k.workspace + "|" + k.name }

// workloadWorkspace holds the caches of one workload workspace.
type workloadWorkspace struct {
	path       string
	kube       *workspaces.Workspace
	placements schedulinglisters.PlacementLister
	namespaces corelisters.NamespaceLister
	nsIndexer  cache.Indexer
	objects    map[schema.GroupVersionResource]cache.GenericLister
	recorder   record.EventRecorder
	// synced are the workspace's informers; nothing of it is processed before they are.
	synced []cache.InformerSynced
}

// hasSynced reports whether every informer of the workspace has synced.
func (wl *workloadWorkspace) hasSynced() bool {
	for _, synced := range wl.synced {
		if !synced() {
			return false
		}
	}
	return true
}

// locationWorkspace holds the caches of one location workspace.
type locationWorkspace struct {
	path        string
	locations   schedulinglisters.LocationLister
	syncTargets workloadlisters.SyncTargetLister
}

// Controller schedules namespaces onto SyncTargets and reports on Placements.
type Controller struct {
	clock              clock.Clock
	grace              time.Duration
	typesInUse         func(workspace, namespace string) []workloadv1alpha1.ResourceToSync
	objectsLabelledFor func(workspace, namespace, stKey string) int
	decisions          *prometheus.CounterVec

	// location is fixed after construction, synced holds its informers.
	location map[string]*locationWorkspace
	synced   []cache.InformerSynced

	// workloadMu guards the workload workspaces, which grow with AddWorkloadWorkspace, and
	// their broadcasters, started once Run has (eventsCtx set).
	workloadMu   sync.RWMutex
	workload     map[string]*workloadWorkspace
	broadcasters map[string]record.EventBroadcaster
	eventsCtx    context.Context
	recorderFor  func(workspace string) record.EventRecorder

	namespaceQueue *queue.Queue[queueKey]
	placementQueue *queue.Queue[queueKey]

	assumed *assumeCache
	// scheduleMu serialises the choice of a new target (load count, patch, assume) so that
	// two workers never decide on the same counts.
	scheduleMu sync.Mutex

	mu            sync.Mutex
	lastScheduled map[queueKey]string // Placement → key of the target it placed a namespace on last
	episodes      map[episode]bool    // namespace conditions reported once per episode (unschedule.go)
}

// NewController registers the informers the controller needs on the factories of set (the
// caller starts them) and returns the controller.
func NewController(set *workspaces.Set, opts Options) (*Controller, error) {
	if set == nil {
		return nil, errors.New("placement controller needs a workspace set")
	}
	if opts.UnhealthyGracePeriod < 0 {
		return nil, fmt.Errorf("unhealthy grace period must not be negative, got %s", opts.UnhealthyGracePeriod)
	}
	c := &Controller{
		clock:              opts.Clock,
		grace:              opts.UnhealthyGracePeriod,
		typesInUse:         opts.TypesInUse,
		objectsLabelledFor: opts.ObjectsLabelledFor,
		recorderFor:        opts.EventRecorderFor,
		workload:           map[string]*workloadWorkspace{},
		location:           map[string]*locationWorkspace{},
		broadcasters:       map[string]record.EventBroadcaster{},
		lastScheduled:      map[queueKey]string{},
		episodes:           map[episode]bool{},
	}
	if c.clock == nil {
		c.clock = clock.RealClock{}
	}
	if c.grace == 0 {
		c.grace = DefaultUnhealthyGracePeriod
	}
	c.assumed = newAssumeCache(c.clock)

	var provider workqueue.MetricsProvider
	var recovery tmc.RecoveryOptions
	if opts.Metrics != nil {
		provider = opts.Metrics.WorkqueueMetricsProvider()
		recovery.Registerer = opts.Metrics.Registerer()
		vec, err := opts.Metrics.RegisterCounterVec(DecisionsMetric,
			"Scheduling decisions of the placement controller by workload workspace and result (scheduled, rescheduled, unschedulable, unscheduled, failover_held).",
			[]string{"workspace", "result"})
		if err != nil {
			return nil, err
		}
		c.decisions = vec
	}
	var queueClock clock.WithTicker
	if wt, ok := c.clock.(clock.WithTicker); ok {
		queueClock = wt
	}
	queueOptions := func(name, kind string) queue.Options[queueKey] {
		return queue.Options[queueKey]{
			Name:            name,
			Component:       ControllerName,
			MetricsProvider: provider,
			Clock:           queueClock,
			Recovery:        recovery,
			LogValues:       func(key queueKey) []any { return []any{"workspace", key.workspace, kind, key.name} },
		}
	}
	// Both reconciles return the moment a target's evictAfter or grace period expires as
	// requeueAfter, so time is never polled.
	c.namespaceQueue = queue.New(c.whenSynced(c.reconcileNamespace), queueOptions("placement-namespaces", "namespace"))
	c.placementQueue = queue.New(c.whenSynced(c.reconcilePlacement), queueOptions("placement-placements", "placement"))

	for path, ws := range set.Location {
		if err := c.addLocationWorkspace(path, ws); err != nil {
			return nil, err
		}
	}
	for _, path := range set.WorkloadPaths() {
		if err := c.AddWorkloadWorkspace(set.WorkloadWorkspace(path)); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// workspaceSyncRecheck is how soon a key of a workload workspace whose informers have not
// synced yet (one bound at runtime) is looked at again.
const workspaceSyncRecheck = time.Second

// whenSynced runs reconcile only once the key's workload workspace has synced: a
// workspace bound at runtime is decided on complete caches only.
func (c *Controller) whenSynced(reconcile queue.ReconcileFunc[queueKey]) queue.ReconcileFunc[queueKey] {
	return func(ctx context.Context, key queueKey) (time.Duration, error) {
		if wl, ok := c.workloadWorkspace(key.workspace); ok && !wl.hasSynced() {
			return workspaceSyncRecheck, nil
		}
		return reconcile(ctx, key)
	}
}

// workloadWorkspace returns the caches of a workload workspace.
func (c *Controller) workloadWorkspace(path string) (*workloadWorkspace, bool) {
	c.workloadMu.RLock()
	defer c.workloadMu.RUnlock()
	wl, ok := c.workload[path]
	return wl, ok
}

// workloadWorkspaces returns the workload workspaces by path, a copy.
func (c *Controller) workloadWorkspaces() map[string]*workloadWorkspace {
	c.workloadMu.RLock()
	defer c.workloadMu.RUnlock()
	return maps.Clone(c.workload)
}

func checkWorkspace(path string, ws *workspaces.Workspace) error {
	if ws == nil || ws.Kube == nil || ws.Dynamic == nil || ws.TMC == nil ||
		ws.KubeInformers == nil || ws.DynamicInformers == nil || ws.TMCInformers == nil {
		return fmt.Errorf("workspace %q lacks clients or informer factories", path)
	}
	return nil
}

func (c *Controller) addLocationWorkspace(path string, ws *workspaces.Workspace) error {
	if err := checkWorkspace(path, ws); err != nil {
		return err
	}
	locInf := ws.TMCInformers.Scheduling().V1alpha1().Locations()
	stInf := ws.TMCInformers.Workload().V1alpha1().SyncTargets()
	c.location[path] = &locationWorkspace{path: path, locations: locInf.Lister(), syncTargets: stInf.Lister()}

	enqueue := func() { c.enqueueForLocationWorkspace(path) }
	if _, err := locInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { enqueue() },
		UpdateFunc: func(any, any) { enqueue() },
		DeleteFunc: func(any) { enqueue() },
	}); err != nil {
		return fmt.Errorf("failed to watch Locations in %s: %w", path, err)
	}
	if _, err := stInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { enqueue() },
		UpdateFunc: func(oldObj, newObj any) {
			oldST, ok1 := oldObj.(*workloadv1alpha1.SyncTarget)
			newST, ok2 := newObj.(*workloadv1alpha1.SyncTarget)
			if !ok1 || !ok2 || schedulingInputsChanged(oldST, newST) {
				enqueue()
			}
		},
		DeleteFunc: func(any) { enqueue() },
	}); err != nil {
		return fmt.Errorf("failed to watch SyncTargets in %s: %w", path, err)
	}
	c.synced = append(c.synced, locInf.Informer().HasSynced, stInf.Informer().HasSynced)
	return nil
}

// AddWorkloadWorkspace registers the informers the controller needs on the factories of the
// workload workspace ws (the caller starts them). It may be called while the controller
// runs: the workspace's namespaces and Placements are processed once its informers have
// synced. A workspace the controller has is left alone.
func (c *Controller) AddWorkloadWorkspace(ws *workspaces.Workspace) error {
	path := ""
	if ws != nil {
		path = ws.Path
	}
	if err := checkWorkspace(path, ws); err != nil {
		return err
	}
	c.workloadMu.Lock()
	defer c.workloadMu.Unlock()
	if _, exists := c.workload[path]; exists {
		return nil
	}
	plInf := ws.TMCInformers.Scheduling().V1alpha1().Placements()
	nsInf := ws.KubeInformers.Core().V1().Namespaces()
	if _, exists := nsInf.Informer().GetIndexer().GetIndexers()[placedIndex]; !exists {
		if err := nsInf.Informer().AddIndexers(cache.Indexers{placedIndex: placedIndexFunc}); err != nil {
			return fmt.Errorf("failed to index namespaces of %s: %w", path, err)
		}
	}
	wl := &workloadWorkspace{
		path:       path,
		kube:       ws,
		placements: plInf.Lister(),
		namespaces: nsInf.Lister(),
		nsIndexer:  nsInf.Informer().GetIndexer(),
		objects:    map[schema.GroupVersionResource]cache.GenericLister{},
	}
	if c.recorderFor != nil {
		wl.recorder = c.recorderFor(path)
	} else {
		b := record.NewBroadcaster()
		c.broadcasters[path] = b
		wl.recorder = b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: ControllerName})
		if c.eventsCtx != nil {
			c.startRecording(c.eventsCtx, b, ws)
		}
	}

	if _, err := plInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.placementChanged(path, obj, true) },
		UpdateFunc: func(oldObj, newObj any) {
			c.placementChanged(path, newObj, placementInputsChanged(oldObj, newObj))
		},
		DeleteFunc: func(obj any) { c.placementChanged(path, obj, true) },
	}); err != nil {
		return fmt.Errorf("failed to watch Placements in %s: %w", path, err)
	}
	if _, err := nsInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.namespaceChanged(path, obj) },
		UpdateFunc: func(_, obj any) { c.namespaceChanged(path, obj) },
		DeleteFunc: func(obj any) { c.namespaceChanged(path, obj) },
	}); err != nil {
		return fmt.Errorf("failed to watch namespaces in %s: %w", path, err)
	}
	wl.synced = append(wl.synced, plInf.Informer().HasSynced, nsInf.Informer().HasSynced)

	for _, gvr := range watchedObjectTypes {
		inf := ws.DynamicInformers.ForResource(gvr)
		wl.objects[gvr] = inf.Lister()
		// Persistent data holds a namespace on its target whether synced or not.
		always := gvr == persistentVolumeClaimsGVR || gvr == statefulSetsGVR
		if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { c.objectChanged(path, nil, obj, always) },
			UpdateFunc: func(oldObj, newObj any) { c.objectChanged(path, oldObj, newObj, always) },
			DeleteFunc: func(obj any) { c.objectChanged(path, nil, obj, always) },
		}); err != nil {
			return fmt.Errorf("failed to watch %s in %s: %w", gvr.Resource, path, err)
		}
		wl.synced = append(wl.synced, inf.Informer().HasSynced)
	}
	c.workload[path] = wl
	return nil
}

// startRecording sends the Events of broadcaster b into workspace ws until ctx ends.
func (c *Controller) startRecording(ctx context.Context, b record.EventBroadcaster, ws *workspaces.Workspace) {
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: ws.Kube.CoreV1().Events("")})
	context.AfterFunc(ctx, b.Shutdown)
}

// Run waits for the caches, then runs the given number of workers (at least one) for
// namespaces and as many for Placements until ctx ends. Failures are retried by the queues'
// one TMC retry rule (pkg/reconciler/queue).
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	logger := klog.FromContext(ctx).WithValues("controller", ControllerName)
	ctx = klog.NewContext(ctx, logger)
	defer c.namespaceQueue.ShutDown()
	defer c.placementQueue.ShutDown()

	c.workloadMu.Lock()
	c.eventsCtx = ctx
	for path, b := range c.broadcasters {
		c.startRecording(ctx, b, c.workload[path].kube)
	}
	synced := append([]cache.InformerSynced(nil), c.synced...)
	for _, wl := range c.workload {
		synced = append(synced, wl.synced...)
	}
	c.workloadMu.Unlock()

	logger.Info("Starting controller")
	defer logger.Info("Shutting down controller")
	// The workspaces known at start are waited for together; those bound later are gated
	// one by one (whenSynced).
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { c.namespaceQueue.Run(ctx, workers) })
	wg.Go(func() { c.placementQueue.Run(ctx, workers) })
	wg.Wait()
}

// countDecision records a scheduling decision in DecisionsMetric.
func (c *Controller) countDecision(workspace, result string) {
	if c.decisions != nil {
		c.decisions.WithLabelValues(workspace, result).Inc()
	}
}
