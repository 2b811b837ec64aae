package release

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/tmc-dev/tmc/pkg/reconciler/queue"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/resource"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	"github.com/tmc-dev/tmc/pkg/workspaces"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
	tmcscheme "github.com/tmc-dev/tmc/sdk/client/clientset/versioned/scheme"
	workloadlisters "github.com/tmc-dev/tmc/sdk/client/listers/workload/v1alpha1"
)

const (
	// ControllerName names the controller in logs, Events and the workqueue.
	ControllerName = "tmc-synctarget-release"

	// FieldManager is the field manager of the controller's metadata patches.
	FieldManager = "tmc-controller-release"

	// DefaultGrace is how long the syncer of a deleted SyncTarget (or of a SyncTarget
	// past its heartbeat threshold) has to release its objects before the controller does.
	DefaultGrace = 5 * time.Minute

	// EventReasonReleased is the Warning Event on an upstream namespace (and on the
	// SyncTarget) whose objects the controller released without the syncer.
	EventReasonReleased = "SyncTargetReleased"

	// ReleasedMetric counts the upstream objects and namespaces released without the
	// syncer, by reason (ReasonSyncTargetDeleted, ReasonSyncerHeartbeatLost) and kind
	// (object, namespace, upsynced: upsynced objects deleted).
	ReleasedMetric = "tmc_synctarget_released_total"

	// ReasonSyncTargetDeleted: the SyncTarget was deleted and its syncer did not release
	// within the grace period.
	ReasonSyncTargetDeleted = "SyncTargetDeleted"
	// ReasonSyncerHeartbeatLost: removal was asked from a SyncTarget whose syncer has been
	// silent for longer than the heartbeat threshold plus the grace period.
	ReasonSyncerHeartbeatLost = "SyncerHeartbeatLost"

	// namespaceKeysIndex indexes upstream namespaces by every SyncTarget key they carry
	// a state label or a per-target annotation for.
	namespaceKeysIndex = "tmc.release/target-keys"
)

// Objects is what the controller reads of the upstream objects: the resource
// controller's caches (*resource.Controller).
type Objects interface {
	// ObjectsFor returns every cached object carrying anything of the SyncTarget key.
	ObjectsFor(stKey string) []resource.TargetObject
	// HasSynced reports whether every object cache is complete.
	HasSynced() bool
	// AddObjectStateHandler registers fn to be called when objects gain or lose state
	// labels.
	AddObjectStateHandler(fn func(workspace string))
}

// Options configures the controller. All fields are optional.
type Options struct {
	// Grace is how long a deleted SyncTarget's syncer (counted from the
	// deletionTimestamp), or a silent syncer (counted from the heartbeat threshold), has
	// to release its objects. Zero means DefaultGrace.
	Grace time.Duration
	// HeartbeatThreshold is the heartbeat controller's threshold. Zero means 60s.
	HeartbeatThreshold time.Duration
	// Clock is the time source. Nil means the real clock.
	Clock clock.Clock
	// Metrics receives ReleasedMetric and the workqueue metrics. May be nil.
	Metrics *tmc.TMCMetrics
	// Resources are the types the object caches cover (the tmc-controller's --resources);
	// empty means workloadv1alpha1.DefaultResources(). The other types a SyncTarget lists
	// are found by live lists when it is released without its syncer.
	Resources []workloadv1alpha1.ResourceToSync
	// EventRecorderFor returns the recorder for Events in a workspace (namespaces of a
	// workload workspace, SyncTargets of a location workspace). Nil: Events are written
	// into each workspace through its Kube client.
	EventRecorderFor func(workspace string) record.EventRecorder
}

// syncTargetKey names a SyncTarget in a location workspace.
type syncTargetKey struct {
	workspace string
	name      string
}

func (k syncTargetKey) String() string { return k.workspace + "|" + k.name }

// locationState is what the controller keeps per location workspace.
type locationState struct {
	path     string
	lister   workloadlisters.SyncTargetLister
	client   tmcclient.Interface
	recorder record.EventRecorder
}

// workloadState is what the controller keeps per workload workspace.
type workloadState struct {
	path       string
	workspace  *workspaces.Workspace
	namespaces corev1listers.NamespaceLister
	nsIndexer  cache.Indexer
	recorder   record.EventRecorder
	synced     cache.InformerSynced
}

// Controller releases the upstream objects of gone and dead SyncTargets; see the package
// documentation.
type Controller struct {
	grace     time.Duration
	threshold time.Duration
	clock     clock.Clock
	objects   Objects
	// cachedTypes are the types objects covers.
	cachedTypes map[workloadv1alpha1.ResourceToSync]bool
	released    *prometheus.CounterVec // nil without metrics

	locations map[string]*locationState
	queue     *queue.Queue[syncTargetKey]
	synced    []cache.InformerSynced

	// mu guards the workload workspaces, which grow with AddWorkloadWorkspace, and the
	// Event broadcasters: one per workspace whose recorder they serve, started once Run
	// has (eventsCtx set).
	mu           sync.RWMutex
	workloads    map[string]*workloadState
	broadcasters map[string]record.EventBroadcaster
	sinks        map[string]typedcorev1.EventInterface
	recorders    map[string]record.EventRecorder
	eventsCtx    context.Context
	recorderFn   func(workspace string) record.EventRecorder
}

// NewController registers the SyncTarget informers of the location workspaces and the
// namespace informers of the workload workspaces of set (the caller starts the factories)
// and returns the controller. objects are the resource controller's caches.
func NewController(set *workspaces.Set, objects Objects, opts Options) (*Controller, error) {
	switch {
	case set == nil:
		return nil, errors.New("release controller: a workspace set is required")
	case objects == nil:
		return nil, errors.New("release controller: the object caches are required")
	case opts.Grace < 0:
		return nil, fmt.Errorf("release controller: grace must not be negative, got %s", opts.Grace)
	case opts.HeartbeatThreshold < 0:
		return nil, fmt.Errorf("release controller: heartbeat threshold must not be negative, got %s", opts.HeartbeatThreshold)
	}
	c := &Controller{
		grace:        opts.Grace,
		threshold:    opts.HeartbeatThreshold,
		clock:        opts.Clock,
		objects:      objects,
		locations:    map[string]*locationState{},
		workloads:    map[string]*workloadState{},
		broadcasters: map[string]record.EventBroadcaster{},
		sinks:        map[string]typedcorev1.EventInterface{},
		recorders:    map[string]record.EventRecorder{},
		recorderFn:   opts.EventRecorderFor,
	}
	if c.grace == 0 {
		c.grace = DefaultGrace
	}
	cached := opts.Resources
	if len(cached) == 0 {
		cached = workloadv1alpha1.DefaultResources()
	}
	c.cachedTypes = map[workloadv1alpha1.ResourceToSync]bool{}
	for _, r := range cached {
		c.cachedTypes[r] = true
	}
	if c.threshold == 0 {
		c.threshold = 60 * time.Second
	}
	if c.clock == nil {
		c.clock = clock.RealClock{}
	}
	queueOptions := queue.Options[syncTargetKey]{
		Name: ControllerName,
		LogValues: func(key syncTargetKey) []any {
			return []any{"workspace", key.workspace, "syncTarget", klog.KRef("", key.name)}
		},
	}
	if withTicker, ok := c.clock.(clock.WithTicker); ok {
		queueOptions.Clock = withTicker
	}
	if opts.Metrics != nil {
		queueOptions.MetricsProvider = opts.Metrics.WorkqueueMetricsProvider()
		queueOptions.Recovery.Registerer = opts.Metrics.Registerer()
		vec, err := opts.Metrics.RegisterCounterVec(ReleasedMetric,
			"Upstream objects and namespaces the tmc-controller released from a deleted or silent SyncTarget without its syncer, by reason and kind.",
			[]string{"reason", "kind"})
		if err != nil {
			return nil, fmt.Errorf("release controller: failed to register metrics: %w", err)
		}
		c.released = vec
	}
	// Deadlines come back as requeueAfter: the grace period's end is seen on time without
	// polling.
	c.queue = queue.New(c.reconcile, queueOptions)

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
	// The workspaces known now are waited for by Run; reconcile waits for those bound
	// later (workloadsSynced).
	for _, wl := range c.workloads {
		c.synced = append(c.synced, wl.synced)
	}
	objects.AddObjectStateHandler(func(string) { c.enqueueReleasing() })
	c.synced = append(c.synced, objects.HasSynced)
	return c, nil
}

// eventScheme knows the kinds Events are recorded on: namespaces and SyncTargets.
var eventScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(scheme.AddToScheme(s))
	utilruntime.Must(tmcscheme.AddToScheme(s))
	return s
}()

// recorderFor returns the injected recorder of a workspace, or one whose broadcaster Run
// starts towards the workspace's Events; a workspace that is both a location and a
// workload workspace has one. The caller holds c.mu.
func (c *Controller) recorderFor(ws *workspaces.Workspace) record.EventRecorder {
	if c.recorderFn != nil {
		return c.recorderFn(ws.Path)
	}
	if r, ok := c.recorders[ws.Path]; ok {
		return r
	}
	b := record.NewBroadcaster()
	c.broadcasters[ws.Path] = b
	c.sinks[ws.Path] = ws.Kube.CoreV1().Events("")
	r := b.NewRecorder(eventScheme, corev1.EventSource{Component: ControllerName})
	c.recorders[ws.Path] = r
	if c.eventsCtx != nil {
		startRecording(c.eventsCtx, b, c.sinks[ws.Path])
	}
	return r
}

// startRecording sends the Events of b to sink until ctx ends.
func startRecording(ctx context.Context, b record.EventBroadcaster, sink typedcorev1.EventInterface) {
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: sink})
	context.AfterFunc(ctx, b.Shutdown)
}

func (c *Controller) addLocationWorkspace(path string, ws *workspaces.Workspace) error {
	if ws == nil || ws.TMC == nil || ws.Kube == nil || ws.TMCInformers == nil {
		return fmt.Errorf("release controller: location workspace %q lacks clients or informer factories", path)
	}
	informer := ws.TMCInformers.Workload().V1alpha1().SyncTargets()
	registration, err := informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.enqueueSyncTarget(path, obj) },
		UpdateFunc: func(_, obj any) { c.enqueueSyncTarget(path, obj) },
	})
	if err != nil {
		return fmt.Errorf("release controller: failed to watch SyncTargets of workspace %s: %w", path, err)
	}
	c.locations[path] = &locationState{
		path:     path,
		lister:   informer.Lister(),
		client:   ws.TMC,
		recorder: c.recorderFor(ws),
	}
	c.synced = append(c.synced, registration.HasSynced)
	return nil
}

// AddWorkloadWorkspace registers the namespace informer of the workload workspace ws (the
// caller starts it). It may be called while the controller runs: nothing is released
// while the namespaces of a workspace bound later have not synced. A workspace the
// controller has is left alone.
func (c *Controller) AddWorkloadWorkspace(ws *workspaces.Workspace) error {
	if ws == nil || ws.Kube == nil || ws.Dynamic == nil || ws.KubeInformers == nil {
		path := ""
		if ws != nil {
			path = ws.Path
		}
		return fmt.Errorf("release controller: workload workspace %q lacks clients or informer factories", path)
	}
	path := ws.Path
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exists := c.workloads[path]; exists {
		return nil
	}
	informer := ws.KubeInformers.Core().V1().Namespaces()
	if _, exists := informer.Informer().GetIndexer().GetIndexers()[namespaceKeysIndex]; !exists {
		if err := informer.Informer().AddIndexers(cache.Indexers{namespaceKeysIndex: namespaceKeysIndexFunc}); err != nil {
			return fmt.Errorf("release controller: failed to index namespaces of workspace %s: %w", path, err)
		}
	}
	registration, err := informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.namespaceChanged,
		UpdateFunc: func(oldObj, newObj any) { c.namespaceChanged(oldObj); c.namespaceChanged(newObj) },
		DeleteFunc: c.namespaceChanged,
	})
	if err != nil {
		return fmt.Errorf("release controller: failed to watch namespaces of workspace %s: %w", path, err)
	}
	state := &workloadState{
		path:       path,
		workspace:  ws,
		namespaces: informer.Lister(),
		nsIndexer:  informer.Informer().GetIndexer(),
		synced:     registration.HasSynced,
	}
	state.recorder = c.recorderFor(ws)
	c.workloads[path] = state
	return nil
}

// workload returns the state of a workload workspace, nil if unknown.
func (c *Controller) workload(path string) *workloadState {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.workloads[path]
}

// workloadPaths returns the workload workspace paths, sorted.
func (c *Controller) workloadPaths() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]string, 0, len(c.workloads))
	for p := range c.workloads {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// workloadsSynced reports whether the namespaces of every workload workspace and the
// object caches have synced: nothing is released on a partial view, also after a
// workspace was bound at runtime.
func (c *Controller) workloadsSynced() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, wl := range c.workloads {
		if !wl.synced() {
			return false
		}
	}
	return c.objects.HasSynced()
}

// namespaceKeysIndexFunc returns the SyncTarget keys a namespace carries a state label or
// a per-target annotation for.
func namespaceKeysIndexFunc(obj any) ([]string, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return nil, nil
	}
	return resource.TargetKeys(ns.Labels, ns.Annotations, nil), nil
}

// Run processes SyncTargets with the given number of workers (at least one) until ctx
// ends; it waits for every cache first, so that nothing is released on a partial view.
// Failures are retried by the queue's one TMC retry rule (pkg/reconciler/queue).
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	logger := klog.FromContext(ctx).WithValues("controller", ControllerName)
	ctx = klog.NewContext(ctx, logger)
	c.mu.Lock()
	c.eventsCtx = ctx
	for path, b := range c.broadcasters {
		startRecording(ctx, b, c.sinks[path])
	}
	c.mu.Unlock()
	logger.Info("Starting controller", "grace", c.grace, "heartbeatThreshold", c.threshold)
	defer logger.Info("Shutting down controller")
	if !cache.WaitForNamedCacheSyncWithContext(ctx, c.synced...) {
		return
	}
	c.enqueueAll()
	c.queue.Run(ctx, workers)
}

func (c *Controller) enqueueSyncTarget(workspace string, obj any) {
	if st, ok := obj.(*workloadv1alpha1.SyncTarget); ok {
		c.queue.Add(syncTargetKey{workspace: workspace, name: st.Name})
	}
}

// enqueueAll queues every SyncTarget; there are few.
func (c *Controller) enqueueAll() {
	c.eachSyncTarget(func(key syncTargetKey, _ *workloadv1alpha1.SyncTarget) { c.queue.Add(key) })
}

// enqueueReleasing queues the SyncTargets that may have objects to release: those being
// deleted and those whose heartbeat is not healthy.
func (c *Controller) enqueueReleasing() {
	c.eachSyncTarget(func(key syncTargetKey, st *workloadv1alpha1.SyncTarget) {
		if releasing(st) {
			c.queue.Add(key)
		}
	})
}

// namespaceChanged queues the releasing SyncTargets a namespace carries keys of.
func (c *Controller) namespaceChanged(obj any) {
	if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tombstone.Obj
	}
	keys, _ := namespaceKeysIndexFunc(obj)
	if len(keys) == 0 {
		return
	}
	wanted := map[string]bool{}
	for _, k := range keys {
		wanted[k] = true
	}
	c.eachSyncTarget(func(key syncTargetKey, st *workloadv1alpha1.SyncTarget) {
		if wanted[workloadv1alpha1.SyncTargetKeyOf(st, key.workspace)] && releasing(st) {
			c.queue.Add(key)
		}
	})
}

func (c *Controller) eachSyncTarget(fn func(syncTargetKey, *workloadv1alpha1.SyncTarget)) {
	for path, loc := range c.locations {
		syncTargets, err := loc.lister.List(labels.Everything())
		if err != nil {
			continue
		}
		for _, st := range syncTargets {
			fn(syncTargetKey{workspace: path, name: st.Name}, st)
		}
	}
}

// releasing reports whether a SyncTarget may have objects to release: it is being deleted
// or its heartbeat is not healthy.
func releasing(st *workloadv1alpha1.SyncTarget) bool {
	return st.DeletionTimestamp != nil || !meta.IsStatusConditionTrue(st.Status.Conditions, workloadv1alpha1.SyncTargetHeartbeatHealthy)
}

// countReleased records n released items of kind in ReleasedMetric.
func (c *Controller) countReleased(reason, kind string, n int) {
	if c.released != nil && n > 0 {
		c.released.WithLabelValues(reason, kind).Add(float64(n))
	}
}
