package heartbeat

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// ReasonSyncerNotReady is the Ready reason when the heartbeat is healthy but the syncer's
// SyncerReady condition is missing, Unknown or False.
const ReasonSyncerNotReady = "SyncerNotReady"

// heartbeatCondition computes HeartbeatHealthy for a heartbeat last seen at last (nil:
// never) at time now. A healthy heartbeat stays healthy up to and including
// last+threshold; requeueAfter is then the time left until it expires (at least 1ns, so
// that a target reconciled exactly at its expiry instant is looked at once more just
// after it). An unhealthy or never-seen heartbeat needs no requeue: only the syncer's next
// heartbeat, an update event, can change it.
//
// A heartbeat time in the future (the syncer's clock ahead of ours) counts as healthy.
func heartbeatCondition(last *metav1.Time, now time.Time, threshold time.Duration) (cond metav1.Condition, requeueAfter time.Duration) {
	cond = metav1.Condition{Type: workloadv1alpha1.SyncTargetHeartbeatHealthy}
	if last == nil || last.IsZero() {
		cond.Status = metav1.ConditionFalse
		cond.Reason = workloadv1alpha1.ReasonHeartbeatNeverSeen
		cond.Message = "No heartbeat has been received from the syncer yet"
		return cond, 0
	}
	expiry := last.Add(threshold)
	if now.After(expiry) {
		cond.Status = metav1.ConditionFalse
		cond.Reason = workloadv1alpha1.ReasonErrorHeartbeat
		// The message must only depend on the heartbeat time, never on now: it is compared
		// to decide whether to write.
		cond.Message = fmt.Sprintf("No heartbeat from the syncer since %s (threshold %s)",
			last.UTC().Format(time.RFC3339), threshold)
		return cond, 0
	}
	cond.Status = metav1.ConditionTrue
	cond.Reason = workloadv1alpha1.ReasonHeartbeatReceived
	cond.Message = fmt.Sprintf("The syncer's heartbeat is within the %s threshold", threshold)
	return cond, max(expiry.Sub(now), time.Nanosecond)
}

// readyCondition summarises heartbeat (as computed by heartbeatCondition) and the
// syncer's SyncerReady condition from existing. The heartbeat comes first: when it is
// missing, SyncerReady is stale and says nothing.
func readyCondition(heartbeat metav1.Condition, existing []metav1.Condition) metav1.Condition {
	cond := metav1.Condition{Type: workloadv1alpha1.SyncTargetReady, Status: metav1.ConditionFalse}
	if heartbeat.Status != metav1.ConditionTrue {
		cond.Reason = heartbeat.Reason
		cond.Message = heartbeat.Message
		return cond
	}
	syncerReady := meta.FindStatusCondition(existing, workloadv1alpha1.SyncTargetSyncerReady)
	switch {
	case syncerReady == nil:
		cond.Reason = ReasonSyncerNotReady
		cond.Message = "The syncer has not reported SyncerReady yet"
	case syncerReady.Status != metav1.ConditionTrue:
		cond.Reason = ReasonSyncerNotReady
		cond.Message = fmt.Sprintf("SyncerReady is %s", syncerReady.Status)
		if syncerReady.Reason != "" {
			cond.Message += " (" + syncerReady.Reason + ")"
		}
		if syncerReady.Message != "" {
			cond.Message += ": " + syncerReady.Message
		}
	default:
		cond.Status = metav1.ConditionTrue
		cond.Reason = workloadv1alpha1.ReasonReady
		cond.Message = "The syncer's heartbeat is healthy and the syncer is ready"
	}
	return cond
}

// desiredConditions returns the conditions this controller owns for st at now, with their
// lastTransitionTime kept from the existing condition when the status did not change,
// and when to look at st again (0: only on its next change).
func desiredConditions(st *workloadv1alpha1.SyncTarget, now time.Time, threshold time.Duration) ([]metav1.Condition, time.Duration) {
	heartbeat, requeueAfter := heartbeatCondition(st.Status.LastSyncerHeartbeatTime, now, threshold)
	ready := readyCondition(heartbeat, st.Status.Conditions)
	conds := []metav1.Condition{heartbeat, ready}
	for i := range conds {
		conds[i].LastTransitionTime = metav1.NewTime(now)
		if prev := meta.FindStatusCondition(st.Status.Conditions, conds[i].Type); prev != nil && prev.Status == conds[i].Status {
			conds[i].LastTransitionTime = prev.LastTransitionTime
		}
	}
	return conds, requeueAfter
}

// conditionsChanged reports whether any of desired differs from its counterpart in
// existing in status, reason or message. lastTransitionTime follows from status and
// observedGeneration is not used, so neither is compared.
func conditionsChanged(existing, desired []metav1.Condition) bool {
	for _, d := range desired {
		e := meta.FindStatusCondition(existing, d.Type)
		if e == nil || e.Status != d.Status || e.Reason != d.Reason || e.Message != d.Message {
			return true
		}
	}
	return false
}
