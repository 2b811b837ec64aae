package inspect

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/yaml"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// Verdicts of a preview against the live downstream object.
const (
	verdictUpToDate   = "up to date"
	verdictNotPresent = "not present downstream"
	verdictConflict   = "conflict: exists without the ownership label"
	verdictDeleting   = "being deleted downstream: the syncer re-creates it once it is gone"
)

// previewInput is everything a preview is computed from.
type previewInput struct {
	// workloadWorkspace holds the upstream object; locationWorkspace the SyncTarget.
	workloadWorkspace string
	locationWorkspace string
	syncTarget        *workloadv1alpha1.SyncTarget
	gvr               schema.GroupVersionResource
	upstreamObj       *unstructured.Unstructured
}

// preview is what the syncer would do with the upstream object.
type preview struct {
	stKey               string
	downstreamNamespace string
	// desired is the object the syncer would apply; nil when filtered is set.
	desired *unstructured.Unstructured
	// filtered says why the syncer does not sync the object at all.
	filtered string
	// caveat, when set, is why the syncer would not apply the object after all.
	caveat string
	// notes are things the user should know, printed as comments above the object.
	notes []string
}

// buildPreview mirrors the syncer's processSpec: the same locator and downstream namespace,
// the default transformation chain and the spec hash.
func buildPreview(ctx context.Context, in previewInput) (*preview, error) {
	st, up := in.syncTarget, in.upstreamObj
	// Keys and locators name logical clusters, recorded on the objects by kcp.
	p := &preview{stKey: workloadv1alpha1.SyncTargetKeyOf(st, in.locationWorkspace)}
	locator := workloadv1alpha1.NewNamespaceLocator(workloadv1alpha1.SyncTargetCluster(st, in.locationWorkspace), st.Name, st.UID,
		logicalcluster.NameOr(up.GetAnnotations(), in.workloadWorkspace), up.GetNamespace())
	var err error
	if p.downstreamNamespace, err = locator.DownstreamNamespaceName(); err != nil {
		return nil, err
	}

	stateLabel := workloadv1alpha1.ClusterResourceStateLabel(p.stKey)
	labelled := up.GetLabels()[stateLabel] == workloadv1alpha1.ResourceStateSync
	switch {
	case removalRequested(up, p.stKey, labelled):
		p.caveat = "the syncer deletes it: removal from this SyncTarget is requested"
		p.notes = append(p.notes, "Warning: removal from this SyncTarget is requested (deleted upstream, deletion annotation, or unlabelled while the syncer's finalizer is still on it): the syncer deletes the downstream copy instead of applying it.")
	case !labelled:
		p.caveat = "the object is not labelled for this SyncTarget"
		note := fmt.Sprintf("Warning: the object is not labelled %s=%s, so the syncer of SyncTarget %s does not sync it.",
			stateLabel, workloadv1alpha1.ResourceStateSync, st.Name)
		if others := otherTargetKeys(up, p.stKey); len(others) > 0 {
			note += fmt.Sprintf(" It is labelled for other SyncTargets (keys %s): check --target and --location-workspace.", strings.Join(others, ", "))
		}
		p.notes = append(p.notes, note)
	}
	if note := resourceNote(st, in.gvr.GroupResource()); note != "" {
		p.notes = append(p.notes, note)
	}
	if in.locationWorkspace != hubWorkspace && !slices.ContainsFunc(st.Status.Workspaces, func(w workloadv1alpha1.WorkspaceReference) bool {
		return w.Path == in.workloadWorkspace
	}) {
		p.notes = append(p.notes, fmt.Sprintf("Warning: workspace %s is not in the status.workspaces of SyncTarget %s, so its syncer does not watch it (unless started with --workspaces).",
			in.workloadWorkspace, st.Name))
	}

	tc := transform.Context{
		SyncTargetKey:       p.stKey,
		SyncTargetName:      st.Name,
		UpstreamWorkspace:   in.workloadWorkspace,
		UpstreamNamespace:   up.GetNamespace(),
		DownstreamNamespace: p.downstreamNamespace,
		GVR:                 in.gvr,
	}
	if st.Spec.Tenancy != nil {
		tc.Tenancy = *st.Spec.Tenancy
	}
	desired, err := transform.DefaultChain().Down(ctx, tc, up)
	if transform.IsFiltered(err) {
		p.filtered = err.Error()
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("the syncer cannot sync this object: %w", err)
	}
	if err := transform.SetHash(desired); err != nil {
		return nil, err
	}
	p.desired = desired
	return p, nil
}

// otherTargetKeys returns the keys of the other SyncTargets the object is labelled Sync for.
func otherTargetKeys(up *unstructured.Unstructured, stKey string) []string {
	var keys []string
	for k, v := range up.GetLabels() {
		key, ok := workloadv1alpha1.SyncTargetKeyFromLabel(workloadv1alpha1.ClusterResourceStateLabelPrefix, k)
		if ok && key != stKey && v == workloadv1alpha1.ResourceStateSync {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	return keys
}

// resourceNote warns when the SyncTarget does not accept the object's resource type.
func resourceNote(st *workloadv1alpha1.SyncTarget, gr schema.GroupResource) string {
	name := workloadv1alpha1.ResourceToSync{Group: gr.Group, Resource: gr.Resource}.String()
	for _, r := range st.Status.SyncedResources {
		if r.Group != gr.Group || r.Resource != gr.Resource {
			continue
		}
		if r.State == workloadv1alpha1.ResourceStateAccepted {
			return ""
		}
		note := fmt.Sprintf("Warning: SyncTarget %s does not accept %s (state %s", st.Name, name, r.State)
		if r.Message != "" {
			note += ": " + oneLine(r.Message)
		}
		return note + ")."
	}
	if len(st.Status.SyncedResources) == 0 {
		return fmt.Sprintf("Warning: SyncTarget %s has not reported its synced resources yet; is its syncer running?", st.Name)
	}
	return fmt.Sprintf("Warning: %s is not among the resource types of SyncTarget %s.", name, st.Name)
}

// removalRequested is the syncer's test for deleting the downstream copy instead of
// applying: the upstream object is being deleted, or its per-target deletion annotation is
// set and no soft finalizer is left, or it is no longer labelled while the syncer's
// finalizer is still on it.
func removalRequested(up *unstructured.Unstructured, stKey string, labelled bool) bool {
	if up.GetDeletionTimestamp() != nil {
		return true
	}
	ann := up.GetAnnotations()
	if _, ok := ann[workloadv1alpha1.DeletionAnnotation(stKey)]; ok {
		return len(workloadv1alpha1.SoftFinalizers(ann[workloadv1alpha1.SoftFinalizersAnnotation(stKey)])) == 0
	}
	return !labelled && slices.Contains(up.GetFinalizers(), workloadv1alpha1.SyncerFinalizerName(stKey))
}

// verdict says what the syncer would do with the live downstream object (nil: absent).
func verdict(p *preview, live *unstructured.Unstructured) string {
	var v string
	switch {
	case live == nil:
		v = verdictNotPresent
	case live.GetLabels()[workloadv1alpha1.InternalDownstreamClusterLabel] != p.stKey:
		v = verdictConflict
	case live.GetDeletionTimestamp() != nil:
		v = verdictDeleting
	default:
		if need, reason := transform.NeedsApply(p.desired, live); need {
			v = "would apply: " + reason
		} else {
			v = verdictUpToDate
		}
	}
	if p.caveat != "" {
		v += " (but " + p.caveat + ")"
	}
	return v
}

// serverManagedMetadata are the metadata fields the apiserver sets; a diff leaves them out.
var serverManagedMetadata = []string{"managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink"}

// comparableLive returns the live object without status and server-managed metadata, and
// unless full, also without the fields the desired object does not set (defaults and the
// fields of other managers), which server-side apply leaves alone.
func comparableLive(live, desired *unstructured.Unstructured, full bool) map[string]any {
	obj := live.DeepCopy().Object
	delete(obj, "status")
	if m, ok := obj["metadata"].(map[string]any); ok {
		for _, f := range serverManagedMetadata {
			delete(m, f)
		}
	}
	if full {
		return obj
	}
	pruned, _ := prune(obj, desired.Object).(map[string]any)
	return pruned
}

// prune keeps of live only what desired also has: map keys present in both, and list
// elements pruned pairwise (extra live elements are kept, they are a difference).
func prune(live, desired any) any {
	switch d := desired.(type) {
	case map[string]any:
		l, ok := live.(map[string]any)
		if !ok {
			return live
		}
		out := make(map[string]any, len(d))
		for k, lv := range l {
			if dv, found := d[k]; found {
				out[k] = prune(lv, dv)
			}
		}
		return out
	case []any:
		l, ok := live.([]any)
		if !ok {
			return live
		}
		out := make([]any, len(l))
		for i := range l {
			if i < len(d) {
				out[i] = prune(l[i], d[i])
			} else {
				out[i] = l[i]
			}
		}
		return out
	}
	return live
}

// unifiedDiff returns the unified diff from live to desired, as YAML, "" when they print
// alike.
func unifiedDiff(liveName string, live, desired map[string]any) (string, error) {
	liveYAML, err := yaml.Marshal(live)
	if err != nil {
		return "", fmt.Errorf("failed to print the live object: %w", err)
	}
	desiredYAML, err := yaml.Marshal(desired)
	if err != nil {
		return "", fmt.Errorf("failed to print the desired object: %w", err)
	}
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		// SplitLines ends every line with a newline, and would add an empty last line.
		A:        difflib.SplitLines(strings.TrimSuffix(string(liveYAML), "\n")),
		B:        difflib.SplitLines(strings.TrimSuffix(string(desiredYAML), "\n")),
		FromFile: "live " + liveName,
		ToFile:   "desired",
		Context:  3,
	})
}

// renderPreview prints the preview: comments saying what is previewed and what to watch
// out for, the desired object as YAML, and with a downstream cluster (checkLive) the diff
// against live and the verdict.
func renderPreview(out io.Writer, in previewInput, p *preview, checkLive bool, live *unstructured.Unstructured, fullDiff bool) error {
	up := in.upstreamObj
	var b strings.Builder
	fmt.Fprintf(&b, "# %s %s/%s of workspace %s, as the syncer of SyncTarget %s (workspace %s) applies it.\n",
		up.GetKind(), up.GetNamespace(), up.GetName(), in.workloadWorkspace, in.syncTarget.Name, in.locationWorkspace)
	fmt.Fprintf(&b, "# SyncTarget key: %s\n", p.stKey)
	fmt.Fprintf(&b, "# Downstream namespace: %s\n", p.downstreamNamespace)
	for _, n := range p.notes {
		fmt.Fprintf(&b, "# %s\n", n)
	}
	if p.desired == nil {
		fmt.Fprintf(&b, "# Not synced: %s.\n", p.filtered)
		_, err := io.WriteString(out, b.String())
		return err
	}
	if err := (&printers.YAMLPrinter{}).PrintObj(p.desired, &b); err != nil {
		return fmt.Errorf("failed to print the desired object: %w", err)
	}

	if checkLive {
		if live != nil {
			diff, err := unifiedDiff(p.downstreamNamespace+"/"+up.GetName(), comparableLive(live, p.desired, fullDiff), p.desired.Object)
			if err != nil {
				return err
			}
			if diff != "" {
				b.WriteString("\n")
				b.WriteString(diff)
			}
		}
		fmt.Fprintf(&b, "\nVerdict: %s\n", verdict(p, live))
	}
	_, err := io.WriteString(out, b.String())
	return err
}
