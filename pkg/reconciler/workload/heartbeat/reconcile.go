package heartbeat

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/klog/v2"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// reconcile brings HeartbeatHealthy and Ready of the SyncTarget name up to date and
// returns when it must be looked at again (0: only on its next change).
func (c *Controller) reconcile(ctx context.Context, name string) (time.Duration, error) {
	logger := klog.FromContext(ctx)

	st, err := c.syncTargetLister.Get(name)
	if apierrors.IsNotFound(err) {
		logger.V(4).Info("SyncTarget is gone")
		c.metrics.forget(name)
		c.forgetWritten(name)
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("failed to get SyncTarget %s: %w", name, err)
	}

	now := c.clock.Now()
	desired, requeueAfter := desiredConditions(st, now, c.threshold)
	heartbeat, ready := desired[0], desired[1]

	if !conditionsChanged(st.Status.Conditions, desired) || c.alreadyWritten(st, desired) {
		logger.V(4).Info("Conditions are up to date", "heartbeatHealthy", heartbeat.Status, "ready", ready.Status)
		c.metrics.setReady(name, ready.Status == metav1.ConditionTrue)
		return requeueAfter, nil
	}

	if err := c.applyConditions(ctx, st, desired); err != nil {
		if apierrors.IsNotFound(err) {
			// Deleted since the cache saw it; the delete event cleans up.
			return 0, nil
		}
		return 0, err
	}
	c.rememberWritten(st, desired)
	logger.V(3).Info("Applied SyncTarget conditions",
		"heartbeatHealthy", heartbeat.Status, "heartbeatReason", heartbeat.Reason,
		"ready", ready.Status, "readyReason", ready.Reason)
	c.metrics.setReady(name, ready.Status == metav1.ConditionTrue)
	c.recordTransition(st, heartbeat)
	return requeueAfter, nil
}

// recordTransition emits the Events (and counts the expiry) of a HeartbeatHealthy change
// that has just been written.
func (c *Controller) recordTransition(st *workloadv1alpha1.SyncTarget, heartbeat metav1.Condition) {
	prev := meta.FindStatusCondition(st.Status.Conditions, workloadv1alpha1.SyncTargetHeartbeatHealthy)
	prevExpired := prev != nil && prev.Status == metav1.ConditionFalse && prev.Reason == workloadv1alpha1.ReasonErrorHeartbeat
	switch {
	case heartbeat.Status == metav1.ConditionFalse && heartbeat.Reason == workloadv1alpha1.ReasonErrorHeartbeat && !prevExpired:
		c.metrics.expired()
		c.recorder.Event(st, corev1.EventTypeWarning, EventReasonHeartbeatMissed,
			heartbeat.Message+"; check that the syncer is running and can reach this workspace")
	case heartbeat.Status == metav1.ConditionTrue && prevExpired:
		c.recorder.Event(st, corev1.EventTypeNormal, EventReasonHeartbeatRecovered,
			"The syncer's heartbeat is back")
	}
}

// applyConditions server-side applies exactly the owned conditions to the status of st,
// guarded by its UID so that a recreated SyncTarget of the same name is not written with
// conditions computed for the old one.
func (c *Controller) applyConditions(ctx context.Context, st *workloadv1alpha1.SyncTarget, conds []metav1.Condition) error {
	obj, err := applyConfiguration(st, conds)
	if err != nil {
		return err
	}
	_, err = c.locationDynamic.Resource(syncTargetsGVR).
		Apply(ctx, st.Name, obj, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}, "status")
	if err != nil {
		return fmt.Errorf("failed to apply status of SyncTarget %s: %w", st.Name, err)
	}
	return nil
}

// applyConfiguration builds the apply body: apiVersion, kind, name, uid and
// status.conditions with only conds in it.
func applyConfiguration(st *workloadv1alpha1.SyncTarget, conds []metav1.Condition) (*unstructured.Unstructured, error) {
	raw, err := json.Marshal(conds)
	if err != nil {
		return nil, fmt.Errorf("failed to marshal conditions: %w", err)
	}
	var list []any
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("failed to convert conditions: %w", err)
	}
	metadata := map[string]any{"name": st.Name}
	if st.UID != "" {
		metadata["uid"] = string(st.UID)
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": workloadv1alpha1.SchemeGroupVersion.String(),
		"kind":       "SyncTarget",
		"metadata":   metadata,
		"status":     map[string]any{"conditions": list},
	}}, nil
}

// alreadyWritten reports whether desired was already applied on top of exactly this
// version of st, i.e. the cache has not caught up with our own write yet.
func (c *Controller) alreadyWritten(st *workloadv1alpha1.SyncTarget, desired []metav1.Condition) bool {
	c.writtenMu.Lock()
	defer c.writtenMu.Unlock()
	w, ok := c.written[st.Name]
	return ok && w.resourceVersion == st.ResourceVersion && !conditionsChanged(w.conditions, desired)
}

func (c *Controller) rememberWritten(st *workloadv1alpha1.SyncTarget, desired []metav1.Condition) {
	c.writtenMu.Lock()
	defer c.writtenMu.Unlock()
	c.written[st.Name] = writtenConditions{resourceVersion: st.ResourceVersion, conditions: slices.Clone(desired)}
}

func (c *Controller) forgetWritten(name string) {
	c.writtenMu.Lock()
	defer c.writtenMu.Unlock()
	delete(c.written, name)
}
