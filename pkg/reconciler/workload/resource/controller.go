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
	"k8s.io/apimachinery/pkg/util/wait"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

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
	queue        workqueue.TypedRateLimitingInterface[objectKey]
	clock        clock.PassiveClock
	labelUpdates *prometheus.CounterVec // nil without metrics

	// workspaces is fixed after construction; the types of each entry grow when
	// discovery resolves more of them, under mu.
	workspaces map[string]*workspaceState

	mu            sync.RWMutex
	stateHandlers []func(workspace string)
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
		resources:  resources,
		clock:      clock.RealClock{},
		workspaces: map[string]*workspaceState{},
	}
	queueConfig := workqueue.TypedRateLimitingQueueConfig[objectKey]{Name: ControllerName}
	if metrics != nil {
		queueConfig.MetricsProvider = metrics.WorkqueueMetricsProvider()
		c.labelUpdates, err = metrics.RegisterCounterVec(LabelUpdatesMetric,
			"Objects whose TMC state labels or deletion annotations the resource controller updated.", []string{"workspace"})
		if err != nil {
			return nil, fmt.Errorf("failed to register metrics: %w", err)
		}
	}
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[objectKey](), queueConfig)

	for _, path := range set.WorkloadPaths() {
		ws := set.Workload[path]
		if ws == nil || ws.Kube == nil || ws.Dynamic == nil || ws.KubeInformers == nil || ws.DynamicInformers == nil {
			return nil, fmt.Errorf("workload workspace %q lacks clients or informer factories", path)
		}
		namespaces := ws.KubeInformers.Core().V1().Namespaces()
		registration, err := namespaces.Informer().AddEventHandler(c.namespaceHandler(path))
		if err != nil {
			return nil, fmt.Errorf("failed to watch namespaces of workspace %s: %w", path, err)
		}
		state := &workspaceState{
			workspace:        ws,
			namespaceLister:  namespaces.Lister(),
			namespacesSynced: registration.HasSynced,
			types:            map[schema.GroupVersionResource]*typeState{},
			reported:         map[workloadv1alpha1.ResourceToSync]bool{},
		}
		c.workspaces[path] = state
		for _, r := range resources {
			version, ok := builtinVersions[r.Group]
			if !ok {
				state.unresolved = append(state.unresolved, r)
				continue
			}
			if err := c.addType(path, state, r, version); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
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
// with the given number of workers until ctx ends.
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
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait.UntilWithContext(ctx, c.worker, time.Second)
		}()
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
}

// resolveLoop resolves the types that need discovery, retrying every
// discoveryRetryPeriod until none is left or ctx ends.
func (c *Controller) resolveLoop(ctx context.Context) {
	for c.resolveTypes(ctx) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(discoveryRetryPeriod):
		}
	}
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

func (c *Controller) worker(ctx context.Context) {
	for c.processNextWorkItem(ctx) {
	}
}

// processNextWorkItem reconciles one object. Failures back off per object (the default
// controller rate limiter: 5 ms doubling up to 1000 s) and are retried until they succeed
// or the object is gone, so a fix of RBAC or an admission policy is picked up without a
// restart; a NotFound means the object went away and is dropped.
func (c *Controller) processNextWorkItem(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	logger := klog.FromContext(ctx).WithValues("workspace", key.workspace, "resource", key.gvr.GroupResource().String(),
		"object", klog.KRef(key.namespace, key.name))
	ctx = klog.NewContext(ctx, logger)

	err := c.reconcile(ctx, key)
	if err == nil {
		c.queue.Forget(key)
		return true
	}
	classified := tmc.Classify(err).WithComponent(ControllerName).WithWorkspace(key.workspace)
	switch {
	case classified.Type == tmc.TMCErrorTypeNotFound:
		logger.V(4).Info("Object is gone, dropping it")
		c.queue.Forget(key)
	case classified.Type == tmc.TMCErrorTypeResourceConflict:
		// The cache was stale: decide again on the newer object.
		logger.V(4).Info("Object changed meanwhile, retrying", "err", err)
		c.queue.AddRateLimited(key)
	case classified.RetryAfter > 0:
		logger.V(2).Info("Server asked to retry later", "err", err, "retryAfter", classified.RetryAfter)
		c.queue.AddAfter(key, classified.RetryAfter)
	default:
		logger.Error(classified, "Failed to propagate placement to object", "errorType", classified.Type)
		c.queue.AddRateLimited(key)
	}
	return true
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
	out := make([]string, 0, len(c.workspaces))
	for p := range c.workspaces {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
