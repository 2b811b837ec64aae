package inspect

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// NewCordonCommand returns `cordon <name>`: the SyncTarget takes no new placements.
func NewCordonCommand(streams genericiooptions.IOStreams) *cobra.Command {
	return withUpstreamFlags(streams, newCordonCommand)
}

// NewUncordonCommand returns `uncordon <name>`: the SyncTarget takes placements again, and a
// pending drain is cancelled.
func NewUncordonCommand(streams genericiooptions.IOStreams) *cobra.Command {
	return withUpstreamFlags(streams, newUncordonCommand)
}

// NewDrainCommand returns `drain <name>`: the SyncTarget is cordoned and its workloads are
// moved to other SyncTargets, now or after --after.
func NewDrainCommand(streams genericiooptions.IOStreams) *cobra.Command {
	return withUpstreamFlags(streams, newDrainCommand)
}

func withUpstreamFlags(streams genericiooptions.IOStreams, newCmd func(genericiooptions.IOStreams, upstream, func() time.Time) *cobra.Command) *cobra.Command {
	flags := newUpstreamFlags(false)
	cmd := newCmd(streams, &kubeconfigUpstream{flags: flags}, time.Now)
	flags.AddFlags(cmd.Flags())
	return cmd
}

// scheduleOptions change the scheduling switches of one SyncTarget in the current workspace.
type scheduleOptions struct {
	genericiooptions.IOStreams
	upstream upstream
	now      func() time.Time

	after time.Duration
}

func newCordonCommand(streams genericiooptions.IOStreams, up upstream, now func() time.Time) *cobra.Command {
	o := &scheduleOptions{IOStreams: streams, upstream: up, now: now}
	return &cobra.Command{
		Use:   "cordon <name>",
		Short: "Stop placing new workloads on a SyncTarget",
		Long: `Mark a SyncTarget unschedulable: no new namespace is placed on it. Workloads already placed
on it stay; use drain to move them away.`,
		Example:           "  kubectl tmc workload cordon cluster-1",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeSyncTargets(up),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.cordon(cmd.Context(), args[0])
		},
	}
}

func newUncordonCommand(streams genericiooptions.IOStreams, up upstream, now func() time.Time) *cobra.Command {
	o := &scheduleOptions{IOStreams: streams, upstream: up, now: now}
	return &cobra.Command{
		Use:   "uncordon <name>",
		Short: "Place workloads on a SyncTarget again",
		Long: `Mark a SyncTarget schedulable again and cancel a drain (spec.unschedulable=false, no
spec.evictAfter).`,
		Example:           "  kubectl tmc workload uncordon cluster-1",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeSyncTargets(up),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.uncordon(cmd.Context(), args[0])
		},
	}
}

func newDrainCommand(streams genericiooptions.IOStreams, up upstream, now func() time.Time) *cobra.Command {
	o := &scheduleOptions{IOStreams: streams, upstream: up, now: now}
	cmd := &cobra.Command{
		Use:   "drain <name>",
		Short: "Move the workloads of a SyncTarget to other SyncTargets",
		Long: `Cordon a SyncTarget and set its eviction time (spec.evictAfter) to now, or to --after from
now: from then on, its placed namespaces move to other SyncTargets of their Location. The
copies on this target are removed once the new ones are running.

An eviction time already set and not later than the requested one is kept, so draining twice
never postpones a drain. Undo with uncordon.`,
		Example: `  # Move the workloads away now
  kubectl tmc workload drain cluster-1

  # Stop new placements now, move the workloads in 30 minutes
  kubectl tmc workload drain cluster-1 --after 30m`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeSyncTargets(up),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.drain(cmd.Context(), args[0])
		},
	}
	cmd.Flags().DurationVar(&o.after, "after", 0, "Move the workloads away after this long instead of now, e.g. 30m.")
	return cmd
}

func (o *scheduleOptions) cordon(ctx context.Context, name string) error {
	st, err := o.get(ctx, name)
	if err != nil {
		return err
	}
	if st.Spec.Unschedulable {
		return o.say("synctarget/%s already cordoned\n", name)
	}
	if err := o.patch(ctx, name, map[string]any{"unschedulable": true}); err != nil {
		return err
	}
	return o.say("synctarget/%s cordoned\n", name)
}

func (o *scheduleOptions) uncordon(ctx context.Context, name string) error {
	st, err := o.get(ctx, name)
	if err != nil {
		return err
	}
	if !st.Spec.Unschedulable && st.Spec.EvictAfter == nil {
		return o.say("synctarget/%s already uncordoned\n", name)
	}
	// null removes evictAfter in a merge patch.
	if err := o.patch(ctx, name, map[string]any{"unschedulable": false, "evictAfter": nil}); err != nil {
		return err
	}
	if st.Spec.EvictAfter != nil {
		return o.say("synctarget/%s uncordoned (drain cancelled)\n", name)
	}
	return o.say("synctarget/%s uncordoned\n", name)
}

func (o *scheduleOptions) drain(ctx context.Context, name string) error {
	if o.after < 0 {
		return fmt.Errorf("--after must not be negative, got %s", o.after)
	}
	st, err := o.get(ctx, name)
	if err != nil {
		return err
	}
	now := o.now()
	// The API keeps seconds; truncating keeps "now" from landing a fraction in the future.
	evictAt := now.Add(o.after).UTC().Truncate(time.Second)
	if existing := st.Spec.EvictAfter; existing != nil && !existing.After(evictAt) {
		if !st.Spec.Unschedulable {
			if err := o.patch(ctx, name, map[string]any{"unschedulable": true}); err != nil {
				return err
			}
		}
		if existing.After(now) {
			return o.say("synctarget/%s already draining: workloads move away in %s\n", name, duration.HumanDuration(existing.Sub(now)))
		}
		return o.say("synctarget/%s already drained: workloads are moving away since %s\n", name, age(existing.Time, now))
	}
	if err := o.patch(ctx, name, map[string]any{"unschedulable": true, "evictAfter": metav1.NewTime(evictAt)}); err != nil {
		return err
	}
	if o.after == 0 {
		return o.say("synctarget/%s drained: its workloads are moving to other SyncTargets\n", name)
	}
	return o.say("synctarget/%s cordoned: its workloads move to other SyncTargets at %s (in %s)\n",
		name, evictAt.Format(time.RFC3339), duration.HumanDuration(o.after))
}

func (o *scheduleOptions) get(ctx context.Context, name string) (*workloadv1alpha1.SyncTarget, error) {
	client, err := o.upstream.tmcClient("")
	if err != nil {
		return nil, err
	}
	st, err := client.WorkloadV1alpha1().SyncTargets().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		ws, wsErr := o.upstream.workspace()
		if wsErr != nil {
			ws = "the current workspace"
		}
		return nil, fmt.Errorf("SyncTarget %q not found in workspace %s", name, ws)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to get SyncTarget %q: %w", name, err)
	}
	return st, nil
}

// patch merge-patches the SyncTarget's spec, so that concurrent writers of other fields
// (the syncer, the controllers) never conflict with it.
func (o *scheduleOptions) patch(ctx context.Context, name string, spec map[string]any) error {
	client, err := o.upstream.tmcClient("")
	if err != nil {
		return err
	}
	data, err := json.Marshal(map[string]any{"spec": spec})
	if err != nil {
		return fmt.Errorf("failed to build the patch of SyncTarget %q: %w", name, err)
	}
	if _, err := client.WorkloadV1alpha1().SyncTargets().Patch(ctx, name, types.MergePatchType, data, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("failed to update SyncTarget %q: %w", name, err)
	}
	return nil
}

func (o *scheduleOptions) say(format string, args ...any) error {
	_, err := fmt.Fprintf(o.Out, format, args...)
	return err
}
