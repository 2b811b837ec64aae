package release

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/klog/v2"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const (
	// recheckPeriod is how often a SyncTarget being released is looked at again for
	// changes the controller is not notified of (annotation-only changes of objects,
	// objects of types resolved late). It only reads caches.
	recheckPeriod = 30 * time.Second
	// writeRecheck is how soon a SyncTarget is looked at again after the controller wrote,
	// should the watch events of its own writes not bring it back first.
	writeRecheck = 2 * time.Second
	// workspaceSyncRecheck is how soon a SyncTarget is looked at again while the caches of
	// a workload workspace bound at runtime fill.
	workspaceSyncRecheck = time.Second
)

// target is the SyncTarget being reconciled.
type target struct {
	// workspace is the location workspace, name the SyncTarget's name, key its key.
	workspace, name, key string
	st                   *workloadv1alpha1.SyncTarget
}

// reconcile runs the phases of one SyncTarget, top to bottom: get (gone: done), the
// finalizer, then either the deletion phases or the silent-syncer phase. It returns when
// to look at the SyncTarget again if time alone can change the outcome.
func (c *Controller) reconcile(ctx context.Context, key syncTargetKey) (time.Duration, error) {
	logger := klog.FromContext(ctx)
	loc := c.locations[key.workspace]
	if loc == nil {
		return 0, nil
	}
	st, err := loc.lister.Get(key.name)
	if apierrors.IsNotFound(err) {
		logger.V(4).Info("SyncTarget is gone")
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("failed to get SyncTarget from cache: %w", err)
	}
	if !c.workloadsSynced() {
		// A workspace bound at runtime is still listing: decide on every cache complete.
		logger.V(4).Info("Waiting for the caches of a workload workspace")
		return workspaceSyncRecheck, nil
	}
	t := target{workspace: key.workspace, name: st.Name, key: workloadv1alpha1.SyncTargetKeyOf(st, key.workspace), st: st}
	now := c.clock.Now()
	if st.DeletionTimestamp == nil {
		if err := c.ensureFinalizer(ctx, loc, st); err != nil {
			return 0, err
		}
		return c.reconcileSilent(ctx, loc, t, now)
	}
	return c.reconcileDelete(ctx, loc, t, now)
}

// reconcileDelete waits for the syncer of a deleted SyncTarget to release its objects,
// releases them itself once the grace period is over, and removes the finalizer when
// nothing upstream carries the target's keys any more.
func (c *Controller) reconcileDelete(ctx context.Context, loc *locationState, t target, now time.Time) (time.Duration, error) {
	logger := klog.FromContext(ctx)
	// Objects must move towards removal, not be labelled again by label propagation, before
	// anything is released: decide on caches that show the marks.
	marked, err := c.markNamespaces(ctx, t)
	if err != nil {
		return 0, err
	}
	if marked {
		return writeRecheck, nil
	}
	h := c.holdingsFor(t.key)
	deadline := t.st.DeletionTimestamp.Add(c.grace)
	pastGrace := !now.Before(deadline)
	// The types the caches do not cover are listed live before the finalizer may go (the
	// caches alone would let it go too early) and once the controller releases everything
	// itself past the grace period; not on every look within it.
	if pastGrace || h.done() {
		if err := c.addUncachedHoldings(ctx, t, &h); err != nil {
			return 0, err
		}
	}
	if h.done() {
		if err := c.removeFinalizer(ctx, loc, t.st); err != nil {
			return 0, err
		}
		return 0, nil
	}
	if !pastGrace {
		// The syncer releases the objects; the namespaces are ours to release.
		released, err := c.releaseNamespaces(ctx, t, h, h.namespaces)
		if err != nil {
			return 0, err
		}
		logger.V(4).Info("Waiting for the syncer to release its objects", "objects", h.held(), "namespaces", len(h.namespaces),
			"releasedNamespaces", released.namespaces, "graceEnds", deadline)
		return min(deadline.Sub(now), recheckPeriod), nil
	}
	why := fmt.Sprintf("the SyncTarget was deleted at %s and its syncer did not release them within %s",
		t.st.DeletionTimestamp.UTC().Format(time.RFC3339), c.grace)
	if err := c.releaseWithoutSyncer(ctx, loc, t, h, h.objects, h.namespaces, ReasonSyncTargetDeleted, why); err != nil {
		return 0, err
	}
	return writeRecheck, nil
}

// reconcileSilent releases what was asked to leave a SyncTarget whose syncer has been
// silent for longer than the heartbeat threshold plus the grace period.
func (c *Controller) reconcileSilent(ctx context.Context, loc *locationState, t target, now time.Time) (time.Duration, error) {
	deadline := silentDeadline(t.st, c.threshold, c.grace)
	healthy := meta.IsStatusConditionTrue(t.st.Status.Conditions, workloadv1alpha1.SyncTargetHeartbeatHealthy)
	switch {
	case now.Before(deadline):
		return deadline.Sub(now), nil
	case healthy:
		// The heartbeat controller has not seen the expiry yet; its write brings the
		// SyncTarget back.
		return recheckPeriod, nil
	}
	h := c.holdingsFor(t.key)
	if err := c.addUncachedHoldings(ctx, t, &h); err != nil {
		return 0, err
	}
	objects := c.evicted(t.key, h.objects)
	namespaces := c.evictedNamespaces(t.key, h.namespaces)
	if len(objects) == 0 && len(namespaces) == 0 {
		return recheckPeriod, nil
	}
	why := fmt.Sprintf("its syncer has sent no heartbeat since %s (heartbeat threshold %s + grace %s)",
		lastSeen(t.st).UTC().Format(time.RFC3339), c.threshold, c.grace)
	if err := c.releaseWithoutSyncer(ctx, loc, t, h, objects, namespaces, ReasonSyncerHeartbeatLost, why); err != nil {
		return 0, err
	}
	return writeRecheck, nil
}

// lastSeen is when the syncer was last heard of: its last heartbeat, or the SyncTarget's
// creation if it never sent one.
func lastSeen(st *workloadv1alpha1.SyncTarget) time.Time {
	if hb := st.Status.LastSyncerHeartbeatTime; hb != nil && !hb.IsZero() {
		return hb.Time
	}
	return st.CreationTimestamp.Time
}

// silentDeadline is when a silent syncer's removals are released without it.
func silentDeadline(st *workloadv1alpha1.SyncTarget, threshold, grace time.Duration) time.Time {
	return lastSeen(st).Add(threshold + grace)
}
