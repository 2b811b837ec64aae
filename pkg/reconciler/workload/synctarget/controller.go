package synctarget

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/reconciler/queue"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/resource"
	"github.com/tmc-dev/tmc/pkg/workspaces"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	workloadlisters "github.com/tmc-dev/tmc/sdk/client/listers/workload/v1alpha1"
)

const (
	// WorkspacesControllerName names the controller in logs, the workqueue and TMC errors.
	WorkspacesControllerName = "synctarget-workspaces"

	// WorkspacesFieldManager is the server-side-apply field manager of status.workspaces
	// and status.workspaceCount.
	WorkspacesFieldManager = "tmc-controller-workspaces"
)

// namespaceKeysIndex indexes namespaces by the SyncTarget keys they are placed on or being
// removed from.
const namespaceKeysIndex = "tmc.synctarget/keys"

// syncTargetKey names a SyncTarget in a location workspace.
type syncTargetKey struct {
	workspace string
	name      string
}

func (k syncTargetKey) String() string { return k.workspace + "|" + k.name }

// watchLocations adds handlerFor(path) to the SyncTarget informer of every location
// workspace of set, recording each workspace's cache in locations and its sync in synced.
func watchLocations(set *workspaces.Set, handlerFor func(path string) cache.ResourceEventHandler, locations map[string]*locationState, synced *[]cache.InformerSynced) error {
	for path, ws := range set.Location {
		if ws == nil || ws.Dynamic == nil || ws.TMCInformers == nil {
			return fmt.Errorf("location workspace %q lacks clients or informer factories", path)
		}
		syncTargets := ws.TMCInformers.Workload().V1alpha1().SyncTargets()
		registration, err := syncTargets.Informer().AddEventHandler(handlerFor(path))
		if err != nil {
			return fmt.Errorf("failed to watch SyncTargets of workspace %s: %w", path, err)
		}
		locations[path] = &locationState{workspace: ws, lister: syncTargets.Lister()}
		*synced = append(*synced, registration.HasSynced)
	}
	return nil
}

// cachedSyncTarget returns the location workspace of key and its SyncTarget from the cache;
// a nil SyncTarget (and no error) when the workspace is not served or the SyncTarget is gone.
func cachedSyncTarget(ctx context.Context, locations map[string]*locationState, key syncTargetKey) (*locationState, *workloadv1alpha1.SyncTarget, error) {
	loc := locations[key.workspace]
	if loc == nil {
		return nil, nil, nil
	}
	st, err := loc.lister.Get(key.name)
	if apierrors.IsNotFound(err) {
		klog.FromContext(ctx).V(4).Info("SyncTarget is gone, skipping")
		return loc, nil, nil
	}
	if err != nil {
		return loc, nil, fmt.Errorf("failed to get SyncTarget from cache: %w", err)
	}
	return loc, st, nil
}

// locationState is what the controller keeps per location workspace.
type locationState struct {
	workspace *workspaces.Workspace
	lister    workloadlisters.SyncTargetLister
}

// namespaceCache is the namespace cache of one workload workspace.
type namespaceCache struct {
	indexer cache.Indexer
	synced  cache.InformerSynced
}

// WorkspacesController maintains SyncTarget.status.workspaces; see the package
// documentation.
type WorkspacesController struct {
	queue     *queue.Queue[syncTargetKey]
	locations map[string]*locationState
	// namespaces are the namespace caches of the workload workspaces, by path; they grow
	// with AddWorkloadWorkspace, under mu.
	mu         sync.RWMutex
	namespaces map[string]namespaceCache
	// objects answers which workspaces still hold labelled objects; nil means namespaces
	// only.
	objects interface {
		WorkspacesWithObjectsFor(stKey string) []string
	}
	synced []cache.InformerSynced
}

// NewWorkspacesController registers the SyncTarget informers of the location workspaces
// and the namespace informers of the workload workspaces of set. resourceController may be
// nil: then only namespaces are considered, not objects still labelled.
func NewWorkspacesController(set *workspaces.Set, resourceController *resource.Controller) (*WorkspacesController, error) {
	if set == nil {
		return nil, errors.New("a workspace set is required")
	}
	c := &WorkspacesController{
		locations:  map[string]*locationState{},
		namespaces: map[string]namespaceCache{},
	}
	c.queue = queue.New(func(ctx context.Context, key syncTargetKey) (time.Duration, error) {
		return 0, c.reconcile(ctx, key)
	}, queue.Options[syncTargetKey]{
		Name: WorkspacesControllerName,
		LogValues: func(key syncTargetKey) []any {
			return []any{"workspace", key.workspace, "syncTarget", klog.KRef("", key.name)}
		},
	})
	if err := watchLocations(set, c.syncTargetHandler, c.locations, &c.synced); err != nil {
		return nil, err
	}
	for _, path := range set.WorkloadPaths() {
		if err := c.AddWorkloadWorkspace(set.WorkloadWorkspace(path)); err != nil {
			return nil, err
		}
	}
	// The workspaces known now are waited for by Run; those bound later are kept in
	// status.workspaces as they are until their namespaces have synced (workspacesFor).
	for _, ns := range c.namespaces {
		c.synced = append(c.synced, ns.synced)
	}
	if resourceController != nil {
		c.objects = resourceController
		resourceController.AddObjectStateHandler(func(string) { c.enqueueAll() })
		// Never drop a workspace because its objects are not listed yet: the syncer would
		// stop watching it with objects still to release.
		c.synced = append(c.synced, resourceController.HasSynced)
	}
	return c, nil
}

// AddWorkloadWorkspace registers the namespace informer of the workload workspace ws (the
// caller starts it). It may be called while the controller runs: until the informer has
// synced, the workspace is only ever added to status.workspaces, never dropped from it. A
// workspace the controller has is left alone.
func (c *WorkspacesController) AddWorkloadWorkspace(ws *workspaces.Workspace) error {
	if ws == nil || ws.KubeInformers == nil {
		path := ""
		if ws != nil {
			path = ws.Path
		}
		return fmt.Errorf("workload workspace %q lacks informer factories", path)
	}
	path := ws.Path
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exists := c.namespaces[path]; exists {
		return nil
	}
	informer := ws.KubeInformers.Core().V1().Namespaces().Informer()
	if _, exists := informer.GetIndexer().GetIndexers()[namespaceKeysIndex]; !exists {
		if err := informer.AddIndexers(cache.Indexers{namespaceKeysIndex: namespaceKeysIndexFunc}); err != nil {
			return fmt.Errorf("failed to index namespaces of workspace %s: %w", path, err)
		}
	}
	registration, err := informer.AddEventHandler(c.namespaceHandler())
	if err != nil {
		return fmt.Errorf("failed to watch namespaces of workspace %s: %w", path, err)
	}
	c.namespaces[path] = namespaceCache{indexer: informer.GetIndexer(), synced: registration.HasSynced}
	return nil
}

// Run processes SyncTargets with the given number of workers (at least one) until ctx
// ends. Failures are retried by the queue's one TMC retry rule (pkg/reconciler/queue); a
// SyncTarget that is gone is dropped.
func (c *WorkspacesController) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	logger := klog.FromContext(ctx).WithValues("controller", WorkspacesControllerName)
	ctx = klog.NewContext(ctx, logger)
	logger.Info("Starting controller")
	defer logger.Info("Shutting down controller")

	if !cache.WaitForNamedCacheSyncWithContext(ctx, c.synced...) {
		return
	}
	// Objects may have been counted before their namespaces were: decide again with
	// every cache complete.
	c.enqueueAll()
	c.queue.Run(ctx, workers)
}

// enqueueAll queues every SyncTarget of every location workspace; there are few.
func (c *WorkspacesController) enqueueAll() {
	for path, loc := range c.locations {
		syncTargets, err := loc.lister.List(everything)
		if err != nil {
			continue
		}
		for _, st := range syncTargets {
			c.queue.Add(syncTargetKey{workspace: path, name: st.Name})
		}
	}
}

// syncTargetHandler queues a SyncTarget when it appears, on resync, and when its
// workspaces were changed by someone else; heartbeats alone do not queue it.
func (c *WorkspacesController) syncTargetHandler(workspace string) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) {
			if st, ok := obj.(*workloadv1alpha1.SyncTarget); ok {
				c.queue.Add(syncTargetKey{workspace: workspace, name: st.Name})
			}
		},
		UpdateFunc: func(oldObj, newObj interface{}) {
			oldST, ok := oldObj.(*workloadv1alpha1.SyncTarget)
			if !ok {
				return
			}
			newST, ok := newObj.(*workloadv1alpha1.SyncTarget)
			if !ok {
				return
			}
			if oldST.ResourceVersion == newST.ResourceVersion ||
				oldST.Status.WorkspaceCount != newST.Status.WorkspaceCount ||
				!samePaths(pathsOf(oldST.Status.Workspaces), pathsOf(newST.Status.Workspaces)) {
				c.queue.Add(syncTargetKey{workspace: workspace, name: newST.Name})
			}
		},
	}
}

// namespaceHandler queues every SyncTarget when the set of keys a namespace is placed on or
// being removed from changes: that set is all that status.workspaces depends on.
func (c *WorkspacesController) namespaceHandler() cache.ResourceEventHandler {
	keysOf := func(obj interface{}) []string {
		if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tombstone.Obj
		}
		keys, _ := namespaceKeysIndexFunc(obj)
		return keys
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) {
			if len(keysOf(obj)) > 0 {
				c.enqueueAll()
			}
		},
		UpdateFunc: func(oldObj, newObj interface{}) {
			if !samePaths(keysOf(oldObj), keysOf(newObj)) {
				c.enqueueAll()
			}
		},
		DeleteFunc: func(obj interface{}) {
			if len(keysOf(obj)) > 0 {
				c.enqueueAll()
			}
		},
	}
}

// namespaceKeysIndexFunc returns, sorted, the SyncTarget keys a namespace has a state label
// (any value) or a deletion annotation for.
func namespaceKeysIndexFunc(obj interface{}) ([]string, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return nil, nil
	}
	seen := map[string]bool{}
	for k := range ns.Labels {
		if stKey, ok := workloadv1alpha1.SyncTargetKeyFromLabel(workloadv1alpha1.ClusterResourceStateLabelPrefix, k); ok {
			seen[stKey] = true
		}
	}
	for k := range ns.Annotations {
		if stKey, ok := workloadv1alpha1.SyncTargetKeyFromLabel(workloadv1alpha1.InternalClusterDeletionTimestampAnnotationPrefix, k); ok {
			seen[stKey] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}
