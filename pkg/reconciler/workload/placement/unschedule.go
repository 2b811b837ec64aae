package placement

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// unschedule removes a namespace that no Placement selects from every target it was placed
// on by a Placement; namespaces labelled by hand (no placement annotation) are left alone.
// The removal is announced on the namespace (Warning Unscheduled, naming the Placement, the
// targets and the deletion policy), and the Placement, while it exists, counts it in its
// Unscheduling condition.
func (c *Controller) unschedule(ctx context.Context, wl *workloadWorkspace, ns *corev1.Namespace, now time.Time) (time.Duration, error) {
	logger := klog.FromContext(ctx)
	nsKey := queueKey{workspace: wl.path, name: ns.Name}
	c.setEpisode(episodeUnschedulable, nsKey, false)
	c.setEpisode(episodeFailoverHeld, nsKey, false)
	former, ours := ns.Annotations[schedulingv1alpha1.PlacementAnnotationKey]
	if !ours {
		logger.V(4).Info("Namespace is not selected by any Placement")
		return 0, nil
	}
	patch := newMetaPatch(ns)
	finished, waiting := c.finishRemovals(wl, ns, patch)
	placed := placedKeys(ns)
	cause := fmt.Sprintf("Placement %s was deleted", former)
	if p, err := wl.placements.Get(former); err == nil && p.DeletionTimestamp == nil {
		cause = fmt.Sprintf("Placement %s no longer selects the namespace", former)
		if len(placed) > 0 {
			// A policy changed together with the selector applies to this removal.
			setDeletionPolicy(patch, p)
		}
	}
	stamp := now.UTC().Format(time.RFC3339)
	for _, k := range placed {
		patch.setAnnotation(workloadv1alpha1.DeletionAnnotation(k), stamp)
	}
	if len(placed) == 0 && !waiting {
		patch.removeAnnotation(schedulingv1alpha1.PlacementAnnotationKey)
	}
	if !patch.empty() {
		if err := c.patchNamespace(ctx, wl, ns, patch); err != nil {
			return 0, err
		}
	}
	targets := c.targetsByKey()
	if len(placed) > 0 {
		policy := patch.value(workloadv1alpha1.DeletionPolicyAnnotation)
		c.countDecision(wl.path, ResultUnscheduled)
		c.eventf(wl, ns, corev1.EventTypeWarning, EventUnscheduled, "%s and no other Placement selects it: removing it from %s; %s",
			cause, targetNames(targets, placed), policyEffect(policy))
		logger.V(2).Info("Unscheduling namespace", "from", targetNames(targets, placed), "cause", cause, "deletionPolicy", policyOrDefault(policy))
	}
	c.logFinished(logger, targets, finished)
	var next requeueAt
	return next.after(now, waiting && c.objectsLabelledFor != nil), nil
}

func policyOrDefault(policy string) string {
	if policy == "" {
		return workloadv1alpha1.DeletionPolicyDelete
	}
	return policy
}

// policyEffect says what the syncers do with the downstream copies under a policy.
func policyEffect(policy string) string {
	if policy == workloadv1alpha1.DeletionPolicyOrphan {
		return "the downstream copies are left running, no longer managed by TMC (deletionPolicy Orphan)"
	}
	return fmt.Sprintf("the downstream copies are deleted (deletionPolicy %s)", policyOrDefault(policy))
}

// finishRemovals removes the label and the deletion annotation of every target being
// removed whose label no object of the namespace carries any more. It reports the keys
// finished and whether some removal still waits for objects.
func (c *Controller) finishRemovals(wl *workloadWorkspace, ns *corev1.Namespace, patch *metaPatch) ([]string, bool) {
	var finished []string
	waiting := false
	for _, k := range removingKeys(ns) {
		if c.objectsLabelled(wl, ns.Name, k) > 0 {
			waiting = true
			continue
		}
		patch.removeLabel(workloadv1alpha1.ClusterResourceStateLabel(k))
		patch.removeAnnotation(workloadv1alpha1.DeletionAnnotation(k))
		finished = append(finished, k)
	}
	return finished, waiting
}

func (c *Controller) logFinished(logger klog.Logger, targets map[string]targetRef, finished []string) {
	if len(finished) > 0 {
		logger.V(2).Info("Removed namespace from SyncTargets", "syncTargets", targetNames(targets, finished))
	}
}

// reportHeld says, once per episode, that a namespace stays on targets past their grace
// period because it holds persistent data.
func (c *Controller) reportHeld(ctx context.Context, wl *workloadWorkspace, ns *corev1.Namespace, nsKey queueKey, held map[string]string) {
	if !c.setEpisode(episodeFailoverHeld, nsKey, len(held) > 0) || len(held) == 0 {
		return
	}
	keys := make([]string, 0, len(held))
	for k := range held {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	targets := c.targetsByKey()
	c.countDecision(wl.path, ResultFailoverHeld)
	c.eventf(wl, ns, corev1.EventTypeWarning, EventFailoverHeld,
		"Staying on %s: %s. Drain the SyncTarget (spec.evictAfter) to move the namespace anyway, or set statefulFailover: Allowed on the Placement",
		targetNames(targets, keys), held[keys[0]])
	klog.FromContext(ctx).V(2).Info("Keeping a namespace with persistent data on a SyncTarget that is not Ready",
		"syncTargets", targetNames(targets, keys), "reason", held[keys[0]])
}

// Episodes are conditions of a namespace reported once when they begin.
const (
	episodeUnschedulable = "unschedulable"
	episodeFailoverHeld  = "failoverHeld"
	episodeUnevaluable   = "unevaluable"
)

type episode struct {
	kind string
	key  queueKey
}

// setEpisode records whether an episode of kind is going on for a namespace; it reports
// whether that changed.
func (c *Controller) setEpisode(kind string, key queueKey, active bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := episode{kind: kind, key: key}
	if c.episodes[e] == active {
		return false
	}
	if active {
		c.episodes[e] = true
	} else {
		delete(c.episodes, e)
	}
	return true
}

func (c *Controller) clearEpisodes(key queueKey) {
	for _, kind := range []string{episodeUnschedulable, episodeFailoverHeld, episodeUnevaluable} {
		c.setEpisode(kind, key, false)
	}
}
