package syncer

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/reconciler/queue"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const (
	// hubCAKey is the key of the CA bundle in kube-root-ca.crt and in its kcp-root-ca.crt copy.
	hubCAKey = "ca.crt"
	// operationApplyHubCA is the downstream write of a kcp-root-ca.crt copy.
	operationApplyHubCA = "apply_hub_ca"
	// hubCAConflictLabel is the resource label of conflicts with a pre-existing
	// kcp-root-ca.crt (syncer_resource_conflicts_total), as resourceInfo.label writes it.
	hubCAConflictLabel = "configmaps/v1"
)

// isHubCACopy reports whether a downstream object of type gvr is a kcp-root-ca.crt
// ConfigMap: the hub CA publisher's, never a synced object. It is neither counted as one
// (a namespace holding only it is empty) nor mapped to an upstream object (there is no
// upstream object of that name: the spec controller would see it as "upstream gone").
func isHubCACopy(gvr schema.GroupVersionResource, namespace, name string) bool {
	return gvr.Group == "" && gvr.Resource == "configmaps" && name == transform.HubCAConfigMapName && namespace != ""
}

// downstreamFieldSelector keeps the kcp-root-ca.crt copies out of the downstream cache of
// synced ConfigMaps, so that nothing reading those caches (namespace cleanup, deletion
// budget, workspace health, SyncTarget deletion) takes them for synced objects.
func downstreamFieldSelector(gvr schema.GroupVersionResource) string {
	if gvr.Group == "" && gvr.Resource == "configmaps" {
		return fields.OneTermNotEqualSelector("metadata.name", transform.HubCAConfigMapName).String()
	}
	return ""
}

// hubCAPublisher keeps, in every downstream namespace this target owns, a ConfigMap
// kcp-root-ca.crt whose ca.crt is the one of its upstream namespace's kube-root-ca.crt (the
// hub's CA, published by the workspace's root-CA controller), so that workloads that talk
// to the control plane can verify it; kube-root-ca.crt downstream stays the physical
// cluster's own. It writes by server-side apply and only when the copy differs, never
// creates or deletes a namespace, writes nothing when the upstream namespace has no
// kube-root-ca.crt (a plain hub without the root-CA publisher), and leaves a pre-existing
// kcp-root-ca.crt without the ownership label alone (reported once: a log line and
// syncer_resource_conflicts_total). The copy goes with its namespace.
type hubCAPublisher struct {
	target syncTarget
	// namespaceLister, locatorOf and downstreamName are the namespace manager's view of
	// the downstream namespaces this target owns.
	namespaceLister func() corelisters.NamespaceLister
	locatorOf       func(downstreamNamespace string) (workloadv1alpha1.NamespaceLocator, bool)
	downstreamName  func(locator workloadv1alpha1.NamespaceLocator) (string, error)
	// upstreamRootCA returns the cached kube-root-ca.crt of an upstream namespace;
	// clusterName and workspaceOf map workspaces to their locators' logical clusters.
	upstreamRootCA func(workspace, upstreamNamespace string) (*corev1.ConfigMap, bool)
	clusterName    func(workspace string) (string, bool)
	workspaceOf    func(cluster string) (string, bool)
	downstreamKube kubernetes.Interface
	resync         time.Duration
	metrics        *syncerMetrics
	queue          *queue.Queue[string]

	// downstreamCopies caches our kcp-root-ca.crt copies (set by run, before any reconcile).
	downstreamCopies corelisters.ConfigMapLister

	mu sync.Mutex
	// reported holds the pre-existing copies without our label already reported, by
	// downstream namespace.
	reported map[string]types.UID
}

func newHubCAPublisher(target syncTarget, e *engine, namespaces *namespaceManager, downstreamKube kubernetes.Interface, resync time.Duration,
	metrics *syncerMetrics, recovery tmc.RecoveryOptions) *hubCAPublisher {
	p := &hubCAPublisher{
		target:          target,
		namespaceLister: namespaces.namespaceLister,
		locatorOf:       namespaces.locatorOf,
		downstreamName:  namespaces.downstreamName,
		upstreamRootCA:  e.upstreamRootCA,
		clusterName:     e.clusterName,
		workspaceOf:     e.workspaceOf,
		downstreamKube:  downstreamKube,
		resync:          resync,
		metrics:         metrics,
		reported:        map[string]types.UID{},
	}
	// Failures are retried, but are not sync failures of any object.
	p.queue = queue.New(p.reconcile, queue.Options[string]{
		Name: "hub-ca", Component: "syncer", MetricsProvider: metrics.tmc.WorkqueueMetricsProvider(), Recovery: recovery,
	})
	return p
}

// namespaceAdded queues a downstream namespace the target owns.
func (p *hubCAPublisher) namespaceAdded(downstreamNamespace string) { p.queue.Add(downstreamNamespace) }

// upstreamChanged queues the downstream namespace of upstream namespace ns of workspace ws,
// whose kube-root-ca.crt changed, if this target owns one.
func (p *hubCAPublisher) upstreamChanged(ws, ns string) {
	cluster, ok := p.clusterName(ws)
	if !ok {
		return
	}
	downstreamNamespace, err := p.downstreamName(p.target.locator(cluster, ns))
	if err != nil {
		return
	}
	if _, ok := p.locatorOf(downstreamNamespace); ok {
		p.queue.Add(downstreamNamespace)
	}
}

// run watches our copies downstream (to revert a change and restore a deleted one) and
// reconciles once that cache has synced, so that a restart compares against every copy
// and writes none that is up to date.
func (p *hubCAPublisher) run(ctx context.Context) {
	factory := informers.NewSharedInformerFactoryWithOptions(p.downstreamKube, p.resync,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = workloadv1alpha1.InternalDownstreamClusterLabel + "=" + p.target.key
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", transform.HubCAConfigMapName).String()
		}))
	copies := factory.Core().V1().ConfigMaps()
	_, _ = copies.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.copyChanged(obj) },
		UpdateFunc: func(_, obj any) { p.copyChanged(obj) },
		DeleteFunc: func(obj any) { p.copyChanged(obj) },
	})
	p.downstreamCopies = copies.Lister()
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), copies.Informer().HasSynced) {
		p.queue.ShutDown()
		return
	}
	p.queue.Run(ctx, 1)
}

func (p *hubCAPublisher) copyChanged(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if cm, ok := obj.(*corev1.ConfigMap); ok && cm.Name == transform.HubCAConfigMapName {
		p.queue.Add(cm.Namespace)
	}
}

// reconcile brings the kcp-root-ca.crt of one downstream namespace in line with its
// upstream namespace's kube-root-ca.crt: ours and not terminating? → the hub's CA known? →
// the current copy (ours? up to date?) → apply.
func (p *hubCAPublisher) reconcile(ctx context.Context, downstreamNamespace string) (time.Duration, error) {
	logger := klog.FromContext(ctx).WithValues("downstreamNamespace", downstreamNamespace)
	ctx = klog.NewContext(ctx, logger)
	loc, ok := p.ownedNamespace(downstreamNamespace)
	if !ok {
		return 0, nil
	}
	ws, ok := p.workspaceOf(loc.ClusterName)
	if !ok {
		// Its workspace is not watched (yet): once its name is known, the workspace's
		// kube-root-ca.crt informer starts and its events bring the namespace here again.
		return 0, nil
	}
	logger = logger.WithValues("workspace", ws, "upstreamNamespace", loc.Namespace)
	ctx = klog.NewContext(ctx, logger)
	upstreamCA, ok := p.upstreamRootCA(ws, loc.Namespace)
	if !ok || upstreamCA.Data[hubCAKey] == "" {
		// Not watched or not synced yet (its informer's events bring it here again), or a
		// hub without a root-CA publisher: nothing to publish.
		logger.V(4).Info("No hub CA known for the upstream namespace; not publishing " + transform.HubCAConfigMapName)
		return 0, nil
	}
	downstreamCopy, err := p.current(ctx, downstreamNamespace)
	if err != nil {
		return 0, err
	}
	if downstreamCopy != nil && downstreamCopy.Labels[workloadv1alpha1.InternalDownstreamClusterLabel] != p.target.key {
		p.reportUnowned(ctx, ws, downstreamCopy)
		return 0, nil
	}
	if downstreamCopy != nil && downstreamCopy.Data[hubCAKey] == upstreamCA.Data[hubCAKey] {
		logger.V(4).Info("Downstream " + transform.HubCAConfigMapName + " up to date")
		return 0, nil
	}
	return 0, p.apply(ctx, downstreamNamespace, upstreamCA.Data[hubCAKey])
}

// ownedNamespace returns the locator of a downstream namespace this target owns and that
// is not being deleted; false for any other.
func (p *hubCAPublisher) ownedNamespace(downstreamNamespace string) (workloadv1alpha1.NamespaceLocator, bool) {
	lister := p.namespaceLister()
	if lister == nil {
		return workloadv1alpha1.NamespaceLocator{}, false
	}
	ns, err := lister.Get(downstreamNamespace)
	if err != nil || ns.DeletionTimestamp != nil || ns.Labels[workloadv1alpha1.InternalDownstreamClusterLabel] != p.target.key {
		return workloadv1alpha1.NamespaceLocator{}, false
	}
	return p.locatorOf(downstreamNamespace)
}

// current returns the downstream kcp-root-ca.crt (nil if there is none): our copy from the
// cache, else a live read that also finds one we do not own.
func (p *hubCAPublisher) current(ctx context.Context, downstreamNamespace string) (*corev1.ConfigMap, error) {
	cm, err := p.downstreamCopies.ConfigMaps(downstreamNamespace).Get(transform.HubCAConfigMapName)
	if err == nil {
		return cm, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	cm, err = p.downstreamKube.CoreV1().ConfigMaps(downstreamNamespace).Get(ctx, transform.HubCAConfigMapName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("failed to get downstream %s: %w", transform.HubCAConfigMapName, err)
	}
	return cm, nil
}

// apply writes our copy: the ownership label and the hub's CA, nothing else.
func (p *hubCAPublisher) apply(ctx context.Context, downstreamNamespace, caBundle string) error {
	desired := corev1ac.ConfigMap(transform.HubCAConfigMapName, downstreamNamespace).
		WithLabels(map[string]string{workloadv1alpha1.InternalDownstreamClusterLabel: p.target.key}).
		WithData(map[string]string{hubCAKey: caBundle})
	_, err := p.downstreamKube.CoreV1().ConfigMaps(downstreamNamespace).Apply(ctx, desired, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if err != nil {
		return fmt.Errorf("failed to apply downstream %s: %w", transform.HubCAConfigMapName, err)
	}
	p.metrics.downstreamWrite(operationApplyHubCA)
	klog.FromContext(ctx).V(3).Info("Published the hub CA downstream as " + transform.HubCAConfigMapName)
	return nil
}

// reportUnowned reports, once per object, a pre-existing downstream kcp-root-ca.crt
// without our ownership label: it is left alone.
func (p *hubCAPublisher) reportUnowned(ctx context.Context, ws string, downstreamCopy *corev1.ConfigMap) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reported[downstreamCopy.Namespace] == downstreamCopy.UID {
		return
	}
	p.reported[downstreamCopy.Namespace] = downstreamCopy.UID
	p.metrics.conflicts.WithLabelValues(p.metrics.clusterName, ws, hubCAConflictLabel).Inc()
	klog.FromContext(ctx).Info("Downstream "+transform.HubCAConfigMapName+" exists without our ownership label; leaving it alone and not publishing the hub CA there",
		"label", workloadv1alpha1.InternalDownstreamClusterLabel+"="+p.target.key)
}

// rootCAConfigMapsResource names the upstream kube-root-ca.crt caches' lister.
var rootCAConfigMapsResource = corev1.SchemeGroupVersion.WithResource("configmaps").GroupResource()

// startUpstreamRootCAInformer watches the kube-root-ca.crt ConfigMaps of workspace ws (a
// field selector on the name: nothing else of the workspace's ConfigMaps is read) for the
// hub CA publisher. It is not part of upstreamSynced: the namespace cleanup never waits
// for it.
func (e *engine) startUpstreamRootCAInformer(ctx context.Context, ws string, upstreamKube kubernetes.Interface) *informerHandle {
	inf := coreinformers.NewFilteredConfigMapInformer(upstreamKube, metav1.NamespaceAll, e.resync, cache.Indexers{
		cache.NamespaceIndex: cache.MetaNamespaceIndexFunc,
	}, func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", transform.RootCAConfigMapName).String()
	})
	_, err := inf.AddEventHandler(rootCAHandler(func(rootCA *corev1.ConfigMap) {
		if e.events.rootCAChanged != nil {
			e.events.rootCAChanged(ws, rootCA.Namespace)
		}
	}))
	if err != nil {
		// Only possible on a stopped informer; this one has not started.
		klog.FromContext(ctx).Error(err, "Failed to watch upstream "+transform.RootCAConfigMapName, "workspace", ws)
	}
	return runInformer(ctx, inf, rootCAConfigMapsResource)
}

// rootCAHandler calls changed with every kube-root-ca.crt added, and with those whose CA
// bundle changed.
func rootCAHandler(changed func(*corev1.ConfigMap)) cache.ResourceEventHandlerFuncs {
	call := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if cm, ok := obj.(*corev1.ConfigMap); ok && cm.Name == transform.RootCAConfigMapName {
			changed(cm)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: call,
		UpdateFunc: func(oldObj, newObj any) {
			oldCM, ok1 := oldObj.(*corev1.ConfigMap)
			newCM, ok2 := newObj.(*corev1.ConfigMap)
			if ok1 && ok2 && oldCM.Data[hubCAKey] != newCM.Data[hubCAKey] {
				call(newObj)
			}
		},
	}
}

// upstreamRootCA returns the cached kube-root-ca.crt of upstream namespace ns of workspace
// ws; false while the workspace is not watched or its cache has not synced, and when the
// namespace has none.
func (e *engine) upstreamRootCA(ws, ns string) (*corev1.ConfigMap, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	upstream, ok := e.upstreamWorkspaces[ws]
	if !ok || upstream.rootCA == nil || !upstream.rootCA.hasSynced() {
		return nil, false
	}
	obj, err := upstream.rootCA.lister.ByNamespace(ns).Get(transform.RootCAConfigMapName)
	if err != nil {
		return nil, false
	}
	cm, ok := obj.(*corev1.ConfigMap)
	return cm, ok
}

// syncedObjects counts the objects of a downstream cache of type gvr that are synced
// objects: all but the hub CA copies.
func syncedObjects(gvr schema.GroupVersionResource, objs []runtime.Object) int {
	n := 0
	for _, obj := range objs {
		if m, err := meta.Accessor(obj); err == nil && isHubCACopy(gvr, m.GetNamespace(), m.GetName()) {
			continue
		}
		n++
	}
	return n
}
