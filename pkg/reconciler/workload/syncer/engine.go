package syncer

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// hubWorkspace names the only workspace of a plain Kubernetes hub (an upstream without
// kcp's /clusters/ URLs) in locators, metrics and logs.
const hubWorkspace = "hub"

// informerHandle is one running dynamic informer with its own stop function, so that the
// engine can start and stop informers one (workspace, resource) at a time.
type informerHandle struct {
	lister    cache.GenericLister
	hasSynced func() bool
	stop      context.CancelFunc
	done      chan struct{}
}

func (h *informerHandle) synced() bool { return h.hasSynced() }

func startInformer(ctx context.Context, client dynamic.Interface, gvr schema.GroupVersionResource, selector string, resync time.Duration, handler cache.ResourceEventHandler) (*informerHandle, error) {
	inf := dynamicinformer.NewFilteredDynamicInformer(client, gvr, metav1.NamespaceAll, resync, cache.Indexers{
		cache.NamespaceIndex: cache.MetaNamespaceIndexFunc,
	}, func(o *metav1.ListOptions) { o.LabelSelector = selector })
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

type upstreamKey struct {
	workspace string
	gvr       schema.GroupVersionResource
}

// workspaceClients are the upstream clients of one workload workspace.
type workspaceClients struct {
	path       string
	dynamic    dynamic.Interface
	kube       kubernetes.Interface
	recorder   record.EventRecorder
	stopEvents func()
}

// engine owns the informers: per (workspace, resource) upstream, label-selected on the state
// label; per resource downstream, label-selected on the ownership label; and the downstream
// namespaces this SyncTarget owns. It starts and stops them as the SyncTarget's workspaces
// and accepted resources change.
type engine struct {
	syncer *Syncer

	mu                  sync.RWMutex
	resources           map[schema.GroupVersionResource]resourceInfo
	upstream            map[upstreamKey]*informerHandle
	downstream          map[schema.GroupVersionResource]*informerHandle
	workspaces          map[string]*workspaceClients
	syncedResourceState []workloadv1alpha1.SyncedResource

	namespacesSynced func() bool
	namespaceLister  corelisters.NamespaceLister
}

func newEngine(s *Syncer) *engine {
	return &engine{
		syncer:     s,
		resources:  map[schema.GroupVersionResource]resourceInfo{},
		upstream:   map[upstreamKey]*informerHandle{},
		downstream: map[schema.GroupVersionResource]*informerHandle{},
		workspaces: map[string]*workspaceClients{},
	}
}

// startNamespaceInformer watches the downstream namespaces that carry this target's
// ownership label.
func (e *engine) startNamespaceInformer(ctx context.Context) {
	s := e.syncer
	factory := informers.NewSharedInformerFactoryWithOptions(s.downstreamKube, s.cfg.ResyncPeriod,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = workloadv1alpha1.InternalDownstreamClusterLabel + "=" + s.stKey
		}))
	nsInformer := factory.Core().V1().Namespaces()
	e.namespacesSynced = nsInformer.Informer().HasSynced
	e.namespaceLister = nsInformer.Lister()
	_, _ = nsInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) {
			if ns, ok := obj.(*corev1.Namespace); ok {
				s.namespaces.consider(ns.Name)
			}
		},
	})
	factory.Start(ctx.Done())
}

// reconcile brings informers in line with the accepted resources and the workspaces.
// servedUpstream tells, for the (workspace, resource) pairs without an informer, whether the
// workspace serves the resource; pairs it does not serve are retried on the next reconcile.
func (e *engine) reconcile(ctx context.Context, accepted []resourceInfo, states []workloadv1alpha1.SyncedResource, workspaces []string, servedUpstream map[upstreamKey]bool) error {
	logger := klog.FromContext(ctx)
	s := e.syncer
	e.mu.Lock()
	defer e.mu.Unlock()

	e.syncedResourceState = states
	want := map[schema.GroupVersionResource]resourceInfo{}
	for _, r := range accepted {
		want[r.gvr] = r
	}
	// Downstream informers per accepted resource.
	for gvr, h := range e.downstream {
		if _, ok := want[gvr]; !ok {
			logger.Info("Stopping downstream informer", "resource", gvr.String())
			h.stop()
			delete(e.downstream, gvr)
		}
	}
	for gvr := range want {
		if _, ok := e.downstream[gvr]; ok {
			continue
		}
		h, err := startInformer(ctx, s.downstreamDynamic, gvr, workloadv1alpha1.InternalDownstreamClusterLabel+"="+s.stKey, s.cfg.ResyncPeriod, s.controllers.downstreamHandler(gvr))
		if err != nil {
			return err
		}
		logger.Info("Started downstream informer", "resource", gvr.String())
		e.downstream[gvr] = h
	}
	e.resources = want

	// Upstream clients per workspace.
	wantWS := map[string]bool{}
	for _, ws := range workspaces {
		wantWS[ws] = true
		if _, ok := e.workspaces[ws]; ok {
			continue
		}
		wc, err := s.newWorkspaceClients(ctx, ws)
		if err != nil {
			return err
		}
		e.workspaces[ws] = wc
	}
	for ws := range e.workspaces {
		if !wantWS[ws] {
			logger.Info("Workspace no longer placed on this SyncTarget; stopping its informers (downstream objects are kept)", "workspace", ws)
			e.workspaces[ws].stopEvents()
			delete(e.workspaces, ws)
			s.metrics.forgetWorkspace(ws)
		}
	}

	// Upstream informers per (workspace, resource).
	selector := workloadv1alpha1.ClusterResourceStateLabel(s.stKey) + "=" + workloadv1alpha1.ResourceStateSync
	for key, h := range e.upstream {
		if _, ok := want[key.gvr]; !ok || !wantWS[key.workspace] {
			logger.Info("Stopping upstream informer", "workspace", key.workspace, "resource", key.gvr.String())
			h.stop()
			delete(e.upstream, key)
		}
	}
	for ws := range wantWS {
		for gvr := range want {
			key := upstreamKey{workspace: ws, gvr: gvr}
			if _, ok := e.upstream[key]; ok {
				continue
			}
			if !servedUpstream[key] {
				logger.V(2).Info("Resource not served in the workspace (yet); not watching it", "workspace", ws, "resource", gvr.String())
				continue
			}
			h, err := startInformer(ctx, e.workspaces[ws].dynamic, gvr, selector, s.cfg.ResyncPeriod, s.controllers.upstreamHandler(ws, gvr))
			if err != nil {
				return err
			}
			logger.Info("Started upstream informer", "workspace", ws, "resource", gvr.String())
			e.upstream[key] = h
		}
	}
	s.metrics.informers.WithLabelValues(s.metrics.clusterName, sideUpstream).Set(float64(len(e.upstream)))
	s.metrics.informers.WithLabelValues(s.metrics.clusterName, sideDownstream).Set(float64(len(e.downstream)))
	return nil
}

// stopAll stops every informer and waits for them to end.
func (e *engine) stopAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	var handles []*informerHandle
	for k, h := range e.upstream {
		h.stop()
		handles = append(handles, h)
		delete(e.upstream, k)
	}
	for k, h := range e.downstream {
		h.stop()
		handles = append(handles, h)
		delete(e.downstream, k)
	}
	for _, h := range handles {
		<-h.done
	}
}

func (e *engine) resource(gvr schema.GroupVersionResource) (resourceInfo, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	r, ok := e.resources[gvr]
	return r, ok
}

func (e *engine) upstreamInformer(ws string, gvr schema.GroupVersionResource) (*informerHandle, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	h, ok := e.upstream[upstreamKey{workspace: ws, gvr: gvr}]
	return h, ok
}

func (e *engine) downstreamInformer(gvr schema.GroupVersionResource) (*informerHandle, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	h, ok := e.downstream[gvr]
	return h, ok
}

func (e *engine) workspaceClients(ws string) (*workspaceClients, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	wc, ok := e.workspaces[ws]
	return wc, ok
}

// resourceList returns the accepted resources.
func (e *engine) resourceList() []resourceInfo {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]resourceInfo, 0, len(e.resources))
	for _, r := range e.resources {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].gvr.String() < out[j].gvr.String() })
	return out
}

// allSynced reports whether every informer has synced, and names the first that has not.
func (e *engine) allSynced() (bool, string) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.namespacesSynced == nil || !e.namespacesSynced() {
		return false, "downstream namespaces"
	}
	for gvr, h := range e.downstream {
		if !h.synced() {
			return false, "downstream " + gvr.String()
		}
	}
	for k, h := range e.upstream {
		if !h.synced() {
			return false, "upstream " + k.workspace + " " + k.gvr.String()
		}
	}
	return true, ""
}

// upstreamSynced reports whether every upstream informer of workspace ws has synced.
func (e *engine) upstreamSynced(ws string) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if _, ok := e.workspaces[ws]; !ok {
		return false
	}
	for k, h := range e.upstream {
		if k.workspace == ws && !h.synced() {
			return false
		}
	}
	return true
}

// downstreamObjectsIn counts the synced objects cached in downstream namespace ns.
func (e *engine) downstreamObjectsIn(ns string) int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	n := 0
	for _, h := range e.downstream {
		objs, _ := h.lister.ByNamespace(ns).List(labels.Everything())
		n += len(objs)
	}
	return n
}

// upstreamObjectsIn counts the synced objects cached in upstream namespace ns of ws.
func (e *engine) upstreamObjectsIn(ws, ns string) int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	n := 0
	for k, h := range e.upstream {
		if k.workspace != ws {
			continue
		}
		objs, _ := h.lister.ByNamespace(ns).List(labels.Everything())
		n += len(objs)
	}
	return n
}

// newWorkspaceClients builds the upstream clients for workload workspace ws.
func (s *Syncer) newWorkspaceClients(ctx context.Context, ws string) (*workspaceClients, error) {
	cfg := rest.CopyConfig(s.cfg.UpstreamConfig)
	if ws != hubWorkspace {
		u, err := logicalcluster.WorkspaceURL(cfg.Host, logicalcluster.NewPath(ws))
		if err != nil {
			return nil, err
		}
		cfg.Host = u
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create upstream client for workspace %s: %w", ws, err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create upstream client for workspace %s: %w", ws, err)
	}
	recorder, stop := newEventRecorder(ctx, kube, s.cfg.SyncTargetName)
	return &workspaceClients{path: ws, dynamic: dyn, kube: kube, recorder: recorder, stopEvents: stop}, nil
}

// resourceStates returns the per-type states for SyncTarget.status.syncedResources.
func (e *engine) resourceStates() []workloadv1alpha1.SyncedResource {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return append([]workloadv1alpha1.SyncedResource(nil), e.syncedResourceState...)
}

// missingUpstream returns the (workspace, resource) pairs that have no informer yet.
func (e *engine) missingUpstream(workspaces []string, accepted []resourceInfo) []upstreamKey {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var out []upstreamKey
	for _, ws := range workspaces {
		for _, r := range accepted {
			key := upstreamKey{workspace: ws, gvr: r.gvr}
			if _, ok := e.upstream[key]; !ok {
				out = append(out, key)
			}
		}
	}
	return out
}

// servedUpstream checks with discovery, outside the engine lock and with a timeout, which of
// the given pairs their workspace serves.
func (s *Syncer) servedUpstream(ctx context.Context, keys []upstreamKey) map[upstreamKey]bool {
	out := map[upstreamKey]bool{}
	lists := map[string]*metav1.APIResourceList{}
	for _, key := range keys {
		gv := key.gvr.GroupVersion().String()
		id := key.workspace + "|" + gv
		list, ok := lists[id]
		if !ok {
			cfg := rest.CopyConfig(s.cfg.UpstreamConfig)
			cfg.Timeout = 10 * time.Second
			if key.workspace != hubWorkspace {
				u, err := logicalcluster.WorkspaceURL(cfg.Host, logicalcluster.NewPath(key.workspace))
				if err != nil {
					continue
				}
				cfg.Host = u
			}
			dc, err := discovery.NewDiscoveryClientForConfig(cfg)
			if err != nil {
				continue
			}
			list, err = dc.ServerResourcesForGroupVersion(gv)
			if err != nil {
				klog.FromContext(ctx).V(2).Info("Cannot discover upstream resources", "workspace", key.workspace, "groupVersion", gv, "err", err)
				list = nil
			}
			lists[id] = list
		}
		if list == nil {
			continue
		}
		for _, r := range list.APIResources {
			if r.Name == key.gvr.Resource {
				out[key] = true
			}
		}
	}
	return out
}
