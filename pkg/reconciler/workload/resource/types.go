package resource

import (
	"context"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// builtinVersions are the groups whose version is known without discovery.
var builtinVersions = map[string]string{
	"":                  "v1",
	"apps":              "v1",
	"batch":             "v1",
	"networking.k8s.io": "v1",
}

// stateKeysIndex indexes objects by the SyncTarget keys of their state labels (any value).
const stateKeysIndex = "tmc.resource/state-keys"

// stateKeysIndexFunc returns the SyncTarget keys an object carries a state label for.
func stateKeysIndexFunc(obj interface{}) ([]string, error) {
	accessor, err := metaAccessor(obj)
	if err != nil {
		return nil, nil
	}
	return stateLabelKeys(accessor.GetLabels()), nil
}

// addType registers the informer, index and handler of one type in one workspace. The
// caller holds c.mu or is the constructor.
func (c *Controller) addType(path string, state *workspaceState, r workloadv1alpha1.ResourceToSync, version string) error {
	gvr := schema.GroupVersionResource{Group: r.Group, Version: version, Resource: r.Resource}
	informer := state.workspace.DynamicInformers.ForResource(gvr).Informer()
	if _, exists := informer.GetIndexer().GetIndexers()[stateKeysIndex]; !exists {
		if err := informer.AddIndexers(cache.Indexers{stateKeysIndex: stateKeysIndexFunc}); err != nil {
			return fmt.Errorf("failed to index %s in workspace %s: %w", gvr.GroupResource(), path, err)
		}
	}
	registration, err := informer.AddEventHandler(c.objectHandler(path, gvr))
	if err != nil {
		return fmt.Errorf("failed to watch %s in workspace %s: %w", gvr.GroupResource(), path, err)
	}
	state.types[gvr] = &typeState{resource: r, gvr: gvr, informer: informer, synced: registration.HasSynced}
	return nil
}

// resolveTypes looks up the preferred version of every type that needs discovery and
// starts informers for those the workspace serves. It reports whether any type is still
// unresolved (to be tried again later).
func (c *Controller) resolveTypes(ctx context.Context) bool {
	logger := klog.FromContext(ctx)
	pending := false
	for _, path := range c.Workspaces() {
		c.mu.RLock()
		state := c.workspaces[path]
		wanted := append([]workloadv1alpha1.ResourceToSync(nil), state.unresolved...)
		c.mu.RUnlock()
		if len(wanted) == 0 {
			continue
		}
		discoveryCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		versions, unserved, err := discoverVersions(discoveryCtx, state.workspace.Kube.Discovery(), wanted)
		cancel()
		if err != nil {
			logger.Error(err, "Failed to discover resource types, will retry", "workspace", path, "retryAfter", discoveryRetryPeriod)
			pending = true
			continue
		}
		added := false
		c.mu.Lock()
		var still []workloadv1alpha1.ResourceToSync
		for _, r := range wanted {
			version, ok := versions[r]
			if !ok {
				still = append(still, r)
				if reason, ok := unserved[r]; ok && !state.reported[r] {
					state.reported[r] = true
					logger.Info("Skipping resource type the workspace does not serve", "workspace", path, "resource", r.String(), "reason", reason)
				}
				continue
			}
			if err := c.addType(path, state, r, version); err != nil {
				logger.Error(err, "Failed to watch resource type", "workspace", path, "resource", r.String())
				still = append(still, r)
				continue
			}
			added = true
			logger.V(2).Info("Watching resource type", "workspace", path, "resource", r.String(), "version", version)
		}
		state.unresolved = still
		c.mu.Unlock()
		if len(still) > 0 {
			pending = true
		}
		if added {
			// Starts only the informers that are not running yet.
			state.workspace.DynamicInformers.Start(ctx.Done())
		}
	}
	return pending
}

// discoverVersions returns the preferred version of each wanted type the server serves as
// a namespaced resource, and for the others why they are skipped.
func discoverVersions(ctx context.Context, disco discovery.DiscoveryInterface, wanted []workloadv1alpha1.ResourceToSync) (map[workloadv1alpha1.ResourceToSync]string, map[workloadv1alpha1.ResourceToSync]string, error) {
	client := discovery.ToDiscoveryInterfaceWithContext(disco)
	groups, err := client.ServerGroupsWithContext(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to discover API groups: %w", err)
	}
	preferred := map[string]string{}
	for _, g := range groups.Groups {
		preferred[g.Name] = g.PreferredVersion.Version
	}
	versions := map[workloadv1alpha1.ResourceToSync]string{}
	unserved := map[workloadv1alpha1.ResourceToSync]string{}
	lists := map[string]*metav1.APIResourceList{}
	for _, r := range wanted {
		version, ok := preferred[r.Group]
		if !ok || version == "" {
			unserved[r] = fmt.Sprintf("API group %q is not served", r.Group)
			continue
		}
		gv := schema.GroupVersion{Group: r.Group, Version: version}.String()
		list, ok := lists[gv]
		if !ok {
			list, err = client.ServerResourcesForGroupVersionWithContext(ctx, gv)
			if err != nil && !apierrors.IsNotFound(err) {
				return nil, nil, fmt.Errorf("failed to discover resources of %s: %w", gv, err)
			}
			lists[gv] = list
		}
		found := false
		if list != nil {
			for _, res := range list.APIResources {
				if res.Name != r.Resource {
					continue
				}
				found = true
				if res.Namespaced {
					versions[r] = version
				} else {
					unserved[r] = fmt.Sprintf("%s is cluster-scoped", r.String())
				}
			}
		}
		if !found {
			unserved[r] = fmt.Sprintf("resource %q is not served in %s", r.Resource, gv)
		}
	}
	return versions, unserved, nil
}

// lookup returns the state of a workspace and of one of its types (nil when unknown).
func (c *Controller) lookup(workspace string, gvr schema.GroupVersionResource) (*workspaceState, *typeState) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	state := c.workspaces[workspace]
	if state == nil {
		return nil, nil
	}
	return state, state.types[gvr]
}

// typesOf returns the types known in a workspace, in the order of the configured resources.
func (c *Controller) typesOf(workspace string) []*typeState {
	c.mu.RLock()
	defer c.mu.RUnlock()
	state := c.workspaces[workspace]
	if state == nil {
		return nil
	}
	var out []*typeState
	for _, r := range c.resources {
		for _, t := range state.types {
			if t.resource == r {
				out = append(out, t)
			}
		}
	}
	return out
}

// TypesInUse returns the synced types that have at least one object in namespace of
// workspace, according to the caches, in the order of the configured resources. Types
// the workspace does not serve are never in use, and neither are objects the syncer never
// syncs (transform.NotSyncedReason): the kube-root-ca.crt ConfigMap and default
// ServiceAccount of every namespace must not make every namespace need configmaps and
// serviceaccounts.
func (c *Controller) TypesInUse(workspace, namespace string) []workloadv1alpha1.ResourceToSync {
	var out []workloadv1alpha1.ResourceToSync
	for _, t := range c.typesOf(workspace) {
		objs, err := t.informer.GetIndexer().ByIndex(cache.NamespaceIndex, namespace)
		if err == nil && slices.ContainsFunc(objs, synced) {
			out = append(out, t.resource)
		}
	}
	return out
}

// synced reports whether a cached object is one the syncer would sync.
func synced(obj interface{}) bool {
	u, ok := obj.(*unstructured.Unstructured)
	return ok && transform.NotSyncedReason(u) == ""
}

// WorkspacesWithObjectsFor returns, sorted, the workload workspaces in which at least one
// object of a synced type still carries the state label of the SyncTarget with key stKey
// (any value), according to the caches.
func (c *Controller) WorkspacesWithObjectsFor(stKey string) []string {
	var out []string
	for _, path := range c.Workspaces() {
		for _, t := range c.typesOf(path) {
			keys, err := t.informer.GetIndexer().IndexKeys(stateKeysIndex, stKey)
			if err == nil && len(keys) > 0 {
				out = append(out, path)
				break
			}
		}
	}
	return out
}
