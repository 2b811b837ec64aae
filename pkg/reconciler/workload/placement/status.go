package placement

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
)

// reconcilePlacement writes a Placement's status from the caches: phase, selected Location
// and SyncTarget, and the Ready and Scheduled conditions. It writes only when something
// changed.
func (c *Controller) reconcilePlacement(ctx context.Context, key queueKey) (time.Duration, error) {
	logger := klog.FromContext(ctx)
	wl, ok := c.workloadWorkspace(key.workspace)
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

// namespaceCounts sorts the namespaces of a workspace for one Placement's status.
type namespaceCounts struct {
	// selected follow the Placement (kept ones included).
	selected []string
	// unscheduled have no valid target; held stay on a target past its grace period for
	// their persistent data; moving are on several targets or leaving one.
	unscheduled, held, moving []string
	// kept keep their targets because a selector cannot be evaluated.
	kept []string
	// unscheduling were placed through the Placement, are no longer selected by any, and
	// are being removed from their targets.
	unscheduling []string
}

// placementStatus computes the status of p and when time alone changes it.
func (c *Controller) placementStatus(wl *workloadWorkspace, p *schedulingv1alpha1.Placement, now time.Time) (*schedulingv1alpha1.PlacementStatus, requeueAt) {
	var next requeueAt
	status := p.Status.DeepCopy()
	choice := c.chooseLocation(p, now)
	targets := c.targetsByKey()
	placements := sortedPlacements(wl)
	unevaluable := selectorProblem(p, choice)

	var n namespaceCounts
	hosts := map[string]bool{} // keys of targets hosting a namespace placed through p
	firstHost := ""
	for _, ns := range c.listNamespaces(wl) {
		if ns.DeletionTimestamp != nil {
			continue
		}
		f := fateOf(placements, ns)
		placedByP := ns.Annotations[schedulingv1alpha1.PlacementAnnotationKey] == p.Name
		keys := placedKeys(ns)
		if f.placement == nil && f.frozen == "" {
			if placedByP && (len(keys) > 0 || len(removingKeys(ns)) > 0) {
				n.unscheduling = append(n.unscheduling, ns.Name)
			}
			continue
		}
		if f.placement == nil || f.placement.Name != p.Name {
			continue
		}
		n.selected = append(n.selected, ns.Name)
		if f.frozen != "" || unevaluable != "" {
			n.kept = append(n.kept, ns.Name)
		} else {
			c.judgeForStatus(wl, p, ns, keys, targets, choice, now, &next, &n)
		}
		if !placedByP {
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
	case choice.unevaluable != "":
		// Keep the Location: a fixed selector must find the namespaces where they are.
		if status.Phase == "" {
			status.Phase = schedulingv1alpha1.PlacementPending
		}
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
	if choice.unevaluable == "" {
		status.SelectedSyncTarget = c.selectedSyncTarget(wl.path, p, hosts, firstHost, targets)
	}

	ready := metav1.Condition{Type: schedulingv1alpha1.PlacementReady, Status: metav1.ConditionTrue,
		Reason: schedulingv1alpha1.ReasonPlacementReady}
	if choice.location != nil {
		ready.Message = fmt.Sprintf("Location %s in %s selected", choice.location.Name, choice.path)
	} else {
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, choice.reason, choice.message
	}
	setCondition(status, ready, p.Generation, now)
	setCondition(status, scheduledCondition(p, choice, unevaluable, n), p.Generation, now)
	setCondition(status, selectorValidCondition(unevaluable), p.Generation, now)
	setCondition(status, unschedulingCondition(p, n.unscheduling), p.Generation, now)
	return status, next
}

// judgeForStatus judges the targets of a namespace that follows p and files it in n.
func (c *Controller) judgeForStatus(wl *workloadWorkspace, p *schedulingv1alpha1.Placement, ns *corev1.Namespace, keys []string,
	targets map[string]targetRef, choice locationChoice, now time.Time, next *requeueAt, n *namespaceCounts) {
	hold := c.failoverHold(wl, ns.Name, p)
	hasValid, held := false, false
	for _, k := range keys {
		v := c.judge(k, targets, choice, now, hold)
		next.at(v.recheckAt)
		hasValid = hasValid || v.valid
		held = held || v.held != ""
	}
	if !hasValid {
		n.unscheduled = append(n.unscheduled, ns.Name)
	}
	if held {
		n.held = append(n.held, ns.Name)
	}
	if len(keys) > 1 || len(removingKeys(ns)) > 0 {
		n.moving = append(n.moving, ns.Name)
	}
}

// selectorProblem says which selector of p cannot be evaluated ("" if all can).
func selectorProblem(p *schedulingv1alpha1.Placement, choice locationChoice) string {
	if err := namespaceSelectorError(p); err != nil {
		return err.Error()
	}
	return choice.unevaluable
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
	case p.Status.SelectedSyncTarget != nil && hosts[p.Status.SelectedSyncTarget.Key]:
		key = p.Status.SelectedSyncTarget.Key
	default:
		key = firstHost
	}
	if key == "" {
		return nil
	}
	ref := targets[key]
	return &schedulingv1alpha1.SyncTargetReference{Path: ref.path, Name: ref.target.Name, Key: key}
}

func scheduledCondition(p *schedulingv1alpha1.Placement, choice locationChoice, unevaluable string, n namespaceCounts) metav1.Condition {
	cond := metav1.Condition{Type: schedulingv1alpha1.PlacementScheduled, Status: metav1.ConditionTrue, Reason: schedulingv1alpha1.ReasonScheduled}
	switch {
	case unevaluable != "":
		cond.Status, cond.Reason = metav1.ConditionFalse, schedulingv1alpha1.ReasonInvalidSelector
		cond.Message = fmt.Sprintf("%s; %d namespaces keep their SyncTargets and nothing new is scheduled until it is fixed", unevaluable, len(n.kept))
	case len(n.unscheduled) > 0:
		cond.Status, cond.Reason = metav1.ConditionFalse, schedulingv1alpha1.ReasonNoValidTarget
		cond.Message = fmt.Sprintf("no valid SyncTarget for %d of %d namespaces: %s", len(n.unscheduled), len(n.selected), listNames(n.unscheduled))
		if choice.location == nil {
			cond.Message += "; " + choice.message
		}
	case len(n.held) > 0:
		cond.Status, cond.Reason = metav1.ConditionFalse, schedulingv1alpha1.ReasonFailoverHeld
		cond.Message = fmt.Sprintf("%d namespaces holding persistent data stay on SyncTargets that have not been Ready for the grace period "+
			"(statefulFailover %s; drain the SyncTarget to move them): %s", len(n.held), schedulingv1alpha1.StatefulFailoverNever, listNames(n.held))
	case len(n.moving) > 0:
		cond.Reason = schedulingv1alpha1.ReasonRescheduling
		cond.Message = fmt.Sprintf("%d namespaces scheduled; moving between SyncTargets: %s", len(n.selected), listNames(n.moving))
	case p.Spec.NamespaceSelector == nil:
		cond.Message = "namespaceSelector is not set: no namespace is selected"
	default:
		cond.Message = fmt.Sprintf("%d namespaces scheduled", len(n.selected))
	}
	if unevaluable == "" && len(n.kept) > 0 {
		cond.Message += fmt.Sprintf("; %d namespaces keep their SyncTargets while another Placement cannot be evaluated: %s", len(n.kept), listNames(n.kept))
	}
	return cond
}

func selectorValidCondition(unevaluable string) metav1.Condition {
	if unevaluable != "" {
		return metav1.Condition{Type: schedulingv1alpha1.PlacementSelectorValid, Status: metav1.ConditionFalse,
			Reason: schedulingv1alpha1.ReasonInvalidSelector, Message: unevaluable}
	}
	return metav1.Condition{Type: schedulingv1alpha1.PlacementSelectorValid, Status: metav1.ConditionTrue,
		Reason:  schedulingv1alpha1.ReasonSelectorsValid,
		Message: "namespaceSelector, locationSelectors and the instanceSelectors of the matching Locations can be evaluated"}
}

func unschedulingCondition(p *schedulingv1alpha1.Placement, unscheduling []string) metav1.Condition {
	if len(unscheduling) == 0 {
		return metav1.Condition{Type: schedulingv1alpha1.PlacementUnscheduling, Status: metav1.ConditionFalse,
			Reason: schedulingv1alpha1.ReasonNoneUnscheduling, Message: "no namespace placed through this Placement is being removed"}
	}
	return metav1.Condition{Type: schedulingv1alpha1.PlacementUnscheduling, Status: metav1.ConditionTrue,
		Reason: schedulingv1alpha1.ReasonNamespacesUnscheduling,
		Message: fmt.Sprintf("%d namespaces no longer selected by any Placement are being removed from their SyncTargets (deletionPolicy %s): %s",
			len(unscheduling), deletionPolicy(p), listNames(unscheduling))}
}

// setCondition sets a condition; lastTransitionTime changes only with the status.
func setCondition(status *schedulingv1alpha1.PlacementStatus, cond metav1.Condition, generation int64, now time.Time) {
	cond.ObservedGeneration = generation
	cond.LastTransitionTime = metav1.NewTime(now).Rfc3339Copy()
	meta.SetStatusCondition(&status.Conditions, cond)
}
