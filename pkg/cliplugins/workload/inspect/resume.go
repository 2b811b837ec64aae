package inspect

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// NewResumeDeletionsCommand returns `resume-deletions <name>`: the downstream deletions the
// SyncTarget's syncer paused (its mass-deletion breaker) go ahead.
func NewResumeDeletionsCommand(streams genericiooptions.IOStreams) *cobra.Command {
	return withUpstreamFlags(streams, newResumeDeletionsCommand)
}

func newResumeDeletionsCommand(streams genericiooptions.IOStreams, up upstream, now func() time.Time) *cobra.Command {
	o := &scheduleOptions{IOStreams: streams, upstream: up, now: now}
	return &cobra.Command{
		Use:   "resume-deletions <name>",
		Short: "Let the downstream deletions a SyncTarget's syncer paused go ahead",
		Long: `Resume the downstream deletions the syncer of a SyncTarget paused.

The syncer counts the deletions it decides on its own (an object gone upstream, unscheduled,
a namespace cleaned up; never those a user asked for by deleting the object) and pauses them
when more than its budget happen within a window (--deletion-budget-objects, -percent,
-window), or when upstream objects vanished without being deleted (a workspace re-created,
storage restored from an older backup). The SyncTarget's DeletionsPaused condition then
says what waits. A large drain or unscheduling may trip the budget too.

This command sets the annotation ` + workloadv1alpha1.ResumeDeletionsAnnotation + ` to the current time:
every deletion held before it goes ahead, and the budget starts over. Look at what was
paused first: the copies kept downstream are what would be deleted.`,
		Example:           "  kubectl tmc workload resume-deletions cluster-1",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeSyncTargets(up),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.resumeDeletions(cmd.Context(), args[0])
		},
	}
}

func (o *scheduleOptions) resumeDeletions(ctx context.Context, name string) error {
	st, err := o.get(ctx, name)
	if err != nil {
		return err
	}
	// Sub-second precision: a resume in the same second as the trip must still be newer.
	at := o.now().UTC()
	data, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{workloadv1alpha1.ResumeDeletionsAnnotation: at.Format(time.RFC3339Nano)},
	}})
	if err != nil {
		return fmt.Errorf("failed to build the patch of SyncTarget %q: %w", name, err)
	}
	client, err := o.upstream.tmcClient("")
	if err != nil {
		return err
	}
	if _, err := client.WorkloadV1alpha1().SyncTargets().Patch(ctx, name, types.MergePatchType, data, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("failed to update SyncTarget %q: %w", name, err)
	}
	paused := meta.FindStatusCondition(st.Status.Conditions, workloadv1alpha1.SyncTargetDeletionsPaused)
	if paused == nil || paused.Status != metav1.ConditionTrue {
		state := "not reported"
		if paused != nil {
			state = fmt.Sprintf("%s (%s)", paused.Status, paused.Reason)
		}
		return o.say("synctarget/%s deletions resumed at %s; they were not paused (DeletionsPaused %s)\n", name, at.Format(time.RFC3339), state)
	}
	return o.say("synctarget/%s deletions resumed at %s; the syncer goes ahead with what it held.\nWas paused (%s): %s\n",
		name, at.Format(time.RFC3339), paused.Reason, paused.Message)
}
