package syncer

import (
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// condition returns the breaker's DeletionsPaused condition, without lastTransitionTime:
// True while tripped (DeletionBudgetExceeded) or while upstream-lost copies wait for an
// operator (UpstreamObjectsLost); False after a resume (DeletionsResumed) or otherwise
// (DeletionsWithinBudget). It also notices a new resume annotation.
func (b *deletionBreaker) condition(ctx context.Context) metav1.Condition {
	_, unlock := b.lockCurrent(ctx)
	defer unlock()
	c := metav1.Condition{Type: workloadv1alpha1.SyncTargetDeletionsPaused}
	switch {
	case b.trip != nil:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, workloadv1alpha1.ReasonDeletionBudgetExceeded, b.tripMessageLocked()
	case b.waiting[deletionUpstreamLost] > 0:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, workloadv1alpha1.ReasonUpstreamObjectsLost, b.lostMessageLocked()
	case b.resume != nil:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, workloadv1alpha1.ReasonDeletionsResumed, b.resumeMessageLocked()
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, workloadv1alpha1.ReasonDeletionsWithinBudget, b.budgetMessage()
	}
	return c
}

func (b *deletionBreaker) tripMessageLocked() string {
	return fmt.Sprintf("Deletions paused since %s: more than %d objects to delete within %s (the budget is the larger of %d objects and %d%% of the %d synced objects). Held: %s. Everything else keeps syncing. %s",
		b.trip.at.UTC().Format(time.RFC3339), b.trip.limit, b.budget.Window, b.budget.Objects, b.budget.Percent, b.trip.synced,
		b.heldSummaryLocked(), b.resumeHint())
}

func (b *deletionBreaker) lostMessageLocked() string {
	return fmt.Sprintf("Kept %d downstream copies whose upstream objects vanished without a deletion (%s): they are deleted only once an operator resumes deletions. Held: %s. %s",
		b.waiting[deletionUpstreamLost], deletionUpstreamLost, b.heldSummaryLocked(), b.resumeHint())
}

func (b *deletionBreaker) resumeMessageLocked() string {
	return fmt.Sprintf("Deletions resumed at %s: %d held deletions released", b.resume.at.UTC().Format(time.RFC3339), b.resume.released)
}

func (b *deletionBreaker) budgetMessage() string {
	if b.budget.Objects < 0 {
		return "The deletion budget is disabled; copies whose upstream objects vanished without a deletion still wait for an operator"
	}
	return fmt.Sprintf("Deletions are within the budget: the larger of %d objects and %d%% of the synced objects per %s", b.budget.Objects, b.budget.Percent, b.budget.Window)
}

func (b *deletionBreaker) resumeHint() string {
	return fmt.Sprintf("Resume with: kubectl tmc workload resume-deletions %s (sets the %s annotation to the current time)",
		b.syncTargetRef.Name, workloadv1alpha1.ResumeDeletionsAnnotation)
}

// heldSummaryLocked lists the held deletions by reason, e.g. "200 upstream-lost, 3 unscheduled".
func (b *deletionBreaker) heldSummaryLocked() string {
	counts := b.waiting
	var parts []string
	for _, r := range deletionReasons {
		if counts[r] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[r], r))
		}
	}
	if len(parts) == 0 {
		return "none yet"
	}
	out := strings.Join(parts, ", ")
	if b.overflowed {
		out += fmt.Sprintf(" (and more: only %d are remembered)", maxHeldDeletions)
	}
	return out
}
