package syncer

import (
	"sort"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
)

// The engine's answers to the controllers' lookups: views of the caches by workspace and
// type, the accepted and reported types, and what the namespace cleanup must know.

// resource returns the accepted resource type gvr.
func (e *engine) resource(gvr schema.GroupVersionResource) (resourceInfo, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	r, ok := e.resources[gvr]
	return r, ok
}

// upstream returns the view of resource gvr in upstream workspace ws, if it is watched.
func (e *engine) upstream(ws string, gvr schema.GroupVersionResource) (upstreamView, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	h, ok := e.upstreamInformers[upstreamInformerKey{workspace: ws, gvr: gvr}]
	if !ok {
		return upstreamView{}, false
	}
	upstream, ok := e.upstreamWorkspaces[ws]
	if !ok {
		return upstreamView{}, false
	}
	return upstreamView{lister: e.listerLocked(gvr, h.lister), synced: h.hasSynced, client: upstream.dynamic.Resource(gvr), recorder: upstream.recorder}, true
}

// downstream returns the view of resource gvr downstream, if it is watched.
func (e *engine) downstream(gvr schema.GroupVersionResource) (downstreamView, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	h, ok := e.downstreamInformers[gvr]
	if !ok {
		return downstreamView{}, false
	}
	return downstreamView{lister: e.listerLocked(gvr, h.lister), synced: h.hasSynced}, true
}

// listerLocked returns the lister of an informer of gvr, read by namespace "" for a
// cluster-scoped type.
func (e *engine) listerLocked(gvr schema.GroupVersionResource, lister cache.GenericLister) cache.GenericLister {
	if e.resources[gvr].clusterScoped {
		return clusterScopedLister{lister}
	}
	return lister
}

// resourceList returns the accepted resources, sorted.
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

// syncedResources returns the discovered per-type states of the requested types.
func (e *engine) syncedResources() []workloadv1alpha1.SyncedResource {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return append([]workloadv1alpha1.SyncedResource(nil), e.resourceStates...)
}

// reportedResources returns the states for SyncTarget.status.syncedResources: the
// discovered ones with the types still being released (state Releasing). Decisions keep
// reading syncedResources (an Unauthorized type being released is still Unauthorized
// there).
func (e *engine) reportedResources() []workloadv1alpha1.SyncedResource {
	states := e.syncedResources()
	if e.typeReleases == nil {
		return states
	}
	return e.typeReleases.states(states)
}

// upstreamSynced reports whether every upstream informer of workspace ws, its namespace
// informer included, has synced.
func (e *engine) upstreamSynced(ws string) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	upstream, ok := e.upstreamWorkspaces[ws]
	if !ok || upstream.namespaces == nil || !upstream.namespaces.hasSynced() {
		return false
	}
	if _, named := e.clusterNames[ws]; !named {
		return false
	}
	for k, h := range e.upstreamInformers {
		if k.workspace == ws && !h.hasSynced() {
			return false
		}
	}
	return true
}

// downstreamObjectsIn counts the synced objects cached in a downstream namespace.
func (e *engine) downstreamObjectsIn(downstreamNamespace string) int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	n := 0
	for gvr, h := range e.downstreamInformers {
		objs, _ := h.lister.ByNamespace(downstreamNamespace).List(labels.Everything())
		n += syncedObjects(gvr, objs)
	}
	return n
}

// upstreamObjectsIn counts the synced objects cached in an upstream namespace of ws.
func (e *engine) upstreamObjectsIn(ws, upstreamNamespace string) int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	n := 0
	for k, h := range e.upstreamInformers {
		if k.workspace != ws {
			continue
		}
		objs, _ := h.lister.ByNamespace(upstreamNamespace).List(labels.Everything())
		n += len(objs)
	}
	return n
}

// missingUpstream returns the (workspace, resource) pairs that have no informer yet.
func (e *engine) missingUpstream(workspaces []string, accepted []resourceInfo) []upstreamInformerKey {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var out []upstreamInformerKey
	for _, ws := range workspaces {
		for _, r := range accepted {
			key := upstreamInformerKey{workspace: ws, gvr: r.gvr}
			if _, ok := e.upstreamInformers[key]; !ok {
				out = append(out, key)
			}
		}
	}
	return out
}
