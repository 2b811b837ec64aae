package inspect

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// NewPreviewCommand returns `preview <resource>/<name>`: the object of the current (workload)
// workspace exactly as the syncer of a SyncTarget would apply it downstream, and with
// --downstream-kubeconfig its diff against the live downstream object.
func NewPreviewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	flags := newUpstreamFlags(true)
	cmd := newPreviewCommand(streams, &kubeconfigUpstream{flags: flags}, downstreamDynamic)
	flags.AddFlags(cmd.Flags())
	return cmd
}

type previewOptions struct {
	genericiooptions.IOStreams
	upstream upstream
	// newDownstream connects to the physical cluster of a kubeconfig and context.
	newDownstream func(kubeconfig, context string) (dynamic.Interface, error)

	resource, name       string
	target               string
	locationWorkspace    string
	downstreamKubeconfig string
	downstreamContext    string
	fullDiff             bool
}

func newPreviewCommand(streams genericiooptions.IOStreams, up upstream, newDownstream func(string, string) (dynamic.Interface, error)) *cobra.Command {
	o := &previewOptions{IOStreams: streams, upstream: up, newDownstream: newDownstream}
	cmd := &cobra.Command{
		Use:   "preview <resource>/<name> --target <synctarget>",
		Short: "Show an object exactly as the syncer would apply it to a physical cluster",
		Long: `Show an object of the current (workload) workspace exactly as the syncer of a SyncTarget
would server-side-apply it to its physical cluster: in the downstream namespace, with metadata
cleaned, the ownership label set, the target's spec-diff applied and the spec hash. The output
is YAML; the comments above it name the SyncTarget key and the downstream namespace, and warn
when the syncer would not apply the object (not labelled for the target, resource type not
accepted, removal requested).

With --downstream-kubeconfig, also read the live object from the physical cluster and print
a unified diff from it to the desired object, then a verdict: "up to date", "would apply:
<reason>", "not present downstream", or "conflict: exists without the ownership label". The
diff leaves out status, server-managed metadata and, unless --full-diff, the fields the
syncer does not set (defaults and fields of other managers), which applying leaves alone.

The SyncTarget is read from --location-workspace. Without it, the workspace of a Placement
of the current workspace that selected the SyncTarget is used, or else the current workspace.`,
		Example: `  # What would cluster-1 get for the deployment web?
  kubectl tmc workload preview deployment/web -n default --target cluster-1 --location-workspace root:locations

  # And how does that differ from what runs there?
  kubectl tmc workload preview deploy/web -n default --target cluster-1 --downstream-kubeconfig cluster-1.kubeconfig`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if o.resource, o.name, err = parseObjectArgs(args); err != nil {
				return err
			}
			return o.run(cmd.Context())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.target, "target", "", "Name of the SyncTarget to preview for.")
	fs.StringVar(&o.locationWorkspace, "location-workspace", "", "Workspace path of the SyncTarget, e.g. root:locations.")
	fs.StringVar(&o.downstreamKubeconfig, "downstream-kubeconfig", "", "Kubeconfig of the physical cluster, to diff against the live object.")
	fs.StringVar(&o.downstreamContext, "downstream-context", "", "Context of --downstream-kubeconfig to use (default: its current context).")
	fs.BoolVar(&o.fullDiff, "full-diff", false, "Diff against the whole live object, including the fields the syncer does not set.")
	_ = cmd.MarkFlagRequired("target")
	return cmd
}

func (o *previewOptions) run(ctx context.Context) error {
	if o.downstreamContext != "" && o.downstreamKubeconfig == "" {
		return fmt.Errorf("--downstream-context needs --downstream-kubeconfig")
	}
	workloadWorkspace, err := o.upstream.workspace()
	if err != nil {
		return err
	}
	namespace, err := o.upstream.namespace()
	if err != nil {
		return err
	}
	mapper, err := o.upstream.restMapper()
	if err != nil {
		return err
	}
	mapping, err := resolveResource(mapper, o.resource)
	if err != nil {
		return err
	}
	if mapping.Scope.Name() != meta.RESTScopeNameNamespace {
		return fmt.Errorf("%s is cluster-scoped; the syncer syncs namespaced objects only", mapping.Resource.GroupResource())
	}

	locationWorkspace := o.locationWorkspace
	if locationWorkspace == "" {
		locationWorkspace = o.placedLocationWorkspace(ctx, workloadWorkspace)
	}
	st, err := o.syncTarget(ctx, workloadWorkspace, locationWorkspace)
	if err != nil {
		return err
	}
	mapping = syncedVersion(mapper, mapping, st)

	upstreamDynamic, err := o.upstream.dynamicClient()
	if err != nil {
		return err
	}
	upstreamObj, err := upstreamDynamic.Resource(mapping.Resource).Namespace(namespace).Get(ctx, o.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s %q not found in namespace %s of workspace %s", mapping.Resource.GroupResource(), o.name, namespace, workloadWorkspace)
	}
	if err != nil {
		return fmt.Errorf("failed to get upstream %s %q: %w", mapping.Resource.GroupResource(), o.name, err)
	}

	in := previewInput{
		workloadWorkspace: workloadWorkspace,
		locationWorkspace: locationWorkspace,
		syncTarget:        st,
		gvr:               mapping.Resource,
		upstreamObj:       upstreamObj,
	}
	p, err := buildPreview(ctx, in)
	if err != nil {
		return err
	}

	var live *unstructured.Unstructured
	checkLive := o.downstreamKubeconfig != "" && p.desired != nil
	if checkLive {
		downstreamDynamic, err := o.newDownstream(o.downstreamKubeconfig, o.downstreamContext)
		if err != nil {
			return err
		}
		live, err = downstreamDynamic.Resource(mapping.Resource).Namespace(p.downstreamNamespace).Get(ctx, o.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			live, err = nil, nil
		}
		if err != nil {
			return fmt.Errorf("failed to get downstream %s %s/%s: %w", mapping.Resource.GroupResource(), p.downstreamNamespace, o.name, err)
		}
	}
	return renderPreview(o.Out, in, p, checkLive, live, o.fullDiff)
}

// placedLocationWorkspace returns the location workspace of the Placements of the workload
// workspace that selected the target, when they agree on one, or else the workload
// workspace itself. Placements are a hint only: failing to read them is not an error.
func (o *previewOptions) placedLocationWorkspace(ctx context.Context, workloadWorkspace string) string {
	client, err := o.upstream.tmcClient("")
	if err != nil {
		return workloadWorkspace
	}
	placements, err := client.SchedulingV1alpha1().Placements().List(ctx, metav1.ListOptions{})
	if err != nil {
		return workloadWorkspace
	}
	found := ""
	for _, p := range placements.Items {
		sel := p.Status.SelectedSyncTarget
		if sel == nil || sel.Name != o.target || sel.Path == "" {
			continue
		}
		if found != "" && found != sel.Path {
			// Same name in two location workspaces: only the user can tell which.
			return workloadWorkspace
		}
		found = sel.Path
	}
	if found == "" {
		return workloadWorkspace
	}
	return found
}

// syncTarget reads the target from its location workspace.
func (o *previewOptions) syncTarget(ctx context.Context, workloadWorkspace, locationWorkspace string) (*workloadv1alpha1.SyncTarget, error) {
	path := locationWorkspace
	if path == workloadWorkspace {
		path = ""
	}
	client, err := o.upstream.tmcClient(path)
	if err != nil {
		return nil, err
	}
	st, err := client.WorkloadV1alpha1().SyncTargets().Get(ctx, o.target, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("SyncTarget %q not found in workspace %s; set --location-workspace to the workspace holding it", o.target, locationWorkspace)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to get SyncTarget %q in workspace %s: %w", o.target, locationWorkspace, err)
	}
	return st, nil
}

// syncedVersion returns the mapping at the version the syncer uses: the physical cluster's
// preferred version of the type, as the SyncTarget reports it (the syncer reads the
// upstream object at that version), when the upstream serves it.
func syncedVersion(mapper meta.RESTMapper, mapping *meta.RESTMapping, st *workloadv1alpha1.SyncTarget) *meta.RESTMapping {
	gr := mapping.Resource.GroupResource()
	for _, r := range st.Status.SyncedResources {
		if r.Group != gr.Group || r.Resource != gr.Resource || len(r.Versions) == 0 || r.Versions[0] == mapping.Resource.Version {
			continue
		}
		if m, err := mapper.RESTMapping(mapping.GroupVersionKind.GroupKind(), r.Versions[0]); err == nil {
			return m
		}
	}
	return mapping
}
