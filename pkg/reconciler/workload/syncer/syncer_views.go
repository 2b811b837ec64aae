package syncer

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	"github.com/tmc-dev/tmc/pkg/wildcard"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// syncerViews reach the workload workspaces through the virtual-workspace server's syncer
// views of this target, one per shard (SyncTarget.status.virtualWorkspaces). Per shard one
// wildcard informer watches the placed namespaces of every workspace and one per synced type
// its objects; the engine's per-(workspace, type) handles are views of those caches. A
// workspace of a shard is a logical cluster with a placed namespace there; its name is its
// identity (no path is needed).
type syncerViews struct {
	// base is the syncer's upstream credential; each view's URL replaces its host.
	base   *rest.Config
	stKey  string
	resync time.Duration

	// specChanged, namespaceChanged and rootCAChanged receive the events of viewed
	// workspaces.
	specChanged      func(specKey)
	namespaceChanged func(workspace, upstreamNamespace string)
	rootCAChanged    func(workspace, upstreamNamespace string)

	// newClients returns the wildcard clients of a view URL (tests replace it).
	newClients func(cfg *rest.Config) (dynamic.Interface, kubernetes.Interface, error)

	mu     sync.Mutex
	shards map[string]*viewShard
}

// wildcardClients returns the clients of cfg's /clusters/* endpoint.
func wildcardClients(cfg *rest.Config) (dynamic.Interface, kubernetes.Interface, error) {
	wildcardDynamic, err := dynamic.NewForConfig(wildcard.Config(cfg))
	if err != nil {
		return nil, nil, fmt.Errorf("failed to create the client of syncer view %s: %w", cfg.Host, err)
	}
	wildcardKube, err := kubernetes.NewForConfig(wildcard.Config(cfg))
	if err != nil {
		return nil, nil, fmt.Errorf("failed to create the client of syncer view %s: %w", cfg.Host, err)
	}
	return wildcardDynamic, wildcardKube, nil
}

// viewShard is one shard's syncer view and its caches.
type viewShard struct {
	url             string
	wildcardDynamic dynamic.Interface
	cancel          context.CancelFunc
	namespaces      *wildcard.Informer
	// namespaceViews are the workspaces whose namespace events reach the engine.
	namespaceViews map[string]bool
	// rootCA caches the kube-root-ca.crt ConfigMaps of every workspace of the shard (the
	// hub CA copy); rootCAViews are the workspaces whose events reach the engine.
	rootCA      *wildcard.Informer
	rootCAViews map[string]bool
	types       map[schema.GroupVersionResource]*sharedType
}

// sharedType is one type's wildcard cache on a shard and the workspaces viewing it.
type sharedType struct {
	informer *wildcard.Informer
	cancel   context.CancelFunc
	views    map[string]bool
}

func newSyncerViews(base *rest.Config, stKey string, resync time.Duration) *syncerViews {
	return &syncerViews{base: base, stKey: stKey, resync: resync, newClients: wildcardClients, shards: map[string]*viewShard{}}
}

// viewURLs returns the syncer view URLs of st, in order.
func viewURLs(st *workloadv1alpha1.SyncTarget) []string {
	var urls []string
	for _, vw := range st.Status.VirtualWorkspaces {
		if vw.SyncerURL != "" {
			urls = append(urls, vw.SyncerURL)
		}
	}
	return urls
}

// setURLs starts the views of new URLs and stops those no longer listed (their workspaces
// leave the engine's list, which stops their informers; nothing downstream is touched).
func (v *syncerViews) setURLs(ctx context.Context, urls []string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	want := map[string]bool{}
	for _, u := range urls {
		want[u] = true
		if _, ok := v.shards[u]; ok {
			continue
		}
		shard, err := v.startShardLocked(ctx, u)
		if err != nil {
			return err
		}
		v.shards[u] = shard
	}
	for u, shard := range v.shards {
		if !want[u] {
			klog.FromContext(ctx).Info("Syncer view no longer listed in the SyncTarget's status; stopping its informers (downstream objects are kept)", "url", u)
			shard.stop()
			delete(v.shards, u)
		}
	}
	return nil
}

func (v *syncerViews) startShardLocked(ctx context.Context, url string) (*viewShard, error) {
	cfg := rest.CopyConfig(v.base)
	cfg.Host = url
	wildcardDynamic, wildcardKube, err := v.newClients(cfg)
	if err != nil {
		return nil, err
	}
	shard := &viewShard{url: url, wildcardDynamic: wildcardDynamic, namespaceViews: map[string]bool{}, rootCAViews: map[string]bool{},
		types: map[schema.GroupVersionResource]*sharedType{}}
	// The view serves only this target's placed namespaces (state label Sync); one that is
	// no longer placed leaves it, which the handler reports as a deletion.
	namespaces := wildcardKube.CoreV1().Namespaces()
	stateLabel := workloadv1alpha1.ClusterResourceStateLabel(v.stKey) // exists, any value
	shard.namespaces = wildcard.NewInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = stateLabel
			return namespaces.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = stateLabel
			return namespaces.Watch(ctx, o)
		},
	}, &corev1.Namespace{}, v.resync)
	if err := shard.namespaces.AddEventHandler(v.namespaceEvents(shard)); err != nil {
		return nil, err
	}
	shard.rootCA = v.rootCAInformer(shard, wildcardKube)
	shardCtx, cancel := context.WithCancel(ctx)
	shard.cancel = cancel
	go shard.namespaces.Run(shardCtx)
	go shard.rootCA.Run(shardCtx)
	klog.FromContext(ctx).Info("Started the namespace informer of a syncer view", "url", url)
	return shard, nil
}

// namespaceEvents passes the namespace events of viewed workspaces to namespaceChanged
// with the rules of upstreamNamespaceHandler.
func (v *syncerViews) namespaceEvents(shard *viewShard) cache.ResourceEventHandler {
	return upstreamNamespaceHandler(v.stKey, func(upstreamNamespace *corev1.Namespace) {
		ws := wildcard.ClusterOf(upstreamNamespace)
		v.mu.Lock()
		viewed := shard.namespaceViews[ws]
		v.mu.Unlock()
		if viewed && v.namespaceChanged != nil {
			v.namespaceChanged(ws, upstreamNamespace.Name)
		}
	})
}

// rootCAInformer caches the shard's kube-root-ca.crt ConfigMaps, the one ConfigMap the view
// serves without the state label (nothing else of a workspace's ConfigMaps is read).
func (v *syncerViews) rootCAInformer(shard *viewShard, wildcardKube kubernetes.Interface) *wildcard.Informer {
	configMaps := wildcardKube.CoreV1().ConfigMaps(metav1.NamespaceAll)
	byName := fields.OneTermEqualSelector("metadata.name", transform.RootCAConfigMapName).String()
	inf := wildcard.NewInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = byName
			return configMaps.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = byName
			return configMaps.Watch(ctx, o)
		},
	}, &corev1.ConfigMap{}, v.resync)
	// Not started yet: cannot fail.
	_ = inf.AddEventHandler(rootCAHandler(func(rootCA *corev1.ConfigMap) {
		ws := wildcard.ClusterOf(rootCA)
		v.mu.Lock()
		viewed := shard.rootCAViews[ws]
		v.mu.Unlock()
		if viewed && v.rootCAChanged != nil {
			v.rootCAChanged(ws, rootCA.Namespace)
		}
	}))
	return inf
}

// rootCAView returns the handle of workspace ws's kube-root-ca.crt ConfigMaps and replays
// them as a new informer would.
func (v *syncerViews) rootCAView(ws string) (*informerHandle, bool) {
	v.mu.Lock()
	shard, ok := v.shardOfLocked(ws)
	if ok {
		shard.rootCAViews[ws] = true
	}
	v.mu.Unlock()
	if !ok {
		return nil, false
	}
	lister := shard.rootCA.Lister(ws)
	h := viewHandle(lister, shard.rootCA.HasSynced, func() {
		v.mu.Lock()
		delete(shard.rootCAViews, ws)
		v.mu.Unlock()
	})
	objs, _ := lister.List(labels.Everything())
	go func() {
		for _, obj := range objs {
			if cm, ok := obj.(*corev1.ConfigMap); ok && v.rootCAChanged != nil {
				v.rootCAChanged(ws, cm.Namespace)
			}
		}
	}()
	return h, true
}

func (s *viewShard) stop() {
	s.cancel()
	for _, t := range s.types {
		t.cancel()
	}
}

// stop stops every view.
func (v *syncerViews) stop() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for u, shard := range v.shards {
		shard.stop()
		delete(v.shards, u)
	}
}

// workspaces returns the workspaces with a placed namespace on any shard whose namespace
// cache has synced, sorted, and whether every shard has synced. A shard that lost its
// connection keeps its cache, so its workspaces stay.
func (v *syncerViews) workspaces() ([]string, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	seen := map[string]bool{}
	allSynced := true
	for _, shard := range v.shards {
		if !shard.namespaces.HasSynced() {
			allSynced = false
			continue
		}
		for _, ws := range shard.namespaces.Clusters() {
			seen[ws] = true
		}
	}
	out := make([]string, 0, len(seen))
	for ws := range seen {
		out = append(out, ws)
	}
	sort.Strings(out)
	return out, allSynced
}

// typeInformers counts the running wildcard informers of synced types, over all shards.
func (v *syncerViews) typeInformers() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, shard := range v.shards {
		n += len(shard.types)
	}
	return n
}

// shardOfLocked returns the shard serving workspace ws.
func (v *syncerViews) shardOfLocked(ws string) (*viewShard, bool) {
	urls := make([]string, 0, len(v.shards))
	for u := range v.shards {
		urls = append(urls, u)
	}
	sort.Strings(urls)
	for _, u := range urls {
		shard := v.shards[u]
		if objs, err := shard.namespaces.Lister(ws).List(labels.Everything()); err == nil && len(objs) > 0 {
			return shard, true
		}
	}
	return nil, false
}

// config returns the config of workspace ws: its shard's view at /clusters/<ws>.
func (v *syncerViews) config(ws string) (*rest.Config, error) {
	v.mu.Lock()
	shard, ok := v.shardOfLocked(ws)
	v.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("workspace %s has no placed namespace in any syncer view", ws)
	}
	cfg := rest.CopyConfig(v.base)
	u, err := logicalcluster.WorkspaceURL(shard.url, logicalcluster.NewPath(ws))
	if err != nil {
		return nil, err
	}
	cfg.Host = u
	return cfg, nil
}

// namespaceView returns the handle of workspace ws's placed namespaces and replays them as
// a new informer would (ws's namespace events reach the engine from now on).
func (v *syncerViews) namespaceView(ws string) (*informerHandle, bool) {
	v.mu.Lock()
	shard, ok := v.shardOfLocked(ws)
	if ok {
		shard.namespaceViews[ws] = true
	}
	v.mu.Unlock()
	if !ok {
		return nil, false
	}
	lister := shard.namespaces.Lister(ws)
	h := viewHandle(lister, shard.namespaces.HasSynced, func() {
		v.mu.Lock()
		delete(shard.namespaceViews, ws)
		v.mu.Unlock()
	})
	// The engine calls this holding its lock, which the receivers of the events take:
	// replayed from another goroutine, as an informer delivers them.
	objs, _ := lister.List(labels.Everything())
	go func() {
		for _, obj := range objs {
			if ns, ok := obj.(*corev1.Namespace); ok && !placedOnTarget(v.stKey, ns) && v.namespaceChanged != nil {
				v.namespaceChanged(ws, ns.Name)
			}
		}
	}()
	return h, true
}

// typeView returns the handle of gvr in workspace ws, starting the shard's shared informer
// of gvr if needed, and queues ws's cached objects as a new informer would.
func (v *syncerViews) typeView(ctx context.Context, ws string, gvr schema.GroupVersionResource) (*informerHandle, error) {
	v.mu.Lock()
	shard, ok := v.shardOfLocked(ws)
	if !ok {
		v.mu.Unlock()
		return nil, fmt.Errorf("workspace %s has no placed namespace in any syncer view", ws)
	}
	t, ok := shard.types[gvr]
	if !ok {
		var err error
		if t, err = v.startTypeLocked(ctx, shard, gvr); err != nil {
			v.mu.Unlock()
			return nil, err
		}
		shard.types[gvr] = t
	}
	t.views[ws] = true
	v.mu.Unlock()
	lister := t.informer.Lister(ws)
	h := viewHandle(lister, t.informer.HasSynced, func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		delete(t.views, ws)
		if len(t.views) == 0 && shard.types[gvr] == t {
			klog.FromContext(ctx).Info("Stopping the wildcard informer of a syncer view", "url", shard.url, "resource", gvr.String())
			t.cancel()
			delete(shard.types, gvr)
		}
	})
	objs, _ := lister.List(labels.Everything())
	go func() {
		for _, obj := range objs {
			if m, ok := obj.(metav1.Object); ok {
				v.specChanged(specKey{workspace: ws, gvr: gvr, upstreamNamespace: m.GetNamespace(), name: m.GetName()})
			}
		}
	}()
	return h, nil
}

func (v *syncerViews) startTypeLocked(ctx context.Context, shard *viewShard, gvr schema.GroupVersionResource) (*sharedType, error) {
	// The view ANDs its own state-label selector; asking for it too keeps the request the
	// same as in direct mode.
	selector := workloadv1alpha1.ClusterResourceStateLabel(v.stKey) + "=" + workloadv1alpha1.ResourceStateSync
	inf := wildcard.NewDynamicInformer(shard.wildcardDynamic, gvr, selector, "", v.resync)
	t := &sharedType{informer: inf, views: map[string]bool{}}
	err := inf.AddEventHandler(objectHandler(func(upstreamObj *unstructured.Unstructured, _ bool) {
		ws := wildcard.ClusterOf(upstreamObj)
		v.mu.Lock()
		viewed := t.views[ws]
		v.mu.Unlock()
		if viewed {
			v.specChanged(specKey{workspace: ws, gvr: gvr, upstreamNamespace: upstreamObj.GetNamespace(), name: upstreamObj.GetName()})
		}
	}))
	if err != nil {
		return nil, err
	}
	typeCtx, cancel := context.WithCancel(ctx)
	t.cancel = cancel
	go inf.Run(typeCtx)
	klog.FromContext(ctx).Info("Started the wildcard informer of a syncer view", "url", shard.url, "resource", gvr.String())
	return t, nil
}

// viewHandle is an informer handle over a shared cache: stopping it stops only the view.
func viewHandle(lister cache.GenericLister, synced func() bool, stopView func()) *informerHandle {
	done := make(chan struct{})
	close(done)
	var once sync.Once
	return &informerHandle{lister: lister, hasSynced: synced, stop: func() { once.Do(stopView) }, done: done}
}

// shardURL returns the syncer view URL of the shard serving workspace ws.
func (v *syncerViews) shardURL(ws string) (string, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	shard, ok := v.shardOfLocked(ws)
	if !ok {
		return "", false
	}
	return shard.url, true
}
