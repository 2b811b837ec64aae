package resource

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/tmc-dev/tmc/pkg/reconciler/queue"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	"github.com/tmc-dev/tmc/pkg/workspaces"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const (
	// ControllerName names the controller in logs, the workqueue and TMC errors.
	ControllerName = "resource"

	// FieldManager is the field manager of the label/annotation patches.
	FieldManager = "tmc-controller-resource"

	// LabelUpdatesMetric counts objects whose labels or annotations were patched.
	LabelUpdatesMetric = "tmc_resource_label_updates_total"

	// workspaceSyncRecheck is how soon an object of a workspace whose caches have not
	// synced yet (one bound at runtime) is looked at again.
	workspaceSyncRecheck = time.Second

	// discoveryRetryPeriod is how often types that needed discovery and could not be
	// resolved (workspace unreachable, or type not served yet) are looked up again.
	discoveryRetryPeriod = time.Minute
)

// objectKey names one object of a synced type in a workload workspace.
type objectKey struct {
	workspace string
	gvr       schema.GroupVersionResource
	namespace string
	name      string
}

func (k objectKey) String() string {
	return k.workspace + "|" + k.gvr.GroupResource().String() + "|" + k.namespace + "/" + k.name
}

// Controller propagates namespace placement to the objects in the namespace; see the
// package documentation.
type Controller struct {
	resources    []workloadv1alpha1.ResourceToSync
	queue        *queue.Queue[objectKey]
	clock        clock.PassiveClock
	labelUpdates *prometheus.CounterVec // nil without metrics

	mu sync.RWMutex
	// workspaces grows with AddWorkloadWorkspace, and the types of each entry when
	// discovery resolves more of them, under mu.
	workspaces    map[string]*workspaceState
	stateHandlers []func(workspace string)
	// resolveWake tells the resolve loop that a workspace with types to resolve was added.
	resolveWake chan struct{}
}

// workspaceState is what the controller keeps per workload workspace.
type workspaceState struct {
	workspace        *workspaces.Workspace
	namespaceLister  corev1listers.NamespaceLister
	namespacesSynced cache.InformerSynced

	// Guarded by Controller.mu.
	types      map[schema.GroupVersionResource]*typeState
	unresolved []workloadv1alpha1.ResourceToSync // types that need discovery
	reported   map[workloadv1alpha1.ResourceToSync]bool
}

// typeState is one synced type in one workspace.
type typeState struct {
	resource workloadv1alpha1.ResourceToSync
	gvr      schema.GroupVersionResource
	informer cache.SharedIndexInformer
	synced   cache.InformerSynced
}

// NewController registers a namespace informer and one dynamic informer per synced type on
// every workload workspace of set. resources empty means workloadv1alpha1.DefaultResources();
// metrics may be nil. Types outside the core, apps, batch and networking.k8s.io groups are
// resolved by discovery when Run starts.
func NewController(set *workspaces.Set, resources []workloadv1alpha1.ResourceToSync, metrics *tmc.TMCMetrics) (*Controller, error) {
	if set == nil {
		return nil, errors.New("a workspace set is required")
	}
	if len(resources) == 0 {
		resources = workloadv1alpha1.DefaultResources()
	}
	resources, err := normalizeResources(resources)
	if err != nil {
		return nil, err
	}
	c := &Controller{
		resources:   resources,
		clock:       clock.RealClock{},
		workspaces:  map[string]*workspaceState{},
		resolveWake: make(chan struct{}, 1),
	}
	queueOptions := queue.Options[objectKey]{
		Name: ControllerName,
		LogValues: func(key objectKey) []any {
			return []any{"workspace", key.workspace, "resource", key.gvr.GroupResource().String(),
				"object", klog.KRef(key.namespace, key.name)}
		},
	}
	if metrics != nil {
		queueOptions.MetricsProvider = metrics.WorkqueueMetricsProvider()
		queueOptions.Recovery.Registerer = metrics.Registerer()
		c.labelUpdates, err = metrics.RegisterCounterVec(LabelUpdatesMetric,
			"Objects whose TMC state labels or deletion annotations the resource controller updated.", []string{"workspace"})
		if err != nil {
			return nil, fmt.Errorf("failed to register metrics: %w", err)
		}
	}
	// A conflict (the cache was stale) is retried soon and decided again on the newer
	// object; a NotFound means the object went away and is dropped.
	c.queue = queue.New(func(ctx context.Context, key objectKey) (time.Duration, error) {
		if !c.synced(key) {
			// A workspace bound at runtime: decide on complete caches only.
			return workspaceSyncRecheck, nil
		}
		return 0, c.reconcile(ctx, key)
	}, queueOptions)

	for _, path := range set.WorkloadPaths() {
		if err := c.AddWorkloadWorkspace(set.WorkloadWorkspace(path)); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// AddWorkloadWorkspace registers the namespace informer and the informers of the synced
// types (those needing discovery are resolved by Run) on the factories of ws; the caller
// starts them. It may be called while the controller runs; objects of the workspace are
// processed once its informers have synced. A workspace the controller has is left alone.
func (c *Controller) AddWorkloadWorkspace(ws *workspaces.Workspace) error {
	if ws == nil || ws.Kube == nil || ws.Dynamic == nil || ws.KubeInformers == nil || ws.DynamicInformers == nil {
		path := ""
		if ws != nil {
			path = ws.Path
		}
		return fmt.Errorf("workload workspace %q lacks clients or informer factories", path)
	}
	path := ws.Path
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exists := c.workspaces[path]; exists {
		return nil
	}
	namespaces := ws.KubeInformers.Core().V1().Namespaces()
	registration, err := namespaces.Informer().AddEventHandler(c.namespaceHandler(path))
	if err != nil {
		return fmt.Errorf("failed to watch namespaces of workspace %s: %w", path, err)
	}
	state := &workspaceState{
		workspace:        ws,
		namespaceLister:  namespaces.Lister(),
		namespacesSynced: registration.HasSynced,
		types:            map[schema.GroupVersionResource]*typeState{},
		reported:         map[workloadv1alpha1.ResourceToSync]bool{},
	}
	for _, r := range c.resources {
		version, ok := builtinVersions[r.Group]
		if !ok {
			state.unresolved = append(state.unresolved, r)
			continue
		}
		if err := c.addType(path, state, r, version); err != nil {
			return err
		}
	}
	c.workspaces[path] = state
	if len(state.unresolved) > 0 {
		select {
		case c.resolveWake <- struct{}{}:
		default:
		}
	}
	return nil
}

// normalizeResources validates and de-duplicates the synced types, keeping their order.
func normalizeResources(in []workloadv1alpha1.ResourceToSync) ([]workloadv1alpha1.ResourceToSync, error) {
	seen := map[workloadv1alpha1.ResourceToSync]bool{}
	var out []workloadv1alpha1.ResourceToSync
	for _, r := range in {
		if r.Resource == "" {
			return nil, fmt.Errorf("resource type %q has an empty resource name", r.String())
		}
		if seen[r] {
			continue
		}
		seen[r] = true
		out = append(out, r)
	}
	return out, nil
}

// Run resolves the types that need discovery, waits for the caches and processes objects
// with the given number of workers (at least one) until ctx ends. Failures are retried by
// the queue's one TMC retry rule (pkg/reconciler/queue), so a fix of RBAC or an admission
// policy is picked up without a restart.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	logger := klog.FromContext(ctx).WithValues("controller", ControllerName)
	ctx = klog.NewContext(ctx, logger)
	logger.Info("Starting controller")
	defer logger.Info("Shutting down controller")

	// Discovery runs beside the workers so that an unreachable workspace delays only the
	// types that need it.
	go c.resolveLoop(ctx)
	if !cache.WaitForNamedCacheSyncWithContext(ctx, c.hasSynced()...) {
		return
	}
	c.queue.Run(ctx, workers)
}

// resolveLoop resolves the types that need discovery, retrying every
// discoveryRetryPeriod while some are left and again whenever a workspace is added, until
// ctx ends.
func (c *Controller) resolveLoop(ctx context.Context) {
	for {
		var retry <-chan time.Time
		if c.resolveTypes(ctx) {
			retry = time.After(discoveryRetryPeriod)
		}
		select {
		case <-ctx.Done():
			return
		case <-retry:
		case <-c.resolveWake:
		}
	}
}

// synced reports whether the namespaces of key's workspace and key's type there have
// synced; a key of an unknown workspace or type is let through (its reconcile skips it).
func (c *Controller) synced(key objectKey) bool {
	state, t := c.lookup(key.workspace, key.gvr)
	if state == nil || t == nil {
		return true
	}
	return state.namespacesSynced() && t.synced()
}

// HasSynced reports whether the namespace informers and the informers of every type
// resolved so far have synced; until then TypesInUse and WorkspacesWithObjectsFor may
// miss objects.
func (c *Controller) HasSynced() bool {
	for _, synced := range c.hasSynced() {
		if !synced() {
			return false
		}
	}
	return true
}

// hasSynced returns the sync checks of every informer known so far.
func (c *Controller) hasSynced() []cache.InformerSynced {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []cache.InformerSynced
	for _, state := range c.workspaces {
		out = append(out, state.namespacesSynced)
		for _, t := range state.types {
			out = append(out, t.synced)
		}
	}
	return out
}

// AddObjectStateHandler registers fn to be called (from informer goroutines, so it must not
// block) whenever an object of a synced type in workspace gains, loses or changes a state
// label, including when a labelled object is added or deleted. Register before Run.
func (c *Controller) AddObjectStateHandler(fn func(workspace string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stateHandlers = append(c.stateHandlers, fn)
}

func (c *Controller) notifyStateChange(workspace string) {
	c.mu.RLock()
	handlers := c.stateHandlers
	c.mu.RUnlock()
	for _, fn := range handlers {
		fn(workspace)
	}
}

// Workspaces returns the workload workspace paths the controller watches, sorted.
func (c *Controller) Workspaces() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]string, 0, len(c.workspaces))
	for p := range c.workspaces {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
