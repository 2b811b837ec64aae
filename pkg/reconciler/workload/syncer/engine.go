package syncer

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// hubWorkspace names the only workspace of a plain Kubernetes hub (an upstream without
// kcp's /clusters/ URLs) in locators, metrics and logs.
const hubWorkspace = "hub"

// syncTarget identifies the served SyncTarget in keys, labels and namespace locators.
type syncTarget struct {
	// workspace is the location workspace's path (hubWorkspace on a plain hub).
	workspace string
	// cluster is the location workspace's logical-cluster name, read from the SyncTarget
	// (kcp.io/cluster); "" until then, and then workspace is used.
	cluster string
	name    string
	// key is the SyncTarget key of labels and finalizers.
	key string
	// uid is known once the SyncTarget was read; every locator carries it.
	uid types.UID
}

// locator returns the namespace locator of upstream namespace ns in the workload
// workspace whose logical-cluster name is cluster.
func (t syncTarget) locator(cluster, ns string) workloadv1alpha1.NamespaceLocator {
	locationCluster := t.cluster
	if locationCluster == "" {
		locationCluster = t.workspace
	}
	return workloadv1alpha1.NewNamespaceLocator(locationCluster, t.name, t.uid, cluster, ns)
}

// upstreamView is what the spec and status controllers see of one resource type in one
// upstream workspace: the label-filtered cache, the client and the Event recorder.
type upstreamView struct {
	lister   cache.GenericLister
	synced   func() bool
	client   dynamic.NamespaceableResourceInterface
	recorder record.EventRecorder
}

// downstreamView is the cache of the syncer's own objects of one type downstream.
type downstreamView struct {
	lister cache.GenericLister
	synced func() bool
}

// upstreamWorkspace holds the upstream clients of one workload workspace and the cache of
// its namespaces that carry this target's state label (started with the workspace).
type upstreamWorkspace struct {
	dynamic    dynamic.Interface
	kube       kubernetes.Interface
	recorder   record.EventRecorder
	stopEvents func()
	namespaces *informerHandle
	// rootCA caches the workspace's kube-root-ca.crt ConfigMaps (hub_ca.go).
	rootCA *informerHandle
}

// informerHandle is one running informer with its own stop function, so that informers
// start and stop one (workspace, resource) at a time.
type informerHandle struct {
	lister    cache.GenericLister
	hasSynced func() bool
	stop      context.CancelFunc
	done      chan struct{}
}

type upstreamInformerKey struct {
	workspace string
	gvr       schema.GroupVersionResource
}

// engineEvents receive the keys of every change, from informer goroutines; they only
// queue them.
type engineEvents struct {
	// specChanged queues an upstream object for the spec controller.
	specChanged func(specKey)
	// statusChanged queues a downstream object for the status controller.
	statusChanged func(statusKey)
	// namespaceAdded queues a downstream namespace for the cleanup check.
	namespaceAdded func(downstreamNamespace string)
	// upstreamNamespaceChanged queues the cleanup check of the downstream namespace of an
	// upstream namespace whose placement on this target changed or that was deleted.
	upstreamNamespaceChanged func(workspace, upstreamNamespace string)
	// locatorOf maps a downstream namespace back to its upstream workspace and namespace.
	locatorOf func(downstreamNamespace string) (workloadv1alpha1.NamespaceLocator, bool)
	// rootCAChanged queues the hub CA copy of an upstream namespace whose kube-root-ca.crt
	// changed.
	rootCAChanged func(workspace, upstreamNamespace string)
	// hubCANamespace queues the hub CA copy of a downstream namespace (nil: none).
	hubCANamespace func(downstreamNamespace string)
}

// engine owns the informers: per (workspace, resource) upstream, label-selected on the
// state label; per resource downstream, label-selected on the ownership label; and the
// downstream namespaces this SyncTarget owns. It starts and stops them as the SyncTarget's
// workspaces and accepted resources change, and answers the controllers' lookups.
type engine struct {
	stKey                string
	downstreamDynamic    dynamic.Interface
	downstreamKube       kubernetes.Interface
	newUpstreamWorkspace func(ctx context.Context, workspace string) (*upstreamWorkspace, error)
	resync               time.Duration
	events               engineEvents
	metrics              *syncerMetrics

	mu                  sync.RWMutex
	resources           map[schema.GroupVersionResource]resourceInfo
	upstreamInformers   map[upstreamInformerKey]*informerHandle
	downstreamInformers map[schema.GroupVersionResource]*informerHandle
	upstreamWorkspaces  map[string]*upstreamWorkspace
	resourceStates      []workloadv1alpha1.SyncedResource

	// clusterNames maps each watched workspace (path) to its logical-cluster name, the
	// cluster of its namespace locators; workspacesByName is the reverse
	// (workspace_names.go). A workspace without a name yet gets no upstream informer.
	clusterNames     map[string]string
	workspacesByName map[string]string
	// nameErrors holds why a workspace's name could not be learned, for its health.
	nameErrors map[string]error
	// resolveClusterName learns a workspace's name; nil: the name is the path (tests).
	resolveClusterName func(ctx context.Context, ws string) (string, error)

	// typeReleases releases, by live lists, the types that were synced and are no longer
	// (also those removed while the syncer was down) and reports them; nil: none (tests).
	typeReleases *typeReleaser

	namespacesSynced func() bool
	namespaceLister  corelisters.NamespaceLister

	// views, when set, reach the workspaces through the virtual-workspace server: the
	// upstream handles are views of one wildcard cache per (shard, type)
	// (syncer_views.go); nil: one informer per (workspace, type), directly.
	views *syncerViews
}

func newEngine(stKey string, downstreamDynamic dynamic.Interface, downstreamKube kubernetes.Interface,
	newUpstreamWorkspace func(context.Context, string) (*upstreamWorkspace, error), resync time.Duration, events engineEvents, metrics *syncerMetrics) *engine {
	return &engine{
		stKey:                stKey,
		downstreamDynamic:    downstreamDynamic,
		downstreamKube:       downstreamKube,
		newUpstreamWorkspace: newUpstreamWorkspace,
		resync:               resync,
		events:               events,
		metrics:              metrics,
		resources:            map[schema.GroupVersionResource]resourceInfo{},
		upstreamInformers:    map[upstreamInformerKey]*informerHandle{},
		clusterNames:         map[string]string{},
		workspacesByName:     map[string]string{},
		nameErrors:           map[string]error{},
		downstreamInformers:  map[schema.GroupVersionResource]*informerHandle{},
		upstreamWorkspaces:   map[string]*upstreamWorkspace{},
		namespacesSynced:     func() bool { return false },
	}
}

func startInformer(ctx context.Context, client dynamic.Interface, gvr schema.GroupVersionResource, selector, fieldSelector string, resync time.Duration, handler cache.ResourceEventHandler) (*informerHandle, error) {
	inf := dynamicinformer.NewFilteredDynamicInformer(client, gvr, metav1.NamespaceAll, resync, cache.Indexers{
		cache.NamespaceIndex: cache.MetaNamespaceIndexFunc,
	}, func(o *metav1.ListOptions) { o.LabelSelector, o.FieldSelector = selector, fieldSelector })
	if _, err := inf.Informer().AddEventHandler(handler); err != nil {
		return nil, fmt.Errorf("failed to add event handler for %s: %w", gvr, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	h := &informerHandle{lister: inf.Lister(), hasSynced: inf.Informer().HasSynced, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		inf.Informer().RunWithContext(ctx)
	}()
	return h, nil
}

// objectHandler calls fn with every added, updated and deleted object.
func objectHandler(fn func(obj *unstructured.Unstructured, deleted bool)) cache.ResourceEventHandler {
	call := func(obj any, deleted bool) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if u, ok := obj.(*unstructured.Unstructured); ok {
			fn(u, deleted)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { call(obj, false) },
		UpdateFunc: func(_, obj any) { call(obj, false) },
		DeleteFunc: func(obj any) { call(obj, true) },
	}
}

// reconcile brings informers in line with the accepted resources and the workspaces.
// servedUpstream tells, for the (workspace, resource) pairs without an informer, whether the
// workspace serves the resource; pairs it does not serve are retried on the next reconcile.
//
// A type that left the accepted set stops being synced first (the controllers no longer
// act on it), then its upstream objects are released from our finalizer from the caches
// that still run, and only then are its informers stopped; its downstream copies stay.
// Upstream informers whose release did not complete keep running and are retried on the
// next reconcile.
func (e *engine) reconcile(ctx context.Context, accepted []resourceInfo, states []workloadv1alpha1.SyncedResource, workspaces []string, servedUpstream map[upstreamInformerKey]bool) error {
	want := map[schema.GroupVersionResource]resourceInfo{}
	for _, r := range accepted {
		want[r.gvr] = r
	}
	releases, removed := e.acceptTypes(want, states)
	// The live release remembers the removed types (status Releasing) before anything is
	// released, so that a restart in the middle still knows them.
	if e.typeReleases != nil {
		e.typeReleases.track(ctx, removed, want, states, workspaces)
	}
	unreleased := e.releaseRemovedTypes(ctx, releases)
	e.nameWorkspaces(ctx, workspaces)

	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.reconcileDownstreamLocked(ctx, want); err != nil {
		return err
	}
	wantWorkspaces, err := e.reconcileWorkspacesLocked(ctx, workspaces)
	if err != nil {
		return err
	}
	if err := e.reconcileUpstreamLocked(ctx, want, wantWorkspaces, servedUpstream, unreleased); err != nil {
		return err
	}
	upstreamInformers := len(e.upstreamInformers)
	if e.views != nil {
		// Views share one informer per (shard, type).
		upstreamInformers = e.views.typeInformers()
	}
	e.metrics.informers.WithLabelValues(e.metrics.clusterName, sideUpstream).Set(float64(upstreamInformers))
	e.metrics.informers.WithLabelValues(e.metrics.clusterName, sideDownstream).Set(float64(len(e.downstreamInformers)))
	if len(unreleased) > 0 {
		return fmt.Errorf("failed to release the upstream objects of %d removed (workspace, resource) pairs; retrying", len(unreleased))
	}
	return nil
}

// reconcileDownstreamLocked runs one downstream informer per accepted resource.
func (e *engine) reconcileDownstreamLocked(ctx context.Context, want map[schema.GroupVersionResource]resourceInfo) error {
	logger := klog.FromContext(ctx)
	for gvr, h := range e.downstreamInformers {
		if _, ok := want[gvr]; !ok {
			logger.Info("Stopping downstream informer", "resource", gvr.String())
			h.stop()
			delete(e.downstreamInformers, gvr)
		}
	}
	for gvr := range want {
		if _, ok := e.downstreamInformers[gvr]; ok {
			continue
		}
		handler := objectHandler(func(downstreamObj *unstructured.Unstructured, deleted bool) {
			e.downstreamChanged(gvr, downstreamObj, deleted)
		})
		h, err := startInformer(ctx, e.downstreamDynamic, gvr, workloadv1alpha1.InternalDownstreamClusterLabel+"="+e.stKey, downstreamFieldSelector(gvr), e.resync, handler)
		if err != nil {
			return err
		}
		logger.Info("Started downstream informer", "resource", gvr.String())
		e.downstreamInformers[gvr] = h
	}
	return nil
}

// reconcileWorkspacesLocked keeps upstream clients for exactly the given workspaces.
func (e *engine) reconcileWorkspacesLocked(ctx context.Context, workspaces []string) (map[string]bool, error) {
	want := map[string]bool{}
	for _, ws := range workspaces {
		want[ws] = true
		if _, ok := e.upstreamWorkspaces[ws]; ok {
			continue
		}
		upstream, err := e.newUpstreamWorkspace(ctx, ws)
		if err != nil {
			return nil, err
		}
		e.upstreamWorkspaces[ws] = upstream
	}
	// The namespace and root-CA informers start once the workspace's name is known: their
	// events are mapped to locators, which need it.
	for ws := range want {
		upstream := e.upstreamWorkspaces[ws]
		if _, named := e.clusterNames[ws]; !named || upstream.kube == nil {
			continue
		}
		if e.views != nil {
			if upstream.namespaces == nil {
				upstream.namespaces, _ = e.views.namespaceView(ws)
			}
			if upstream.rootCA == nil {
				upstream.rootCA, _ = e.views.rootCAView(ws)
			}
			continue
		}
		if upstream.namespaces == nil {
			upstream.namespaces = e.startUpstreamNamespaceInformer(ctx, ws, upstream.kube)
		}
		if upstream.rootCA == nil {
			upstream.rootCA = e.startUpstreamRootCAInformer(ctx, ws, upstream.kube)
		}
	}
	for ws, upstream := range e.upstreamWorkspaces {
		if !want[ws] {
			klog.FromContext(ctx).Info("Workspace no longer placed on this SyncTarget; stopping its informers (downstream objects are kept)", "workspace", ws)
			if upstream.namespaces != nil {
				upstream.namespaces.stop()
			}
			if upstream.rootCA != nil {
				upstream.rootCA.stop()
			}
			upstream.stopEvents()
			delete(e.upstreamWorkspaces, ws)
			e.forgetWorkspaceNameLocked(ws)
			e.metrics.forgetWorkspace(ws)
		}
	}
	return want, nil
}

// reconcileUpstreamLocked runs one upstream informer per (workspace, accepted resource)
// that the workspace serves, and keeps those of removed types not released yet.
func (e *engine) reconcileUpstreamLocked(ctx context.Context, want map[schema.GroupVersionResource]resourceInfo, wantWorkspaces map[string]bool,
	servedUpstream map[upstreamInformerKey]bool, unreleased map[upstreamInformerKey]bool) error {
	logger := klog.FromContext(ctx)
	selector := workloadv1alpha1.ClusterResourceStateLabel(e.stKey) + "=" + workloadv1alpha1.ResourceStateSync
	for key, h := range e.upstreamInformers {
		if unreleased[key] && wantWorkspaces[key.workspace] {
			continue
		}
		if _, ok := want[key.gvr]; !ok || !wantWorkspaces[key.workspace] {
			logger.Info("Stopping upstream informer", "workspace", key.workspace, "resource", key.gvr.String())
			h.stop()
			delete(e.upstreamInformers, key)
		}
	}
	for ws := range wantWorkspaces {
		if _, named := e.clusterNames[ws]; !named {
			continue
		}
		for gvr := range want {
			key := upstreamInformerKey{workspace: ws, gvr: gvr}
			if _, ok := e.upstreamInformers[key]; ok {
				continue
			}
			if !servedUpstream[key] {
				logger.V(2).Info("Resource not served in the workspace (yet); not watching it", "workspace", ws, "resource", gvr.String())
				continue
			}
			h, err := e.startUpstreamInformer(ctx, ws, gvr, selector)
			if err != nil {
				return err
			}
			logger.Info("Started upstream informer", "workspace", ws, "resource", gvr.String())
			e.upstreamInformers[key] = h
		}
	}
	return nil
}

// startUpstreamInformer starts the informer of gvr in workspace ws: a view of the shared
// wildcard cache with syncer views, else its own informer.
func (e *engine) startUpstreamInformer(ctx context.Context, ws string, gvr schema.GroupVersionResource, selector string) (*informerHandle, error) {
	if e.views != nil {
		return e.views.typeView(ctx, ws, gvr)
	}
	handler := objectHandler(func(upstreamObj *unstructured.Unstructured, _ bool) {
		e.events.specChanged(specKey{workspace: ws, gvr: gvr, upstreamNamespace: upstreamObj.GetNamespace(), name: upstreamObj.GetName()})
	})
	return startInformer(ctx, e.upstreamWorkspaces[ws].dynamic, gvr, selector, "", e.resync, handler)
}

// downstreamChanged queues the status key of a downstream change, and the spec key of its
// upstream object so that drift is reverted and deletions complete.
func (e *engine) downstreamChanged(gvr schema.GroupVersionResource, downstreamObj *unstructured.Unstructured, deleted bool) {
	if isHubCACopy(gvr, downstreamObj.GetNamespace(), downstreamObj.GetName()) {
		return
	}
	if !deleted {
		e.events.statusChanged(statusKey{gvr: gvr, downstreamNamespace: downstreamObj.GetNamespace(), name: downstreamObj.GetName()})
	}
	if ws, ok := e.volumeWorkspace(downstreamObj); ok {
		e.events.specChanged(specKey{workspace: ws, gvr: gvr, name: downstreamObj.GetName()})
	}
	if locator, ok := e.events.locatorOf(downstreamObj.GetNamespace()); ok {
		if ws, ok := e.workspaceOf(locator.ClusterName); ok {
			e.events.specChanged(specKey{workspace: ws, gvr: gvr, upstreamNamespace: locator.Namespace, name: downstreamObj.GetName()})
		}
	}
}

// stopAll stops every informer and waits for them to end.
func (e *engine) stopAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	var handles []*informerHandle
	for k, h := range e.upstreamInformers {
		h.stop()
		handles = append(handles, h)
		delete(e.upstreamInformers, k)
	}
	for k, h := range e.downstreamInformers {
		h.stop()
		handles = append(handles, h)
		delete(e.downstreamInformers, k)
	}
	for _, upstream := range e.upstreamWorkspaces {
		if h := upstream.namespaces; h != nil {
			h.stop()
			handles = append(handles, h)
			upstream.namespaces = nil
		}
		if h := upstream.rootCA; h != nil {
			h.stop()
			handles = append(handles, h)
			upstream.rootCA = nil
		}
	}
	if e.views != nil {
		e.views.stop()
	}
	for _, h := range handles {
		<-h.done
	}
}
