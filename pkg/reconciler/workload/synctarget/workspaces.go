package synctarget

import (
	"context"
	"fmt"
	"slices"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

var (
	everything     = labels.Everything()
	syncTargetsGVR = workloadv1alpha1.SchemeGroupVersion.WithResource("synctargets")
)

// reconcile brings status.workspaces and status.workspaceCount of one SyncTarget up to
// date.
func (c *WorkspacesController) reconcile(ctx context.Context, key syncTargetKey) error {
	logger := klog.FromContext(ctx)
	loc, st, err := cachedSyncTarget(ctx, c.locations, key)
	if st == nil || err != nil {
		return err
	}
	stKey := workloadv1alpha1.SyncTargetKeyOf(st, key.workspace)
	current := pathsOf(st.Status.Workspaces)
	desired := c.workspacesFor(stKey, current)
	if samePaths(current, desired) && int(st.Status.WorkspaceCount) == len(desired) {
		logger.V(4).Info("SyncTarget workspaces are up to date")
		return nil
	}
	logger.V(3).Info("Applying SyncTarget workspaces", "workspaces", desired, "previous", current)
	_, err = loc.workspace.Dynamic.Resource(syncTargetsGVR).Apply(ctx, st.Name, applyConfiguration(st.Name, string(st.UID), desired),
		metav1.ApplyOptions{FieldManager: WorkspacesFieldManager, Force: true}, "status")
	if err != nil {
		return fmt.Errorf("failed to apply workspaces of SyncTarget %s: %w", st.Name, err)
	}
	logger.V(2).Info("Updated SyncTarget workspaces", "workspaces", desired)
	return nil
}

// workspacesFor returns, sorted, the workload workspaces with a namespace placed on (or
// being removed from) the SyncTarget with key stKey, or with objects still labelled for it.
// A workspace whose namespaces have not synced yet (bound at runtime) keeps its place in
// current: a partial cache may miss namespaces, and dropping the workspace would make the
// syncer stop watching it with objects still placed.
func (c *WorkspacesController) workspacesFor(stKey string, current []string) []string {
	set := map[string]bool{}
	c.mu.RLock()
	for path, namespaces := range c.namespaces {
		keys, err := namespaces.indexer.IndexKeys(namespaceKeysIndex, stKey)
		if (err == nil && len(keys) > 0) || (!namespaces.synced() && slices.Contains(current, path)) {
			set[path] = true
		}
	}
	c.mu.RUnlock()
	if c.objects != nil {
		for _, path := range c.objects.WorkspacesWithObjectsFor(stKey) {
			set[path] = true
		}
	}
	out := make([]string, 0, len(set))
	for path := range set {
		// A plain hub has no workspace path and nothing to list.
		if path != "" {
			out = append(out, path)
		}
	}
	sort.Strings(out)
	return out
}

// applyConfiguration is the apply body: the SyncTarget's identity (the uid makes the
// apply fail instead of writing into a recreated SyncTarget of the same name) and only
// the fields this controller owns.
func applyConfiguration(name, uid string, paths []string) *unstructured.Unstructured {
	refs := make([]any, 0, len(paths))
	for _, p := range paths {
		refs = append(refs, map[string]any{"path": p})
	}
	metadata := map[string]any{"name": name}
	if uid != "" {
		metadata["uid"] = uid
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": workloadv1alpha1.SchemeGroupVersion.String(),
		"kind":       "SyncTarget",
		"metadata":   metadata,
		"status": map[string]any{
			"workspaces":     refs,
			"workspaceCount": int64(len(paths)),
		},
	}}
}

func pathsOf(refs []workloadv1alpha1.WorkspaceReference) []string {
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		out = append(out, r.Path)
	}
	return out
}

// samePaths reports whether a and b hold the same strings, ignoring order.
func samePaths(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	sort.Strings(a)
	sort.Strings(b)
	return slices.Equal(a, b)
}
