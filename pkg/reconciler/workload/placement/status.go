package placement

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// ReasonInvalidNamespaceSelector is the Scheduled reason of a Placement whose
// namespaceSelector cannot be parsed.
const ReasonInvalidNamespaceSelector = "InvalidNamespaceSelector"

// reconcilePlacement writes a Placement's status from the caches: phase, selected Location
// and SyncTarget, and the Ready and Scheduled conditions. It writes only when something
// changed.
func (c *Controller) reconcilePlacement(ctx context.Context, key queueKey) (time.Duration, error) {
	logger := klog.FromContext(ctx)
	wl, ok := c.workload[key.workspace]
	if !ok {
		return 0, nil
	}
	p, err := wl.placements.Get(key.name)
	if apierrors.IsNotFound(err) {
		c.mu.Lock()
		delete(c.lastScheduled, key)
		c.mu.Unlock()
		logger.V(4).Info("Placement is gone")
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	now := c.clock.Now()
	status, next := c.placementStatus(wl, p, now)
	if equality.Semantic.DeepEqual(p.Status, *status) {
		logger.V(4).Info("Placement status is up to date")
		return next.after(now, false), nil
	}
	updated := p.DeepCopy()
	updated.Status = *status
	if _, err := wl.kube.TMC.SchedulingV1alpha1().Placements().UpdateStatus(ctx, updated, metav1.UpdateOptions{FieldManager: ControllerName}); err != nil {
		if apierrors.IsNotFound(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("failed to update status of Placement %s: %w", p.Name, err)
	}
	logger.V(3).Info("Updated Placement status", "phase", status.Phase)
	return next.after(now, false), nil
}

// placementStatus computes the status of p and when time alone changes it.
func (c *Controller) placementStatus(wl *workloadWorkspace, p *schedulingv1alpha1.Placement, now time.Time) (*schedulingv1alpha1.PlacementStatus, requeueAt) {
	var next requeueAt
	status := p.Status.DeepCopy()
	choice := c.chooseLocation(p, now)
	targets := c.targetsByKey()
	placements := sortedPlacements(wl)

	var selected, unscheduled, moving []string
	hosts := map[string]bool{} // keys of targets hosting a namespace placed through p
	firstHost := ""
	for _, ns := range c.listNamespaces(wl) {
		if ns.DeletionTimestamp != nil {
			continue
		}
		if winner := firstSelecting(placements, ns); winner == nil || winner.Name != p.Name {
			continue
		}
		selected = append(selected, ns.Name)
		keys := placedKeys(ns)
		hasValid := false
		for _, k := range keys {
			v := c.judge(k, targets, choice, now)
			next.at(v.recheckAt)
			hasValid = hasValid || v.valid
		}
		if !hasValid {
			unscheduled = append(unscheduled, ns.Name)
		}
		if len(keys) > 1 || len(removingKeys(ns)) > 0 {
			moving = append(moving, ns.Name)
		}
		if ns.Annotations[schedulingv1alpha1.PlacementAnnotationKey] != p.Name {
			continue
		}
		for _, k := range keys {
			if _, known := targets[k]; !known {
				continue
			}
			hosts[k] = true
			if firstHost == "" {
				firstHost = k
			}
		}
	}

	switch {
	case choice.location == nil:
		status.Phase = schedulingv1alpha1.PlacementPending
		status.SelectedLocation = nil
	case len(hosts) > 0:
		status.Phase = schedulingv1alpha1.PlacementBound
		status.SelectedLocation = &schedulingv1alpha1.LocationReference{Path: choice.path, LocationName: choice.location.Name}
	default:
		status.Phase = schedulingv1alpha1.PlacementUnbound
		status.SelectedLocation = &schedulingv1alpha1.LocationReference{Path: choice.path, LocationName: choice.location.Name}
	}
	status.SelectedSyncTarget = c.selectedSyncTarget(wl.path, p, hosts, firstHost, targets)

	ready := metav1.Condition{Type: schedulingv1alpha1.PlacementReady, Status: metav1.ConditionTrue,
		Reason: schedulingv1alpha1.ReasonPlacementReady}
	if choice.location != nil {
		ready.Message = fmt.Sprintf("Location %s in %s selected", choice.location.Name, choice.path)
	} else {
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, choice.reason, choice.message
	}
	setCondition(status, ready, p.Generation, now)
	setCondition(status, scheduledCondition(p, choice, selected, unscheduled, moving), p.Generation, now)
	return status, next
}

// selectedSyncTarget returns the target of the namespace this controller placed most
// recently through p; after a restart the previous value while it still hosts one of p's
// namespaces; otherwise the target of the first placed namespace by name (nil if none).
func (c *Controller) selectedSyncTarget(workspace string, p *schedulingv1alpha1.Placement, hosts map[string]bool, firstHost string,
	targets map[string]targetRef) *schedulingv1alpha1.SyncTargetReference {
	c.mu.Lock()
	last := c.lastScheduled[queueKey{workspace: workspace, name: p.Name}]
	c.mu.Unlock()
	key := ""
	switch {
	case hosts[last]:
		key = last
	case p.Status.SelectedSyncTarget != nil &&
		hosts[workloadv1alpha1.ToSyncTargetKey(p.Status.SelectedSyncTarget.Path, p.Status.SelectedSyncTarget.Name)]:
		key = workloadv1alpha1.ToSyncTargetKey(p.Status.SelectedSyncTarget.Path, p.Status.SelectedSyncTarget.Name)
	default:
		key = firstHost
	}
	if key == "" {
		return nil
	}
	ref := targets[key]
	return &schedulingv1alpha1.SyncTargetReference{Path: ref.path, Name: ref.target.Name, Key: key}
}

func scheduledCondition(p *schedulingv1alpha1.Placement, choice locationChoice, selected, unscheduled, moving []string) metav1.Condition {
	cond := metav1.Condition{Type: schedulingv1alpha1.PlacementScheduled, Status: metav1.ConditionTrue, Reason: schedulingv1alpha1.ReasonScheduled}
	if p.Spec.NamespaceSelector != nil {
		if _, err := metav1.LabelSelectorAsSelector(p.Spec.NamespaceSelector); err != nil {
			cond.Status, cond.Reason = metav1.ConditionFalse, ReasonInvalidNamespaceSelector
			cond.Message = fmt.Sprintf("namespaceSelector is invalid: %v", err)
			return cond
		}
	}
	switch {
	case len(unscheduled) > 0:
		cond.Status, cond.Reason = metav1.ConditionFalse, schedulingv1alpha1.ReasonNoValidTarget
		cond.Message = fmt.Sprintf("no valid SyncTarget for %d of %d namespaces: %s", len(unscheduled), len(selected), listNames(unscheduled))
		if choice.location == nil {
			cond.Message += "; " + choice.message
		}
	case len(moving) > 0:
		cond.Reason = schedulingv1alpha1.ReasonRescheduling
		cond.Message = fmt.Sprintf("%d namespaces scheduled; moving between SyncTargets: %s", len(selected), listNames(moving))
	case p.Spec.NamespaceSelector == nil:
		cond.Message = "namespaceSelector is not set: no namespace is selected"
	default:
		cond.Message = fmt.Sprintf("%d namespaces scheduled", len(selected))
	}
	return cond
}

// setCondition sets a condition; lastTransitionTime changes only with the status.
func setCondition(status *schedulingv1alpha1.PlacementStatus, cond metav1.Condition, generation int64, now time.Time) {
	cond.ObservedGeneration = generation
	cond.LastTransitionTime = metav1.NewTime(now).Rfc3339Copy()
	meta.SetStatusCondition(&status.Conditions, cond)
}
