package heartbeat

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const (
	hbType    = workloadv1alpha1.SyncTargetHeartbeatHealthy
	readyType = workloadv1alpha1.SyncTargetReady
)

var syncerReadyTrue = cond(workloadv1alpha1.SyncTargetSyncerReady, metav1.ConditionTrue, workloadv1alpha1.ReasonSyncerStarted, t0.Add(-time.Hour))

// current returns the conditions the controller itself would have written at time at
// for st, to seed "already up to date" cases.
func current(st *workloadv1alpha1.SyncTarget, at time.Time) *workloadv1alpha1.SyncTarget {
	conds, _ := desiredConditions(st, at, time.Minute)
	out := st.DeepCopy()
	for _, c := range conds {
		meta.RemoveStatusCondition(&out.Status.Conditions, c.Type)
		out.Status.Conditions = append(out.Status.Conditions, c)
	}
	return out
}

// withHeartbeat returns st with a heartbeat at at.
func withHeartbeat(st *workloadv1alpha1.SyncTarget, at time.Time) *workloadv1alpha1.SyncTarget {
	out := st.DeepCopy()
	out.Status.LastSyncerHeartbeatTime = &metav1.Time{Time: at}
	return out
}

type wantCond struct {
	status metav1.ConditionStatus
	reason string
	ltt    time.Time
}

func TestHeartbeatReconcile(t *testing.T) {
	old := t0.Add(-time.Hour)
	tests := []struct {
		name        string
		st          *workloadv1alpha1.SyncTarget
		now         time.Time
		wantWrite   bool
		wantHB      wantCond
		wantReady   wantCond
		wantRequeue time.Duration
		wantEvent   string
		wantExpired float64
	}{
		{
			name:      "new healthy target",
			st:        syncTarget("st", ptrTime(t0), syncerReadyTrue),
			now:       t0.Add(20 * time.Second),
			wantWrite: true,
			wantHB:    wantCond{metav1.ConditionTrue, workloadv1alpha1.ReasonHeartbeatReceived, t0.Add(20 * time.Second)},
			wantReady: wantCond{metav1.ConditionTrue, workloadv1alpha1.ReasonReady, t0.Add(20 * time.Second)},
			// Requeued for exactly the expiry: t0+60s.
			wantRequeue: 40 * time.Second,
		},
		{
			name:        "healthy and up to date: no write",
			st:          current(syncTarget("st", ptrTime(t0), syncerReadyTrue), old),
			now:         t0.Add(59 * time.Second),
			wantRequeue: time.Second,
		},
		{
			name:        "healthy → expired",
			st:          current(syncTarget("st", ptrTime(t0), syncerReadyTrue), t0),
			now:         t0.Add(time.Minute + time.Second),
			wantWrite:   true,
			wantHB:      wantCond{metav1.ConditionFalse, workloadv1alpha1.ReasonErrorHeartbeat, t0.Add(time.Minute + time.Second)},
			wantReady:   wantCond{metav1.ConditionFalse, workloadv1alpha1.ReasonErrorHeartbeat, t0.Add(time.Minute + time.Second)},
			wantEvent:   "Warning " + EventReasonHeartbeatMissed,
			wantExpired: 1,
		},
		{
			name: "expired and up to date: no write, no Event, no requeue",
			st:   current(syncTarget("st", ptrTime(t0), syncerReadyTrue), t0.Add(2*time.Minute)),
			now:  t0.Add(time.Hour),
		},
		{
			name:        "recovery",
			st:          withHeartbeat(current(syncTarget("st", ptrTime(old), syncerReadyTrue), t0), t0),
			now:         t0.Add(5 * time.Second),
			wantWrite:   true,
			wantHB:      wantCond{metav1.ConditionTrue, workloadv1alpha1.ReasonHeartbeatReceived, t0.Add(5 * time.Second)},
			wantReady:   wantCond{metav1.ConditionTrue, workloadv1alpha1.ReasonReady, t0.Add(5 * time.Second)},
			wantEvent:   "Normal " + EventReasonHeartbeatRecovered,
			wantRequeue: 55 * time.Second,
		},
		{
			name:      "never seen",
			st:        syncTarget("st", nil),
			now:       t0,
			wantWrite: true,
			wantHB:    wantCond{metav1.ConditionFalse, workloadv1alpha1.ReasonHeartbeatNeverSeen, t0},
			wantReady: wantCond{metav1.ConditionFalse, workloadv1alpha1.ReasonHeartbeatNeverSeen, t0},
		},
		{
			name: "first heartbeat after never seen: no recovery Event",
			st: syncTarget("st", ptrTime(t0), syncerReadyTrue,
				cond(hbType, metav1.ConditionFalse, workloadv1alpha1.ReasonHeartbeatNeverSeen, old),
				cond(readyType, metav1.ConditionFalse, workloadv1alpha1.ReasonHeartbeatNeverSeen, old)),
			now:         t0,
			wantWrite:   true,
			wantHB:      wantCond{metav1.ConditionTrue, workloadv1alpha1.ReasonHeartbeatReceived, t0},
			wantReady:   wantCond{metav1.ConditionTrue, workloadv1alpha1.ReasonReady, t0},
			wantRequeue: time.Minute,
		},
		{
			name: "SyncerReady missing: Ready False, HeartbeatHealthy keeps its transition time",
			st: syncTarget("st", ptrTime(t0),
				cond(hbType, metav1.ConditionTrue, workloadv1alpha1.ReasonHeartbeatReceived, old),
				cond(readyType, metav1.ConditionTrue, workloadv1alpha1.ReasonReady, old)),
			now:         t0,
			wantWrite:   true,
			wantHB:      wantCond{metav1.ConditionTrue, workloadv1alpha1.ReasonHeartbeatReceived, old},
			wantReady:   wantCond{metav1.ConditionFalse, ReasonSyncerNotReady, t0},
			wantRequeue: time.Minute,
		},
		{
			name: "SyncerReady False",
			st: current(syncTarget("st", ptrTime(t0),
				cond(workloadv1alpha1.SyncTargetSyncerReady, metav1.ConditionFalse, workloadv1alpha1.ReasonSyncerStarting, old)), old),
			now:         t0.Add(30 * time.Second),
			wantRequeue: 30 * time.Second,
		},
		{
			name: "message changed only: rewritten with the old transition times",
			st: syncTarget("st", ptrTime(t0), syncerReadyTrue,
				metav1.Condition{Type: hbType, Status: metav1.ConditionTrue, Reason: workloadv1alpha1.ReasonHeartbeatReceived, Message: "edited", LastTransitionTime: metav1.NewTime(old)},
				metav1.Condition{Type: readyType, Status: metav1.ConditionTrue, Reason: workloadv1alpha1.ReasonReady, Message: "edited", LastTransitionTime: metav1.NewTime(old)}),
			now:         t0,
			wantWrite:   true,
			wantHB:      wantCond{metav1.ConditionTrue, workloadv1alpha1.ReasonHeartbeatReceived, old},
			wantReady:   wantCond{metav1.ConditionTrue, workloadv1alpha1.ReasonReady, old},
			wantRequeue: time.Minute,
		},
		{
			name:        "controller restarted on an already expired target without our conditions",
			st:          syncTarget("st", ptrTime(t0), syncerReadyTrue),
			now:         t0.Add(10 * time.Minute),
			wantWrite:   true,
			wantHB:      wantCond{metav1.ConditionFalse, workloadv1alpha1.ReasonErrorHeartbeat, t0.Add(10 * time.Minute)},
			wantReady:   wantCond{metav1.ConditionFalse, workloadv1alpha1.ReasonErrorHeartbeat, t0.Add(10 * time.Minute)},
			wantEvent:   "Warning " + EventReasonHeartbeatMissed,
			wantExpired: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, time.Minute, tt.st)
			f.clock.SetTime(tt.now)

			requeue, err := f.c.reconcile(t.Context(), tt.st.Name)
			if err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			if requeue != tt.wantRequeue {
				t.Errorf("requeue after %s, want %s", requeue, tt.wantRequeue)
			}
			applies := f.appliesSnapshot()
			if !tt.wantWrite {
				if len(applies) != 0 {
					t.Fatalf("wrote %d times, want no write: %+v", len(applies), applies[0].conditions)
				}
			} else {
				if len(applies) != 1 {
					t.Fatalf("wrote %d times, want 1", len(applies))
				}
				checkCond(t, applies[0].conditions, hbType, tt.wantHB)
				checkCond(t, applies[0].conditions, readyType, tt.wantReady)
			}
			events := f.events()
			switch {
			case tt.wantEvent == "" && len(events) != 0:
				t.Errorf("unexpected Events %q", events)
			case tt.wantEvent != "" && (len(events) != 1 || !strings.HasPrefix(events[0], tt.wantEvent)):
				t.Errorf("Events %q, want one %q", events, tt.wantEvent)
			}
			if got := testutil.ToFloat64(f.c.metrics.expirations); got != tt.wantExpired {
				t.Errorf("%s = %v, want %v", HeartbeatExpirationsMetric, got, tt.wantExpired)
			}
		})
	}
}

func checkCond(t *testing.T, conds []metav1.Condition, condType string, want wantCond) {
	t.Helper()
	c := meta.FindStatusCondition(conds, condType)
	if c == nil {
		t.Errorf("condition %s not applied", condType)
		return
	}
	if c.Status != want.status || c.Reason != want.reason {
		t.Errorf("%s = %s (%s), want %s (%s)", condType, c.Status, c.Reason, want.status, want.reason)
	}
	if c.Message == "" {
		t.Errorf("%s has no message", condType)
	}
	// The apply body carries RFC3339 times, whole seconds.
	if !c.LastTransitionTime.Time.Equal(want.ltt.Truncate(time.Second)) {
		t.Errorf("%s lastTransitionTime = %s, want %s", condType, c.LastTransitionTime.UTC(), want.ltt)
	}
}

// The timeline of one target: the requeue delay always equals the time left, the flip
// happens exactly at expiry, nothing is written in between, and the next heartbeat
// brings it back.
func TestHeartbeatExpiresExactlyAtRequeueTime(t *testing.T) {
	const threshold = time.Minute
	st := syncTarget("st", ptrTime(t0), syncerReadyTrue)
	f := newFixture(t, threshold, st)
	reconcile := func() time.Duration {
		t.Helper()
		d, err := f.c.reconcile(t.Context(), "st")
		if err != nil {
			t.Fatalf("reconcile: %v", err)
		}
		return d
	}

	if d := reconcile(); d != threshold {
		t.Fatalf("first requeue after %s, want %s", d, threshold)
	}
	st = f.applyToCache(st)

	// Some unrelated update 15s later: no write, requeue for the remaining 45s.
	f.clock.Step(15 * time.Second)
	if d := reconcile(); d != 45*time.Second {
		t.Fatalf("requeue after %s, want 45s", d)
	}
	// The requeue fires exactly at expiry: still healthy (now - last == threshold).
	f.clock.Step(45 * time.Second)
	if d := reconcile(); d != time.Nanosecond {
		t.Fatalf("requeue at expiry after %s, want 1ns", d)
	}
	if n := len(f.appliesSnapshot()); n != 1 {
		t.Fatalf("wrote %d times before expiry, want 1", n)
	}
	// Just past expiry it flips.
	f.clock.Step(time.Nanosecond)
	if d := reconcile(); d != 0 {
		t.Fatalf("expired target requeued after %s; it must wait for the next heartbeat", d)
	}
	last := f.lastApply()
	checkCond(t, last.conditions, hbType, wantCond{metav1.ConditionFalse, workloadv1alpha1.ReasonErrorHeartbeat, t0.Add(threshold + time.Nanosecond)})
	checkCond(t, last.conditions, readyType, wantCond{metav1.ConditionFalse, workloadv1alpha1.ReasonErrorHeartbeat, t0.Add(threshold + time.Nanosecond)})
	if ev := f.events(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Warning "+EventReasonHeartbeatMissed) {
		t.Fatalf("Events %q, want one %s", ev, EventReasonHeartbeatMissed)
	}
	st = f.applyToCache(st)
	if testutil.ToFloat64(f.c.metrics.ready.WithLabelValues(testWorkspace, "st")) != 0 {
		t.Errorf("%s = 1 after expiry", SyncTargetReadyMetric)
	}

	// The syncer beats again 30s later.
	f.clock.Step(30 * time.Second)
	beat := st.DeepCopy()
	beat.Status.LastSyncerHeartbeatTime = &metav1.Time{Time: f.clock.Now()}
	beat.ResourceVersion = "beat"
	f.setCached(beat)
	if d := reconcile(); d != threshold {
		t.Fatalf("requeue after recovery after %s, want %s", d, threshold)
	}
	last = f.lastApply()
	checkCond(t, last.conditions, hbType, wantCond{metav1.ConditionTrue, workloadv1alpha1.ReasonHeartbeatReceived, f.clock.Now()})
	if ev := f.events(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Normal "+EventReasonHeartbeatRecovered) {
		t.Fatalf("Events %q, want one %s", ev, EventReasonHeartbeatRecovered)
	}
	if testutil.ToFloat64(f.c.metrics.ready.WithLabelValues(testWorkspace, "st")) != 1 {
		t.Errorf("%s = 0 after recovery", SyncTargetReadyMetric)
	}
	if got := testutil.ToFloat64(f.c.metrics.expirations); got != 1 {
		t.Errorf("%s = %v, want 1", HeartbeatExpirationsMetric, got)
	}
}

func TestHeartbeatApplyBody(t *testing.T) {
	st := syncTarget("st", ptrTime(t0), syncerReadyTrue)
	st.Status.AcceptedResourceCount = 3
	f := newFixture(t, time.Minute, st)
	if _, err := f.c.reconcile(t.Context(), "st"); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	a := f.lastApply()
	if a == nil {
		t.Fatal("nothing applied")
	}
	if a.name != "st" || a.subresource != "status" || a.patchType != types.ApplyPatchType || a.fieldManager != FieldManager || !a.force {
		t.Errorf("apply of %s/%s type %s manager %q force %v; want st/status, apply, %q, force", a.name, a.subresource, a.patchType, a.fieldManager, a.force, FieldManager)
	}
	if a.body["apiVersion"] != "workload.kcp.io/v1alpha1" || a.body["kind"] != "SyncTarget" {
		t.Errorf("apiVersion/kind = %v/%v", a.body["apiVersion"], a.body["kind"])
	}
	md, _ := a.body["metadata"].(map[string]any)
	if md["name"] != "st" || md["uid"] != "uid-st" || len(md) != 2 {
		t.Errorf("metadata = %v, want exactly name and uid", md)
	}
	if len(a.body) != 4 {
		t.Errorf("apply has top-level fields %v, want apiVersion, kind, metadata, status", keys(a.body))
	}
	status, _ := a.body["status"].(map[string]any)
	if len(status) != 1 || status["conditions"] == nil {
		t.Errorf("status = %v, want only conditions", status)
	}
	if len(a.conditions) != 2 || a.conditions[0].Type != hbType || a.conditions[1].Type != readyType {
		t.Errorf("applied conditions %+v, want exactly HeartbeatHealthy and Ready", a.conditions)
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A second reconcile before the informer has seen our write must neither write again nor
// repeat the Event.
func TestHeartbeatNoDuplicateWriteBeforeCacheCatchesUp(t *testing.T) {
	st := current(syncTarget("st", ptrTime(t0), syncerReadyTrue), t0)
	f := newFixture(t, time.Minute, st)
	f.clock.SetTime(t0.Add(2 * time.Minute))
	for range 2 {
		if _, err := f.c.reconcile(t.Context(), "st"); err != nil {
			t.Fatalf("reconcile: %v", err)
		}
	}
	if n := len(f.appliesSnapshot()); n != 1 {
		t.Errorf("wrote %d times, want 1", n)
	}
	if ev := f.events(); len(ev) != 1 {
		t.Errorf("Events %q, want one", ev)
	}
	if got := testutil.ToFloat64(f.c.metrics.expirations); got != 1 {
		t.Errorf("%s = %v, want 1", HeartbeatExpirationsMetric, got)
	}
}

func TestHeartbeatApplyErrors(t *testing.T) {
	gr := workloadv1alpha1.Resource("synctargets")
	tests := []struct {
		name    string
		err     error
		wantErr bool
	}{
		{name: "deleted meanwhile", err: notFound("st")},
		{name: "forbidden", err: apierrors.NewForbidden(gr, "st", nil), wantErr: true},
		{name: "uid precondition conflict", err: apierrors.NewConflict(gr, "st", nil), wantErr: true},
		{name: "server unavailable", err: apierrors.NewServiceUnavailable("down"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, time.Minute, current(syncTarget("st", ptrTime(t0), syncerReadyTrue), t0))
			f.clock.SetTime(t0.Add(2 * time.Minute))
			f.setApplyErr(tt.err)
			_, err := f.c.reconcile(t.Context(), "st")
			if (err != nil) != tt.wantErr {
				t.Fatalf("reconcile error = %v, want error %v", err, tt.wantErr)
			}
			if ev := f.events(); len(ev) != 0 {
				t.Errorf("Events %q after a failed write", ev)
			}
			if got := testutil.ToFloat64(f.c.metrics.expirations); got != 0 {
				t.Errorf("expiry counted after a failed write")
			}
			// Once the write works, the transition is written and reported.
			f.setApplyErr(nil)
			if _, err := f.c.reconcile(t.Context(), "st"); err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			if ev := f.events(); len(ev) != 1 {
				t.Errorf("Events %q after the retry, want one", ev)
			}
		})
	}
}

func TestHeartbeatDeletedSyncTarget(t *testing.T) {
	st := syncTarget("st", ptrTime(t0), syncerReadyTrue)
	f := newFixture(t, time.Minute, st)
	if _, err := f.c.reconcile(t.Context(), "st"); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if n := testutil.CollectAndCount(f.c.metrics.ready); n != 1 {
		t.Fatalf("%d %s series, want 1", n, SyncTargetReadyMetric)
	}
	f.deleteCached(st)
	requeue, err := f.c.reconcile(t.Context(), "st")
	if err != nil || requeue != 0 {
		t.Fatalf("reconcile of a deleted SyncTarget = %s, %v; want 0, nil", requeue, err)
	}
	if n := len(f.appliesSnapshot()); n != 1 {
		t.Errorf("wrote %d times, want 1", n)
	}
	if n := testutil.CollectAndCount(f.c.metrics.ready); n != 0 {
		t.Errorf("%d %s series left for a deleted SyncTarget", n, SyncTargetReadyMetric)
	}
}
