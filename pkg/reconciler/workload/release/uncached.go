package release

import (
	"context"
	"errors"
	"fmt"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/resource"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// uncachedPageSize bounds one live list of an uncached type.
const uncachedPageSize = 500

// uncachedType is a type the target's syncer may have synced that the object caches do
// not cover; version "" is resolved by discovery in each workspace.
type uncachedType struct {
	resource workloadv1alpha1.ResourceToSync
	version  string
}

// uncachedTypes returns the types of the SyncTarget's status.syncedResources and
// spec.resources, and the upsync types (upsyncTypes), that are not among the cached ones
// (the tmc-controller's --resources), sorted. A syncer may sync such a type (its objects labelled by somebody else); only a
// live list finds what it left.
func (c *Controller) uncachedTypes(st *workloadv1alpha1.SyncTarget) []uncachedType {
	found := map[workloadv1alpha1.ResourceToSync]string{}
	for _, r := range st.Status.SyncedResources {
		if c.cachedTypes[r.ResourceToSync] {
			continue
		}
		version := ""
		if len(r.Versions) > 0 {
			version = r.Versions[0]
		}
		found[r.ResourceToSync] = version
	}
	for _, r := range st.Spec.Resources {
		if _, ok := found[r]; !ok && !c.cachedTypes[r] {
			found[r] = ""
		}
	}
	for _, u := range upsyncTypes {
		if _, ok := found[u.resource]; !ok && !c.cachedTypes[u.resource] {
			found[u.resource] = u.version
		}
	}
	out := make([]uncachedType, 0, len(found))
	for r, v := range found {
		out = append(out, uncachedType{resource: r, version: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].resource.String() < out[j].resource.String() })
	return out
}

// addUncachedHoldings adds to h what the target's uncached types still hold, by a live
// list with the target's state label in every workload workspace, page by page. A type a
// workspace does not serve holds nothing there. It goes on after a failure and returns
// the first: deciding that nothing is held on a partial view would drop the SyncTarget's
// finalizer too early.
func (c *Controller) addUncachedHoldings(ctx context.Context, t target, h *holdings) error {
	types := c.uncachedTypes(t.st)
	if len(types) == 0 {
		return nil
	}
	var errs []error
	for _, path := range c.workloadPaths() {
		for _, u := range types {
			objects, err := c.listUncached(ctx, path, t.key, u)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, o := range objects {
				if holds(o.Object, t.key) {
					h.heldIn[nsName{workspace: o.Workspace, name: o.Object.GetNamespace()}]++
				}
			}
			h.objects = append(h.objects, objects...)
		}
	}
	return errors.Join(errs...)
}

// listUncached lists the objects of one uncached type in workspace path that carry the
// state label of stKey.
func (c *Controller) listUncached(ctx context.Context, path, stKey string, u uncachedType) ([]resource.TargetObject, error) {
	wl := c.workload(path)
	version := u.version
	if version == "" {
		v, err := preferredVersion(ctx, wl, u.resource.Group)
		if err != nil {
			return nil, err
		}
		if v == "" {
			return nil, nil
		}
		version = v
	}
	gvr := schema.GroupVersionResource{Group: u.resource.Group, Version: version, Resource: u.resource.Resource}
	client := wl.workspace.Dynamic.Resource(gvr)
	opts := metav1.ListOptions{LabelSelector: workloadv1alpha1.ClusterResourceStateLabel(stKey), Limit: uncachedPageSize}
	var out []resource.TargetObject
	for {
		list, err := client.List(ctx, opts)
		if apierrors.IsNotFound(err) {
			klog.FromContext(ctx).V(4).Info("Resource type not served in the workspace; nothing to release there", "objectWorkspace", path, "resource", gvr.String())
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("failed to list %s in workspace %s: %w", gvr.GroupResource(), path, err)
		}
		for i := range list.Items {
			out = append(out, resource.TargetObject{Workspace: path, Resource: gvr, Object: &list.Items[i]})
		}
		if list.GetContinue() == "" {
			return out, nil
		}
		opts.Continue = list.GetContinue()
	}
}

// preferredVersion returns the workspace's preferred version of group, "" when it does
// not serve the group.
func preferredVersion(ctx context.Context, wl *workloadState, group string) (string, error) {
	groups, err := wl.workspace.Kube.Discovery().ServerGroups()
	if err != nil {
		return "", fmt.Errorf("failed to discover the API groups of workspace %s: %w", wl.path, err)
	}
	for _, g := range groups.Groups {
		if g.Name == group {
			return g.PreferredVersion.Version, nil
		}
	}
	klog.FromContext(ctx).V(4).Info("API group not served in the workspace", "objectWorkspace", wl.path, "group", group)
	return "", nil
}
