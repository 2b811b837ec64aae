package inspect

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcscheme "github.com/tmc-dev/tmc/sdk/client/clientset/versioned/scheme"
)

// NewStatusCommand returns `status [name]`: a table of the SyncTargets of the current
// (location) workspace, or the detailed view of one.
func NewStatusCommand(streams genericiooptions.IOStreams) *cobra.Command {
	return withUpstreamFlags(streams, newStatusCommand)
}

type statusOptions struct {
	genericiooptions.IOStreams
	upstream upstream
	now      func() time.Time

	name   string
	output string
}

func newStatusCommand(streams genericiooptions.IOStreams, up upstream, now func() time.Time) *cobra.Command {
	o := &statusOptions{IOStreams: streams, upstream: up, now: now}
	cmd := &cobra.Command{
		Use:   "status [name]",
		Short: "Show the SyncTargets of the current workspace, or one in detail",
		Long: `Show the SyncTargets of the current (location) workspace: whether each is ready, when its
syncer last sent a heartbeat, how many resource types it accepts, how many workload workspaces
are placed on it, how many errors its syncer reported, whether it takes new placements and
whether the admission policy that confines its syncer on the physical cluster is in place
(the SyncerConfined condition: False with PolicyMissing, BindingMissing or NotVerifiable).

With a name, show that SyncTarget in detail: conditions, synced resources, the
virtual-workspace URLs its syncer follows (one per shard; none when it reaches each workspace
directly), the workload workspaces bound to it with their sync health as the syncer reports
it (Ready, Forbidden, Unauthorized, Unreachable, Syncing, or Unknown before it reports),
capacity, the syncer and its recent errors.`,
		Example: `  # All SyncTargets of the current workspace
  kubectl tmc workload status

  # One SyncTarget in detail
  kubectl tmc workload status cluster-1

  # The objects themselves
  kubectl tmc workload status -o yaml`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeSyncTargets(up),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.name = args[0]
			}
			return o.run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "Output format: json or yaml. Default: a table, or the detailed view with a name.")
	return cmd
}

func (o *statusOptions) run(ctx context.Context) error {
	switch o.output {
	case "", "json", "yaml":
	default:
		return fmt.Errorf("unsupported output format %q: use json or yaml", o.output)
	}
	ws, err := o.upstream.workspace()
	if err != nil {
		return err
	}
	client, err := o.upstream.tmcClient("")
	if err != nil {
		return err
	}
	syncTargets := client.WorkloadV1alpha1().SyncTargets()

	if o.name != "" {
		st, err := syncTargets.Get(ctx, o.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("SyncTarget %q not found in workspace %s", o.name, ws)
		}
		if err != nil {
			return fmt.Errorf("failed to get SyncTarget %q: %w", o.name, err)
		}
		if o.output != "" {
			return printObject(o.Out, o.output, st)
		}
		return describeSyncTarget(o.Out, ws, st, o.now())
	}

	list, err := syncTargets.List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("failed to list SyncTargets in workspace %s: %w", ws, err)
	}
	items := list.Items
	sort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })
	if o.output != "" {
		list, err := listForOutput(items)
		if err != nil {
			return err
		}
		return printObject(o.Out, o.output, list)
	}
	if len(items) == 0 {
		_, err := fmt.Fprintf(o.ErrOut, "No SyncTargets found in workspace %s.\n", ws)
		return err
	}
	return printStatusTable(o.Out, items, o.now())
}

// statusColumns are the columns of the SyncTarget table.
var statusColumns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string", Format: "name", Description: "Name of the SyncTarget."},
	{Name: "Ready", Type: "string", Description: "Status of the Ready condition."},
	{Name: "Heartbeat", Type: "string", Description: "Age of the syncer's last heartbeat."},
	{Name: "Resources", Type: "string", Description: "Accepted resource types of those requested."},
	{Name: "Workspaces", Type: "integer", Description: "Workload workspaces placed on the SyncTarget."},
	{Name: "Errors", Type: "integer", Description: "Errors the syncer reported."},
	{Name: "Schedulable", Type: "string", Description: "Whether the SyncTarget takes new placements."},
	{Name: "Confined", Type: "string", Description: "Whether the admission policy confining the syncer downstream is in place (SyncerConfined)."},
}

// printStatusTable prints one line per SyncTarget with kubectl's table printer.
func printStatusTable(out io.Writer, items []workloadv1alpha1.SyncTarget, now time.Time) error {
	table := &metav1.Table{ColumnDefinitions: statusColumns}
	for i := range items {
		st := &items[i]
		table.Rows = append(table.Rows, metav1.TableRow{
			Cells:  []any{st.Name, readyStatus(st), heartbeatAge(st, now), resourceCounts(st), len(st.Status.Workspaces), errorTotal(st), schedulable(st, now), confinedStatus(st)},
			Object: runtime.RawExtension{Object: st},
		})
	}
	if err := printers.NewTablePrinter(printers.PrintOptions{}).PrintObj(table, out); err != nil {
		return fmt.Errorf("failed to print the SyncTargets: %w", err)
	}
	return nil
}

// tabulate aligns the tab-separated columns that write prints, as kubectl does, and
// writes them to out without trailing blanks.
func tabulate(out io.Writer, write func(b *strings.Builder)) error {
	var text strings.Builder
	write(&text)
	var buf bytes.Buffer
	w := tabwriter.NewWriter(&buf, 0, 8, 3, ' ', 0)
	if _, err := io.WriteString(w, text.String()); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	var trimmed strings.Builder
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		body, nl := strings.CutSuffix(line, "\n")
		trimmed.WriteString(strings.TrimRight(body, " "))
		if nl {
			trimmed.WriteString("\n")
		}
	}
	_, err := io.WriteString(out, trimmed.String())
	return err
}

// readyStatus is the status of the Ready condition, or Unknown without one.
func readyStatus(st *workloadv1alpha1.SyncTarget) string {
	if c := meta.FindStatusCondition(st.Status.Conditions, workloadv1alpha1.SyncTargetReady); c != nil {
		return string(c.Status)
	}
	return string(metav1.ConditionUnknown)
}

// confinedStatus is the status of the SyncerConfined condition, with the reason when it is
// not True, or Unknown without one (a syncer that does not report it).
func confinedStatus(st *workloadv1alpha1.SyncTarget) string {
	c := meta.FindStatusCondition(st.Status.Conditions, workloadv1alpha1.SyncTargetSyncerConfined)
	switch {
	case c == nil:
		return string(metav1.ConditionUnknown)
	case c.Status == metav1.ConditionTrue:
		return string(c.Status)
	default:
		return fmt.Sprintf("%s (%s)", c.Status, c.Reason)
	}
}

// heartbeatAge is the age of the last heartbeat as kubectl prints ages, or "never".
func heartbeatAge(st *workloadv1alpha1.SyncTarget, now time.Time) string {
	if st.Status.LastSyncerHeartbeatTime == nil {
		return "never"
	}
	return age(st.Status.LastSyncerHeartbeatTime.Time, now)
}

// age prints the time since t as kubectl does ("12s", "5m3s", "3d").
func age(t, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}

// resourceCounts is "<accepted>/<total>" of the resource types the target is asked to sync,
// followed by " (<n> releasing)" while the syncer releases types it no longer syncs.
func resourceCounts(st *workloadv1alpha1.SyncTarget) string {
	counts, releasing := acceptedCounts(st)
	if releasing > 0 {
		return fmt.Sprintf("%s (%d releasing)", counts, releasing)
	}
	return counts
}

// acceptedCounts is "<accepted>/<total>" of the resource types the target is asked to
// sync, and the number of types in state Releasing (not counted in total). Before the
// syncer has reported anything the total is the number requested.
func acceptedCounts(st *workloadv1alpha1.SyncTarget) (string, int) {
	accepted, releasing := 0, 0
	for _, r := range st.Status.SyncedResources {
		switch r.State {
		case workloadv1alpha1.ResourceStateAccepted:
			accepted++
		case workloadv1alpha1.ResourceStateReleasing:
			releasing++
		}
	}
	total := len(st.Status.SyncedResources) - releasing
	if len(st.Status.SyncedResources) == 0 {
		total = len(st.Spec.Resources)
		if total == 0 {
			total = len(workloadv1alpha1.DefaultResources())
		}
	}
	return fmt.Sprintf("%d/%d", accepted, total), releasing
}

// errorTotal sums the syncer's error counts.
func errorTotal(st *workloadv1alpha1.SyncTarget) int64 {
	if st.Status.Errors == nil {
		return 0
	}
	var n int64
	for _, c := range st.Status.Errors.Counts {
		n += c
	}
	return n
}

// schedulable says whether the target takes new placements: "yes", "cordoned", or
// "draining" once its eviction time has come; a drain still ahead is added in parentheses.
func schedulable(st *workloadv1alpha1.SyncTarget, now time.Time) string {
	evict := st.Spec.EvictAfter
	if evict != nil && !now.Before(evict.Time) {
		return "draining"
	}
	s := "yes"
	if st.Spec.Unschedulable {
		s = "cordoned"
	}
	if evict != nil {
		s += " (drain in " + duration.HumanDuration(evict.Sub(now)) + ")"
	}
	return s
}

// listForOutput returns items as kubectl prints several objects: an untyped v1 List of
// typed items.
func listForOutput(items []workloadv1alpha1.SyncTarget) (*unstructured.UnstructuredList, error) {
	list := &unstructured.UnstructuredList{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "List",
		"metadata":   map[string]any{"resourceVersion": ""},
	}}
	for i := range items {
		st := items[i].DeepCopy()
		st.SetGroupVersionKind(workloadv1alpha1.SchemeGroupVersion.WithKind("SyncTarget"))
		obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(st)
		if err != nil {
			return nil, fmt.Errorf("failed to convert SyncTarget %s for printing: %w", st.Name, err)
		}
		list.Items = append(list.Items, unstructured.Unstructured{Object: obj})
	}
	return list, nil
}

// printObject prints obj with kubectl's json or yaml printer: typed from the TMC scheme,
// without managedFields.
func printObject(out io.Writer, format string, obj runtime.Object) error {
	printer, err := genericclioptions.NewJSONYamlPrintFlags().ToPrinter(format)
	if err != nil {
		return err
	}
	if err := printers.NewTypeSetter(tmcscheme.Scheme).ToPrinter(printer).PrintObj(obj, out); err != nil {
		return fmt.Errorf("failed to print as %s: %w", format, err)
	}
	return nil
}

// completeSyncTargets completes SyncTarget names of the current workspace.
func completeSyncTargets(up upstream) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		client, err := up.tmcClient("")
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		list, err := client.WorkloadV1alpha1().SyncTargets().List(cmd.Context(), metav1.ListOptions{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []string
		for _, st := range list.Items {
			if strings.HasPrefix(st.Name, toComplete) {
				names = append(names, st.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
