package wildcard

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
)

// clusterIndex indexes objects by logical cluster; clusterNamespaceIndex by cluster and
// namespace.
const (
	clusterIndex          = "cluster"
	clusterNamespaceIndex = "cluster-namespace"
)

// Config returns a copy of base addressing the wildcard endpoint below base's host:
// <host>/clusters/*.
func Config(base *rest.Config) *rest.Config {
	cfg := rest.CopyConfig(base)
	cfg.Host = strings.TrimSuffix(cfg.Host, "/") + logicalcluster.ClustersPrefix + "*"
	return cfg
}

// ClusterOf returns the logical cluster of obj (its kcp.io/cluster annotation), "" if none.
func ClusterOf(obj metav1.Object) string {
	return logicalcluster.NameFrom(obj.GetAnnotations())
}

// Key returns the cache key of obj: cluster|namespace/name (cluster|name when cluster-scoped).
func Key(obj any) (string, error) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return d.Key, nil
	}
	if k, ok := obj.(cache.ExplicitKey); ok {
		return string(k), nil
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return "", fmt.Errorf("object has no meta: %w", err)
	}
	return ObjectKey(ClusterOf(m), m.GetNamespace(), m.GetName()), nil
}

// ObjectKey returns the cache key of the object cluster/namespace/name.
func ObjectKey(cluster, namespace, name string) string {
	if namespace == "" {
		return cluster + "|" + name
	}
	return cluster + "|" + namespace + "/" + name
}

func indexers() cache.Indexers {
	return cache.Indexers{
		clusterIndex: func(obj any) ([]string, error) {
			m, err := meta.Accessor(obj)
			if err != nil {
				return nil, err
			}
			return []string{ClusterOf(m)}, nil
		},
		clusterNamespaceIndex: func(obj any) ([]string, error) {
			m, err := meta.Accessor(obj)
			if err != nil {
				return nil, err
			}
			return []string{ClusterOf(m) + "|" + m.GetNamespace()}, nil
		},
	}
}

// Informer is a cache of one type across every logical cluster behind a wildcard endpoint.
type Informer struct {
	lw      cache.ListerWatcher
	objType runtime.Object
	resync  time.Duration
	indexer cache.Indexer

	mu       sync.Mutex
	handlers []cache.ResourceEventHandler
	started  bool
	synced   func() bool
}

// NewInformer returns an informer listing and watching with lw (a wildcard endpoint's
// collection) objects of objType; resync (0: never) re-delivers every object as an update.
// lw is used with list-then-watch: watch-list's temporary store keys objects by namespace
// and name and would merge objects of different logical clusters.
func NewInformer(lw cache.ListerWatcher, objType runtime.Object, resync time.Duration) *Informer {
	return &Informer{
		lw:      listThenWatch{lw},
		objType: objType,
		resync:  resync,
		indexer: cache.NewIndexer(Key, indexers()),
		synced:  func() bool { return false },
	}
}

// NewDynamicInformer returns an informer of gvr through wildcardDynamic (a client of a
// Config), label- and field-selected.
func NewDynamicInformer(wildcardDynamic dynamic.Interface, gvr schema.GroupVersionResource, labelSelector, fieldSelector string, resync time.Duration) *Informer {
	resource := wildcardDynamic.Resource(gvr)
	tweak := func(o *metav1.ListOptions) {
		o.LabelSelector, o.FieldSelector = labelSelector, fieldSelector
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			tweak(&o)
			return resource.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			tweak(&o)
			return resource.Watch(ctx, o)
		},
	}
	return NewInformer(lw, &unstructured.Unstructured{}, resync)
}

// listThenWatch makes the reflector list and then watch.
type listThenWatch struct{ cache.ListerWatcher }

func (listThenWatch) IsWatchListSemanticsUnSupported() bool { return true }

// AddEventHandler adds h; it must be called before Run.
func (i *Informer) AddEventHandler(h cache.ResourceEventHandler) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.started {
		return errors.New("the wildcard informer is running: handlers must be added before Run")
	}
	i.handlers = append(i.handlers, h)
	return nil
}

// Run fills the cache and delivers events until ctx ends.
func (i *Informer) Run(ctx context.Context) {
	i.mu.Lock()
	if i.started {
		i.mu.Unlock()
		return
	}
	i.started = true
	handlers := append([]cache.ResourceEventHandler(nil), i.handlers...)
	fifo := cache.NewRealFIFOWithOptions(cache.RealFIFOOptions{KeyFunction: Key, KnownObjects: i.indexer})
	controller := cache.New(&cache.Config{
		Queue:            fifo,
		ListerWatcher:    i.lw,
		ObjectType:       i.objType,
		FullResyncPeriod: i.resync,
		Process: func(obj any, isInInitialList bool) error {
			deltas, ok := obj.(cache.Deltas)
			if !ok {
				return fmt.Errorf("unexpected %T from the queue", obj)
			}
			return i.process(handlers, deltas, isInInitialList)
		},
	})
	i.synced = controller.HasSynced
	i.mu.Unlock()
	controller.RunWithContext(ctx)
}

// process applies deltas to the cache and tells the handlers.
func (i *Informer) process(handlers []cache.ResourceEventHandler, deltas cache.Deltas, isInInitialList bool) error {
	for _, d := range deltas {
		switch d.Type {
		case cache.Deleted:
			if err := i.indexer.Delete(d.Object); err != nil {
				return err
			}
			for _, h := range handlers {
				h.OnDelete(d.Object)
			}
		default:
			old, exists, err := i.indexer.Get(d.Object)
			if err != nil {
				return err
			}
			if exists {
				if err := i.indexer.Update(d.Object); err != nil {
					return err
				}
				for _, h := range handlers {
					h.OnUpdate(old, d.Object)
				}
				continue
			}
			if err := i.indexer.Add(d.Object); err != nil {
				return err
			}
			for _, h := range handlers {
				h.OnAdd(d.Object, isInInitialList)
			}
		}
	}
	return nil
}

// HasSynced reports whether the first list was delivered.
func (i *Informer) HasSynced() bool {
	i.mu.Lock()
	synced := i.synced
	i.mu.Unlock()
	return synced()
}

// Clusters returns the logical clusters with at least one object in the cache, sorted.
func (i *Informer) Clusters() []string {
	clusters := i.indexer.ListIndexFuncValues(clusterIndex)
	out := clusters[:0]
	for _, c := range clusters {
		if objs, err := i.indexer.ByIndex(clusterIndex, c); err == nil && len(objs) > 0 {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

// Lister returns a lister of the objects of one logical cluster.
func (i *Informer) Lister(cluster string) cache.GenericLister {
	return clusterLister{indexer: i.indexer, cluster: cluster}
}
