package placement

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// Event reasons on namespaces.
const (
	EventScheduled     = "Scheduled"
	EventRescheduling  = "Rescheduling"
	EventRescheduled   = "Rescheduled"
	EventUnschedulable = "Unschedulable"
	EventUnscheduled   = "Unscheduled"
	// EventFailoverHeld: the namespace stays on a target past its grace period because it
	// holds persistent data (warning, once per episode).
	EventFailoverHeld = "FailoverHeld"
	// EventPlacementUnevaluable: the namespace keeps its targets because a selector cannot
	// be evaluated (warning, once per episode).
	EventPlacementUnevaluable = "PlacementUnevaluable"
)

// reconcileNamespace brings one namespace in line with the Placement that selects it (or
// with none). It writes at most one metadata patch and returns when to look again if time
// alone can change the outcome.
func (c *Controller) reconcileNamespace(ctx context.Context, key queueKey) (time.Duration, error) {
	logger := klog.FromContext(ctx)
	wl, ok := c.workloadWorkspace(key.workspace)
	if !ok {
		return 0, nil
	}
	ns, err := c.getNamespace(wl, key.name)
	if err != nil {
		return 0, err
	}
	if ns == nil {
		c.clearEpisodes(key)
		logger.V(4).Info("Namespace is gone")
		return 0, nil
	}
	if ns.DeletionTimestamp != nil {
		logger.V(4).Info("Namespace is being deleted, leaving its placement alone")
		return 0, nil
	}
	f := fateOf(sortedPlacements(wl), ns)
	now := c.clock.Now()
	if f.frozen != "" {
		c.keepDecisions(ctx, wl, ns, f.frozen)
		return 0, nil
	}
	if f.placement == nil {
		c.setEpisode(episodeUnevaluable, key, false)
		return c.unschedule(ctx, wl, ns, now)
	}
	return c.schedule(klog.NewContext(ctx, logger.WithValues("placement", f.placement.Name)), wl, ns, f.placement, now)
}

// keepDecisions leaves a namespace exactly as it is because a selector that could change
// its decision cannot be evaluated, and says so once per episode.
func (c *Controller) keepDecisions(ctx context.Context, wl *workloadWorkspace, ns *corev1.Namespace, why string) {
	klog.FromContext(ctx).V(4).Info("Keeping the namespace's SyncTargets: a selector cannot be evaluated", "reason", why)
	if len(touchedKeys(ns)) == 0 || !c.setEpisode(episodeUnevaluable, queueKey{workspace: wl.path, name: ns.Name}, true) {
		return
	}
	c.eventf(wl, ns, corev1.EventTypeWarning, EventPlacementUnevaluable, "Keeping the namespace on its SyncTargets and scheduling nothing new: %s", why)
	klog.FromContext(ctx).V(2).Info("Keeping the namespace's SyncTargets: a selector cannot be evaluated", "reason", why)
}

// schedule keeps, places or moves a namespace selected by p.
func (c *Controller) schedule(ctx context.Context, wl *workloadWorkspace, ns *corev1.Namespace, p *schedulingv1alpha1.Placement, now time.Time) (time.Duration, error) {
	choice := c.chooseLocation(p, now)
	if choice.unevaluable != "" {
		// Which targets are eligible is unknown: judging them would move the namespace.
		c.keepDecisions(ctx, wl, ns, fmt.Sprintf("Placement %s: %s", p.Name, choice.unevaluable))
		return 0, nil
	}
	c.setEpisode(episodeUnevaluable, queueKey{workspace: wl.path, name: ns.Name}, false)
	targets := c.targetsByKey()
	patch := newMetaPatch(ns)
	var next requeueAt

	finished, waiting := c.finishRemovals(wl, ns, patch)

	placed := placedKeys(ns)
	d := scheduleDecision{placedVerdicts: c.judgePlaced(placed, targets, choice, now, &next, c.failoverHold(wl, ns.Name, p))}
	if len(d.valid) == 0 {
		// Decisions are serialised from the load count to the assumed write.
		c.scheduleMu.Lock()
		defer c.scheduleMu.Unlock()
		if candidates := c.candidates(choice, wl.path, ns.Name, touchedKeys(ns), now); len(candidates) > 0 {
			d.placedOn = c.pick(wl.path, ns.Name, choice.path, candidates)
			d.keeper = workloadv1alpha1.SyncTargetKeyOf(d.placedOn, choice.path)
			patch.setLabel(workloadv1alpha1.ClusterResourceStateLabel(d.keeper), workloadv1alpha1.ResourceStateSync)
		}
	} else {
		d.keeper = c.chooseKeeper(wl, ns.Name, d.valid, targets)
	}
	if d.keeper != "" {
		d.released = c.releaseOthers(ctx, wl, ns, d.keeper, placed, targets, patch, now)
	}
	if d.keeper != "" || len(placed) > 0 {
		patch.setAnnotation(schedulingv1alpha1.PlacementAnnotationKey, p.Name)
		setDeletionPolicy(patch, p)
	}

	if !patch.empty() {
		if err := c.patchNamespace(ctx, wl, ns, patch); err != nil {
			return 0, err
		}
	}
	c.reportSchedule(ctx, wl, ns, p, choice, targets, d)
	c.logFinished(klog.FromContext(ctx), targets, finished)
	return next.after(now, waiting && c.objectsLabelledFor != nil), nil
}

// placedVerdicts is the judgement of the targets a namespace is placed on.
type placedVerdicts struct {
	valid, invalid []string
	// why says, by key, why an invalid target is invalid.
	why map[string]string
	// held are the valid targets the namespace stays on only because of its persistent
	// data, with the reason.
	held map[string]string
}

// scheduleDecision is what schedule decided for a namespace.
type scheduleDecision struct {
	placedVerdicts
	// placedOn is the target newly added, nil if none.
	placedOn *workloadv1alpha1.SyncTarget
	// keeper is the key of the target the namespace stays on ("" if none).
	keeper string
	// released are the keys of the targets now marked for removal.
	released []string
}

// judgePlaced judges every target the namespace is placed on; next learns when a verdict
// changes by time alone.
func (c *Controller) judgePlaced(placed []string, targets map[string]targetRef, choice locationChoice, now time.Time, next *requeueAt,
	hold func(*workloadv1alpha1.SyncTarget) string) placedVerdicts {
	out := placedVerdicts{why: map[string]string{}, held: map[string]string{}}
	for _, k := range placed {
		v := c.judge(k, targets, choice, now, hold)
		next.at(v.recheckAt)
		if v.valid {
			out.valid = append(out.valid, k)
			if v.held != "" {
				out.held[k] = v.held
			}
		} else {
			out.invalid = append(out.invalid, k)
			out.why[k] = v.why
		}
	}
	return out
}

// releaseOthers marks every placed target but keeper for removal, make-before-break: only
// once the workloads are ready on keeper. It returns the keys it marked.
func (c *Controller) releaseOthers(ctx context.Context, wl *workloadWorkspace, ns *corev1.Namespace, keeper string, placed []string,
	targets map[string]targetRef, patch *metaPatch, now time.Time) []string {
	var released []string
	for _, k := range placed {
		if k != keeper {
			released = append(released, k)
		}
	}
	if len(released) == 0 {
		return nil
	}
	if ready, notReady := c.workloadsReady(wl, ns.Name, keeper); !ready {
		klog.FromContext(ctx).V(4).Info("Waiting for the workloads on the new SyncTarget before removing the old one",
			"syncTarget", targetName(targets, keeper), "notReady", notReady)
		return nil
	}
	stamp := now.UTC().Format(time.RFC3339)
	for _, k := range released {
		patch.setAnnotation(workloadv1alpha1.DeletionAnnotation(k), stamp)
	}
	return released
}

// reportSchedule records the Events, the decision metric and the log lines of a decision
// that was written, and remembers it for the Placement's status.
func (c *Controller) reportSchedule(ctx context.Context, wl *workloadWorkspace, ns *corev1.Namespace, p *schedulingv1alpha1.Placement,
	choice locationChoice, targets map[string]targetRef, d scheduleDecision) {
	logger := klog.FromContext(ctx)
	nsKey := queueKey{workspace: wl.path, name: ns.Name}
	location := ""
	if choice.location != nil {
		location = choice.location.Name
	}
	switch {
	case d.placedOn != nil && len(d.invalid) > 0:
		c.countDecision(wl.path, ResultRescheduled)
		c.eventf(wl, ns, corev1.EventTypeNormal, EventRescheduling,
			"Moving from %s to SyncTarget %s of Location %s (Placement %s): %s; the old copy is removed once the workloads are ready on %s",
			targetNames(targets, d.invalid), d.placedOn.Name, location, p.Name, d.why[d.invalid[0]], d.placedOn.Name)
		logger.V(2).Info("Rescheduling namespace", "syncTarget", d.placedOn.Name, "from", targetNames(targets, d.invalid), "reason", d.why[d.invalid[0]])
	case d.placedOn != nil:
		c.countDecision(wl.path, ResultScheduled)
		c.eventf(wl, ns, corev1.EventTypeNormal, EventScheduled, "Scheduled on SyncTarget %s of Location %s (Placement %s)", d.placedOn.Name, location, p.Name)
		logger.V(2).Info("Scheduled namespace", "syncTarget", d.placedOn.Name, "location", location)
	case len(d.valid) == 0:
		c.noValidTarget(ctx, wl, ns, nsKey, choice, targets, d.invalid, d.why)
	}
	if d.placedOn != nil || len(d.valid) > 0 {
		c.setEpisode(episodeUnschedulable, nsKey, false)
	}
	c.reportHeld(ctx, wl, ns, nsKey, d.held)
	if d.placedOn != nil {
		c.mu.Lock()
		c.lastScheduled[queueKey{workspace: wl.path, name: p.Name}] = d.keeper
		c.mu.Unlock()
		c.placementQueue.Add(queueKey{workspace: wl.path, name: p.Name})
	}
	if len(d.released) > 0 {
		c.eventf(wl, ns, corev1.EventTypeNormal, EventRescheduled, "Workloads are ready on SyncTarget %s; removing the namespace from %s",
			targetName(targets, d.keeper), targetNames(targets, d.released))
		logger.V(2).Info("Releasing old SyncTargets", "syncTarget", targetName(targets, d.keeper), "released", targetNames(targets, d.released))
	}
}

// chooseKeeper returns the target a namespace with several valid targets keeps: the only
// one, or among those whose workloads are ready the one with the smallest spread hash; ""
// while none is ready (nothing is removed then).
func (c *Controller) chooseKeeper(wl *workloadWorkspace, namespace string, valid []string, targets map[string]targetRef) string {
	if len(valid) == 1 {
		return valid[0]
	}
	best, bestHash := "", uint64(0)
	for _, k := range valid {
		if ready, _ := c.workloadsReady(wl, namespace, k); !ready {
			continue
		}
		h := spreadHash(wl.path, namespace, targets[k].target.Name)
		if best == "" || h < bestHash {
			best, bestHash = k, h
		}
	}
	return best
}

// pick returns the candidate with the fewest namespaces placed on it, ties broken by the
// spread hash. The caller holds scheduleMu.
func (c *Controller) pick(workspace, namespace, path string, candidates []*workloadv1alpha1.SyncTarget) *workloadv1alpha1.SyncTarget {
	var best *workloadv1alpha1.SyncTarget
	bestLoad, bestHash := 0, uint64(0)
	for _, st := range candidates {
		l := c.load(workloadv1alpha1.SyncTargetKeyOf(st, path))
		h := spreadHash(workspace, namespace, st.Name)
		if best == nil || l < bestLoad || (l == bestLoad && h < bestHash) {
			best, bestLoad, bestHash = st, l, h
		}
	}
	return best
}

// noValidTarget reports, once per episode, a namespace that has no valid target and no
// candidate; it stays where it is.
func (c *Controller) noValidTarget(ctx context.Context, wl *workloadWorkspace, ns *corev1.Namespace, nsKey queueKey, choice locationChoice,
	targets map[string]targetRef, invalid []string, why map[string]string) {
	if !c.setEpisode(episodeUnschedulable, nsKey, true) {
		return
	}
	c.countDecision(wl.path, ResultUnschedulable)
	reason := choice.message
	if choice.location != nil {
		reason = fmt.Sprintf("no instance of Location %s is Ready, schedulable, not evicting and accepts the namespace's resource types", choice.location.Name)
	}
	if len(invalid) > 0 {
		c.eventf(wl, ns, corev1.EventTypeWarning, EventUnschedulable, "Staying on %s although %s: %s", targetNames(targets, invalid), why[invalid[0]], reason)
	} else {
		c.eventf(wl, ns, corev1.EventTypeWarning, EventUnschedulable, "No valid SyncTarget: %s", reason)
	}
	klog.FromContext(ctx).V(2).Info("No valid SyncTarget for namespace", "reason", reason, "stayingOn", targetNames(targets, invalid))
}

// patchNamespace writes the label and annotation changes (JSON merge patch of metadata) and
// assumes them until the informer shows them.
func (c *Controller) patchNamespace(ctx context.Context, wl *workloadWorkspace, ns *corev1.Namespace, patch *metaPatch) error {
	body, err := patch.json()
	if err != nil {
		return err
	}
	if _, err := wl.kube.Kube.CoreV1().Namespaces().Patch(ctx, ns.Name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: ControllerName}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("failed to patch namespace %s: %w", ns.Name, err)
	}
	c.assumed.assume(wl.path, ns.Name, patch)
	klog.FromContext(ctx).V(3).Info("Patched namespace", "patch", string(body))
	return nil
}

func (c *Controller) eventf(wl *workloadWorkspace, ns *corev1.Namespace, eventType, reason, format string, args ...any) {
	if wl.recorder != nil {
		wl.recorder.Eventf(ns, eventType, reason, format, args...)
	}
}

// targetName names a target by key for messages.
func targetName(targets map[string]targetRef, key string) string {
	if ref, ok := targets[key]; ok {
		return ref.target.Name
	}
	return "unknown SyncTarget with key " + key
}

func targetNames(targets map[string]targetRef, keys []string) string {
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		names = append(names, targetName(targets, k))
	}
	if len(names) == 1 {
		return "SyncTarget " + names[0]
	}
	return "SyncTargets " + strings.Join(names, ", ")
}

// requeueAt tracks the earliest moment a reconcile must run again.
type requeueAt struct{ t time.Time }

func (r *requeueAt) at(t time.Time) {
	if !t.IsZero() && (r.t.IsZero() || t.Before(r.t)) {
		r.t = t
	}
}

// after returns the delay until the earliest moment (0: none); waitingRemoval adds the
// removal recheck.
func (r *requeueAt) after(now time.Time, waitingRemoval bool) time.Duration {
	if waitingRemoval {
		r.at(now.Add(removalRecheck))
	}
	if r.t.IsZero() {
		return 0
	}
	if d := r.t.Sub(now); d > 0 {
		return d
	}
	// Due now (a clock step between judging and returning): run again right away.
	return time.Nanosecond
}
