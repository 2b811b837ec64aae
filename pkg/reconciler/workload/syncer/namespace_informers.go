package syncer

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// namespacesResource names the namespace caches' lister.
var namespacesResource = corev1.SchemeGroupVersion.WithResource("namespaces").GroupResource()

// startNamespaceInformer watches the downstream namespaces that carry this target's
// ownership label.
func (e *engine) startNamespaceInformer(ctx context.Context) {
	factory := informers.NewSharedInformerFactoryWithOptions(e.downstreamKube, e.resync,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = workloadv1alpha1.InternalDownstreamClusterLabel + "=" + e.stKey
		}))
	nsInformer := factory.Core().V1().Namespaces()
	e.mu.Lock()
	e.namespacesSynced = nsInformer.Informer().HasSynced
	e.namespaceLister = nsInformer.Lister()
	e.mu.Unlock()
	_, _ = nsInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if ns, ok := obj.(*corev1.Namespace); ok {
				e.events.namespaceAdded(ns.Name)
				if e.events.hubCANamespace != nil {
					e.events.hubCANamespace(ns.Name)
				}
			}
		},
	})
	factory.Start(ctx.Done())
}

// namespaces returns the lister of the downstream namespaces this target owns, nil until
// the namespace informer runs.
func (e *engine) namespaces() corelisters.NamespaceLister {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.namespaceLister
}

// downstreamSynced reports whether the downstream namespace informer and every downstream
// object informer have synced, and names the first that has not. It is also what SyncerReady
// means (the syncer itself works): the upstream informers are left out on purpose, since one
// workload workspace the syncer cannot read is reported in status.workspaceHealth and must
// not turn the whole target NotReady.
func (e *engine) downstreamSynced() (bool, string) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if !e.namespacesSynced() {
		return false, "downstream namespaces"
	}
	for gvr, h := range e.downstreamInformers {
		if !h.hasSynced() {
			return false, "downstream " + gvr.String()
		}
	}
	return true, ""
}

// placedOnTarget reports whether an upstream namespace is placed on the target stKey: its
// state label says Sync and no per-target deletion annotation marks it as being removed.
func placedOnTarget(stKey string, upstreamNamespace *corev1.Namespace) bool {
	if upstreamNamespace.Labels[workloadv1alpha1.ClusterResourceStateLabel(stKey)] != workloadv1alpha1.ResourceStateSync {
		return false
	}
	_, removing := upstreamNamespace.Annotations[workloadv1alpha1.DeletionAnnotation(stKey)]
	return !removing
}

// startUpstreamNamespaceInformer watches the namespaces of workspace ws that carry this
// target's state label, whatever its value (placed, or being removed), so that the
// namespace cleanup learns when one is no longer placed or goes away.
func (e *engine) startUpstreamNamespaceInformer(ctx context.Context, ws string, upstreamKube kubernetes.Interface) *informerHandle {
	stateLabel := workloadv1alpha1.ClusterResourceStateLabel(e.stKey)
	inf := coreinformers.NewFilteredNamespaceInformer(upstreamKube, e.resync, cache.Indexers{}, func(o *metav1.ListOptions) {
		o.LabelSelector = stateLabel // exists, any value
	})
	_, err := inf.AddEventHandler(upstreamNamespaceHandler(e.stKey, func(upstreamNamespace *corev1.Namespace) {
		if e.events.upstreamNamespaceChanged != nil {
			e.events.upstreamNamespaceChanged(ws, upstreamNamespace.Name)
		}
	}))
	if err != nil {
		// Only possible on a stopped informer; this one has not started.
		klog.FromContext(ctx).Error(err, "Failed to watch upstream namespaces", "workspace", ws)
	}
	h := runInformer(ctx, inf, namespacesResource)
	klog.FromContext(ctx).Info("Started upstream namespace informer", "workspace", ws)
	return h
}

// runInformer runs inf until its handle is stopped; the handle lists its cache as gr.
func runInformer(ctx context.Context, inf cache.SharedIndexInformer, gr schema.GroupResource) *informerHandle {
	ctx, cancel := context.WithCancel(ctx)
	h := &informerHandle{
		lister:    cache.NewGenericLister(inf.GetIndexer(), gr),
		hasSynced: inf.HasSynced,
		stop:      cancel,
		done:      make(chan struct{}),
	}
	go func() {
		defer close(h.done)
		inf.RunWithContext(ctx)
	}()
	return h
}

// upstreamNamespace returns the cached upstream namespace name of workspace ws if it carries
// the target's state label (any value: placedOnTarget tells whether it is still placed).
// false while the workspace is not watched, and for a namespace the cache has not seen
// (yet): callers that act on its absence check upstreamSynced(ws) first.
func (e *engine) upstreamNamespace(ws, name string) (*corev1.Namespace, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	upstream, ok := e.upstreamWorkspaces[ws]
	if !ok || upstream.namespaces == nil {
		return nil, false
	}
	obj, err := upstream.namespaces.lister.Get(name)
	if err != nil {
		return nil, false
	}
	ns, ok := obj.(*corev1.Namespace)
	return ns, ok
}

// upstreamNamespaces returns the namespace client of workspace ws for live reads, if the
// workspace is watched.
func (e *engine) upstreamNamespaces(ws string) (typedcorev1.NamespaceInterface, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	upstream, ok := e.upstreamWorkspaces[ws]
	if !ok || upstream.kube == nil {
		return nil, false
	}
	return upstream.kube.CoreV1().Namespaces(), true
}

// upstreamNamespaceHandler calls changed with every upstream namespace whose
// placement on target stKey changed (state label or deletion annotation) or that left the
// cache (deleted, or its state label removed). An added namespace counts only if it is not
// placed: the downstream namespace informer already queues every owned namespace at start.
func upstreamNamespaceHandler(stKey string, changed func(*corev1.Namespace)) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if ns, ok := obj.(*corev1.Namespace); ok && !placedOnTarget(stKey, ns) {
				changed(ns)
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			oldNS, ok1 := oldObj.(*corev1.Namespace)
			newNS, ok2 := newObj.(*corev1.Namespace)
			if ok1 && ok2 && placedOnTarget(stKey, oldNS) != placedOnTarget(stKey, newNS) {
				changed(newNS)
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if ns, ok := obj.(*corev1.Namespace); ok {
				changed(ns)
			}
		},
	}
}
