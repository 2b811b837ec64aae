package heartbeat

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func TestHeartbeatCondition(t *testing.T) {
	const threshold = time.Minute
	tests := []struct {
		name        string
		last        *time.Time
		zero        bool
		now         time.Time
		wantStatus  metav1.ConditionStatus
		wantReason  string
		wantRequeue time.Duration
	}{
		{name: "never seen", now: t0, wantStatus: metav1.ConditionFalse, wantReason: workloadv1alpha1.ReasonHeartbeatNeverSeen},
		{name: "zero time counts as never seen", zero: true, now: t0, wantStatus: metav1.ConditionFalse, wantReason: workloadv1alpha1.ReasonHeartbeatNeverSeen},
		{name: "fresh heartbeat", last: ptrTime(t0), now: t0, wantStatus: metav1.ConditionTrue, wantReason: workloadv1alpha1.ReasonHeartbeatReceived, wantRequeue: time.Minute},
		{name: "requeue at the remaining time", last: ptrTime(t0), now: t0.Add(20 * time.Second), wantStatus: metav1.ConditionTrue, wantReason: workloadv1alpha1.ReasonHeartbeatReceived, wantRequeue: 40 * time.Second},
		{name: "exactly at the threshold is still healthy", last: ptrTime(t0), now: t0.Add(threshold), wantStatus: metav1.ConditionTrue, wantReason: workloadv1alpha1.ReasonHeartbeatReceived, wantRequeue: time.Nanosecond},
		{name: "one nanosecond past the threshold", last: ptrTime(t0), now: t0.Add(threshold + time.Nanosecond), wantStatus: metav1.ConditionFalse, wantReason: workloadv1alpha1.ReasonErrorHeartbeat},
		{name: "long gone", last: ptrTime(t0), now: t0.Add(24 * time.Hour), wantStatus: metav1.ConditionFalse, wantReason: workloadv1alpha1.ReasonErrorHeartbeat},
		{name: "syncer clock ahead", last: ptrTime(t0.Add(10 * time.Second)), now: t0, wantStatus: metav1.ConditionTrue, wantReason: workloadv1alpha1.ReasonHeartbeatReceived, wantRequeue: 70 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var last *metav1.Time
			if tt.last != nil {
				last = &metav1.Time{Time: *tt.last}
			}
			if tt.zero {
				last = &metav1.Time{}
			}
			got, requeue := heartbeatCondition(last, tt.now, threshold)
			if got.Type != workloadv1alpha1.SyncTargetHeartbeatHealthy || got.Status != tt.wantStatus || got.Reason != tt.wantReason {
				t.Errorf("got %s=%s (%s), want %s (%s)", got.Type, got.Status, got.Reason, tt.wantStatus, tt.wantReason)
			}
			if got.Message == "" {
				t.Errorf("message is empty")
			}
			if requeue != tt.wantRequeue {
				t.Errorf("requeue after %s, want %s", requeue, tt.wantRequeue)
			}
		})
	}
}

// The message of an expired heartbeat must not change while time passes, or every
// reconcile would write.
func TestHeartbeatConditionMessageStableWhileExpired(t *testing.T) {
	last := &metav1.Time{Time: t0}
	a, _ := heartbeatCondition(last, t0.Add(2*time.Minute), time.Minute)
	b, _ := heartbeatCondition(last, t0.Add(time.Hour), time.Minute)
	if a.Message != b.Message {
		t.Errorf("message changed with time: %q vs %q", a.Message, b.Message)
	}
	if !strings.Contains(a.Message, t0.Format(time.RFC3339)) {
		t.Errorf("message %q does not name the last heartbeat", a.Message)
	}
}

func TestHeartbeatReadyCondition(t *testing.T) {
	healthy := metav1.Condition{Type: workloadv1alpha1.SyncTargetHeartbeatHealthy, Status: metav1.ConditionTrue, Reason: workloadv1alpha1.ReasonHeartbeatReceived}
	expired := metav1.Condition{Type: workloadv1alpha1.SyncTargetHeartbeatHealthy, Status: metav1.ConditionFalse, Reason: workloadv1alpha1.ReasonErrorHeartbeat, Message: "No heartbeat"}
	neverSeen := metav1.Condition{Type: workloadv1alpha1.SyncTargetHeartbeatHealthy, Status: metav1.ConditionFalse, Reason: workloadv1alpha1.ReasonHeartbeatNeverSeen}
	syncerReady := func(status metav1.ConditionStatus, reason, msg string) []metav1.Condition {
		return []metav1.Condition{{Type: workloadv1alpha1.SyncTargetSyncerReady, Status: status, Reason: reason, Message: msg}}
	}
	tests := []struct {
		name        string
		heartbeat   metav1.Condition
		existing    []metav1.Condition
		wantStatus  metav1.ConditionStatus
		wantReason  string
		wantMessage string
	}{
		{name: "healthy and syncer ready", heartbeat: healthy, existing: syncerReady(metav1.ConditionTrue, workloadv1alpha1.ReasonSyncerStarted, ""),
			wantStatus: metav1.ConditionTrue, wantReason: workloadv1alpha1.ReasonReady},
		{name: "SyncerReady missing", heartbeat: healthy,
			wantStatus: metav1.ConditionFalse, wantReason: ReasonSyncerNotReady, wantMessage: "not reported"},
		{name: "SyncerReady False", heartbeat: healthy, existing: syncerReady(metav1.ConditionFalse, workloadv1alpha1.ReasonSyncerStarting, "Waiting for caches to sync"),
			wantStatus: metav1.ConditionFalse, wantReason: ReasonSyncerNotReady, wantMessage: "SyncerReady is False (SyncerStarting): Waiting for caches to sync"},
		{name: "SyncerReady Unknown", heartbeat: healthy, existing: syncerReady(metav1.ConditionUnknown, "", ""),
			wantStatus: metav1.ConditionFalse, wantReason: ReasonSyncerNotReady, wantMessage: "SyncerReady is Unknown"},
		{name: "heartbeat expired wins over a stale SyncerReady", heartbeat: expired, existing: syncerReady(metav1.ConditionTrue, workloadv1alpha1.ReasonSyncerStarted, ""),
			wantStatus: metav1.ConditionFalse, wantReason: workloadv1alpha1.ReasonErrorHeartbeat, wantMessage: "No heartbeat"},
		{name: "heartbeat expired and SyncerReady False", heartbeat: expired, existing: syncerReady(metav1.ConditionFalse, workloadv1alpha1.ReasonSyncerStarting, ""),
			wantStatus: metav1.ConditionFalse, wantReason: workloadv1alpha1.ReasonErrorHeartbeat},
		{name: "never seen", heartbeat: neverSeen,
			wantStatus: metav1.ConditionFalse, wantReason: workloadv1alpha1.ReasonHeartbeatNeverSeen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readyCondition(tt.heartbeat, tt.existing)
			if got.Type != workloadv1alpha1.SyncTargetReady || got.Status != tt.wantStatus || got.Reason != tt.wantReason {
				t.Errorf("got %s=%s (%s), want %s (%s)", got.Type, got.Status, got.Reason, tt.wantStatus, tt.wantReason)
			}
			if !strings.Contains(got.Message, tt.wantMessage) {
				t.Errorf("message %q does not contain %q", got.Message, tt.wantMessage)
			}
		})
	}
}

func TestHeartbeatDesiredConditionsTransitionTime(t *testing.T) {
	old := t0.Add(-time.Hour)
	now := t0.Add(10 * time.Second)
	st := syncTarget("st", ptrTime(t0),
		cond(workloadv1alpha1.SyncTargetHeartbeatHealthy, metav1.ConditionTrue, "Stale", old),
		cond(workloadv1alpha1.SyncTargetReady, metav1.ConditionFalse, ReasonSyncerNotReady, old),
		cond(workloadv1alpha1.SyncTargetSyncerReady, metav1.ConditionTrue, workloadv1alpha1.ReasonSyncerStarted, old),
	)
	conds, requeue := desiredConditions(st, now, time.Minute)
	if requeue != 50*time.Second {
		t.Errorf("requeue after %s, want 50s", requeue)
	}
	if len(conds) != 2 || conds[0].Type != workloadv1alpha1.SyncTargetHeartbeatHealthy || conds[1].Type != workloadv1alpha1.SyncTargetReady {
		t.Fatalf("unexpected conditions %+v", conds)
	}
	if !conds[0].LastTransitionTime.Time.Equal(old) {
		t.Errorf("HeartbeatHealthy kept True but lastTransitionTime moved to %s", conds[0].LastTransitionTime)
	}
	if !conds[1].LastTransitionTime.Time.Equal(now) {
		t.Errorf("Ready turned True but lastTransitionTime is %s, want %s", conds[1].LastTransitionTime, now)
	}
	if !conditionsChanged(st.Status.Conditions, conds) {
		t.Errorf("conditionsChanged = false, want true")
	}
	if conditionsChanged(conds, conds) {
		t.Errorf("conditionsChanged of identical conditions = true")
	}
	moved := append([]metav1.Condition(nil), conds...)
	moved[0].LastTransitionTime = metav1.NewTime(t0.Add(time.Hour))
	moved[0].ObservedGeneration = 7
	if conditionsChanged(moved, conds) {
		t.Errorf("conditionsChanged compares lastTransitionTime or observedGeneration")
	}
}
