package wildcard

import (
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
)

// clusterLister lists the objects of one logical cluster of a wildcard cache.
type clusterLister struct {
	indexer   cache.Indexer
	cluster   string
	namespace string
	// namespaced is set by ByNamespace.
	namespaced bool
}

var _ cache.GenericLister = clusterLister{}

func (l clusterLister) List(selector labels.Selector) ([]runtime.Object, error) {
	index, value := clusterIndex, l.cluster
	if l.namespaced {
		index, value = clusterNamespaceIndex, l.cluster+"|"+l.namespace
	}
	objs, err := l.indexer.ByIndex(index, value)
	if err != nil {
		return nil, err
	}
	out := make([]runtime.Object, 0, len(objs))
	for _, obj := range objs {
		ro, ok := obj.(runtime.Object)
		if !ok {
			continue
		}
		if selector != nil && !selector.Empty() {
			m, ok := obj.(interface{ GetLabels() map[string]string })
			if !ok || !selector.Matches(labels.Set(m.GetLabels())) {
				continue
			}
		}
		out = append(out, ro)
	}
	return out, nil
}

func (l clusterLister) Get(name string) (runtime.Object, error) {
	obj, exists, err := l.indexer.GetByKey(ObjectKey(l.cluster, l.namespace, name))
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, apierrors.NewNotFound(schema.GroupResource{}, name)
	}
	return obj.(runtime.Object), nil
}

func (l clusterLister) ByNamespace(namespace string) cache.GenericNamespaceLister {
	return clusterLister{indexer: l.indexer, cluster: l.cluster, namespace: namespace, namespaced: true}
}
