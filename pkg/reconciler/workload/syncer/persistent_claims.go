package syncer

import (
	"context"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	workloadlisters "github.com/tmc-dev/tmc/sdk/client/listers/workload/v1alpha1"
)

// maxPersistentNamespaces bounds status.workspaceHealth[].persistentNamespaces (the CRD
// allows 256); past it the workspace is reported truncated, and the placement controller
// then holds every namespace of it on this target.
const maxPersistentNamespaces = 256

var persistentVolumeClaimsGVR = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}

// downstreamClaims tells which upstream namespaces have PersistentVolumeClaims on this
// physical cluster, whoever made them: synced claims, a StatefulSet's volumeClaimTemplates,
// or an operator working downstream. The placement controller sees only the first two
// upstream; automatic failover must not move the others away from their data either.
//
// It watches the metadata of every claim of the cluster (no label selects the claims
// others create) and keeps only namespace and name in the cache.
type downstreamClaims struct {
	informer cache.SharedIndexInformer
	// locatorOf maps a downstream namespace of ours to its upstream logical cluster and
	// namespace; false for namespaces that are not ours. workspaceOf maps the logical
	// cluster to its watched workspace.
	locatorOf   func(downstreamNamespace string) (workloadv1alpha1.NamespaceLocator, bool)
	workspaceOf func(cluster string) (string, bool)
}

func newDownstreamClaims(downstreamMetadata metadata.Interface, resync time.Duration,
	locatorOf func(string) (workloadv1alpha1.NamespaceLocator, bool), workspaceOf func(string) (string, bool)) *downstreamClaims {
	informer := metadatainformer.NewFilteredMetadataInformer(downstreamMetadata, persistentVolumeClaimsGVR, metav1.NamespaceAll, resync,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}, nil).Informer()
	_ = informer.SetTransform(keepNamespacedName)
	return &downstreamClaims{informer: informer, locatorOf: locatorOf, workspaceOf: workspaceOf}
}

// keepNamespacedName drops everything of a claim's metadata but its namespace and name:
// that is all the report needs, and claims made by others can be many.
func keepNamespacedName(obj any) (any, error) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil
	}
	return &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: m.Name, ResourceVersion: m.ResourceVersion}}, nil
}

// run runs the informer until ctx ends.
func (c *downstreamClaims) run(ctx context.Context) { c.informer.RunWithContext(ctx) }

// byWorkspace returns, per workspace, the sorted upstream namespaces whose downstream
// namespace holds at least one claim. ok is false while the cache has not synced (the
// claims may not be listable at all): the caller must not read "none" into that.
func (c *downstreamClaims) byWorkspace() (map[string][]string, bool) {
	if c == nil || !c.informer.HasSynced() {
		return nil, false
	}
	out := map[string][]string{}
	for _, downstreamNamespace := range c.informer.GetIndexer().ListIndexFuncValues(cache.NamespaceIndex) {
		claims, err := c.informer.GetIndexer().ByIndex(cache.NamespaceIndex, downstreamNamespace)
		if err != nil || len(claims) == 0 {
			continue
		}
		locator, ours := c.locatorOf(downstreamNamespace)
		if !ours {
			continue
		}
		ws, known := c.workspaceOf(locator.ClusterName)
		if !known {
			// A namespace of ours whose workspace is not watched (yet): leaving it out would
			// read as "no data there".
			return nil, false
		}
		out[ws] = append(out[ws], locator.Namespace)
	}
	for _, namespaces := range out {
		sort.Strings(namespaces)
	}
	return out, true
}

// persistentNamespaces fills h's persistent namespaces: from claims when they are known,
// else from the last report (previous), so that a restart or a forbidden list never
// erases what the placement controller relies on when this syncer goes silent.
func persistentNamespaces(h *workloadv1alpha1.WorkspaceHealth, claims map[string][]string, known bool, previous *workloadv1alpha1.WorkspaceHealth) {
	if !known {
		if previous != nil {
			h.PersistentNamespaces = append([]string(nil), previous.PersistentNamespaces...)
			h.PersistentNamespacesTruncated = previous.PersistentNamespacesTruncated
		}
		return
	}
	namespaces := claims[h.Path]
	if len(namespaces) > maxPersistentNamespaces {
		h.PersistentNamespaces = append([]string(nil), namespaces[:maxPersistentNamespaces]...)
		h.PersistentNamespacesTruncated = true
		return
	}
	h.PersistentNamespaces = append([]string(nil), namespaces...)
}

// reportClaims makes the checker report persistent namespaces from claims, falling back
// on what the cached SyncTarget last carried.
func (c *workspaceHealthChecker) reportClaims(claims *downstreamClaims, syncTargetLister workloadlisters.SyncTargetLister) *workspaceHealthChecker {
	c.claims = claims
	c.previous = func() []workloadv1alpha1.WorkspaceHealth {
		st, err := syncTargetLister.Get(c.syncTargetRef.Name)
		if err != nil {
			return nil
		}
		return st.Status.WorkspaceHealth
	}
	return c
}
