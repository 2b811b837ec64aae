package resource

import (
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// targetKeysIndex indexes objects by every SyncTarget key they carry anything for. It is
// added to an informer the first time ObjectsFor looks at it (an informer indexes its
// existing items when an index is added late), so that types resolved by discovery are
// covered too.
const targetKeysIndex = "tmc.resource/target-keys"

// PerTargetAnnotationPrefixes are the prefixes of the per-target annotations an upstream
// object or namespace may carry for a SyncTarget (each followed by its key).
var PerTargetAnnotationPrefixes = []string{
	workloadv1alpha1.InternalClusterDeletionTimestampAnnotationPrefix,
	workloadv1alpha1.ClusterFinalizerAnnotationPrefix,
	workloadv1alpha1.InternalClusterStatusAnnotationPrefix,
	workloadv1alpha1.ClusterSpecDiffAnnotationPrefix,
}

// TargetKeys returns, sorted and without duplicates, the keys of the SyncTargets for which
// labels, annotations or finalizers hold a state label, a per-target annotation or the
// syncer finalizer.
func TargetKeys(labels, annotations map[string]string, finalizers []string) []string {
	seen := map[string]bool{}
	for k := range labels {
		if stKey, ok := workloadv1alpha1.SyncTargetKeyFromLabel(workloadv1alpha1.ClusterResourceStateLabelPrefix, k); ok {
			seen[stKey] = true
		}
	}
	for k := range annotations {
		for _, prefix := range PerTargetAnnotationPrefixes {
			if stKey, ok := workloadv1alpha1.SyncTargetKeyFromLabel(prefix, k); ok {
				seen[stKey] = true
			}
		}
	}
	for _, f := range finalizers {
		if stKey, ok := workloadv1alpha1.SyncTargetKeyFromLabel(workloadv1alpha1.SyncerFinalizerNamePrefix, f); ok {
			seen[stKey] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func targetKeysIndexFunc(obj interface{}) ([]string, error) {
	accessor, err := metaAccessor(obj)
	if err != nil {
		return nil, nil
	}
	return TargetKeys(accessor.GetLabels(), accessor.GetAnnotations(), accessor.GetFinalizers()), nil
}

// TargetObject is a cached upstream object of a synced type that carries a key of a
// SyncTarget.
type TargetObject struct {
	Workspace string
	Resource  schema.GroupVersionResource
	// Object is the informer's copy: read it, never modify it.
	Object *unstructured.Unstructured
}

// ObjectsFor returns every cached object of a synced type, in every workload workspace,
// that carries the state label (any value), the syncer finalizer or a per-target
// annotation of the SyncTarget with key stKey, ordered by workspace, type, namespace and
// name. It only reads the caches; until HasSynced it may miss objects.
func (c *Controller) ObjectsFor(stKey string) []TargetObject {
	var out []TargetObject
	for _, path := range c.Workspaces() {
		for _, t := range c.typesOf(path) {
			indexer := t.informer.GetIndexer()
			if !ensureTargetKeysIndex(t.informer) {
				continue
			}
			objs, err := indexer.ByIndex(targetKeysIndex, stKey)
			if err != nil {
				continue
			}
			for _, obj := range objs {
				if u, ok := obj.(*unstructured.Unstructured); ok {
					out = append(out, TargetObject{Workspace: path, Resource: t.gvr, Object: u})
				}
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Workspace != b.Workspace {
			return a.Workspace < b.Workspace
		}
		if a.Resource != b.Resource {
			return a.Resource.String() < b.Resource.String()
		}
		if a.Object.GetNamespace() != b.Object.GetNamespace() {
			return a.Object.GetNamespace() < b.Object.GetNamespace()
		}
		return a.Object.GetName() < b.Object.GetName()
	})
	return out
}

// ensureTargetKeysIndex adds targetKeysIndex to informer unless it has it; it reports
// whether the index is there. Two callers racing to add it both see it afterwards.
func ensureTargetKeysIndex(informer cache.SharedIndexInformer) bool {
	if _, ok := informer.GetIndexer().GetIndexers()[targetKeysIndex]; ok {
		return true
	}
	if err := informer.AddIndexers(cache.Indexers{targetKeysIndex: targetKeysIndexFunc}); err != nil {
		_, ok := informer.GetIndexer().GetIndexers()[targetKeysIndex]
		return ok
	}
	return true
}
