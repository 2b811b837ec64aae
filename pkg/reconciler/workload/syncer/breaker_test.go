package syncer

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// breakerFixture is a breaker on a fake clock, a settable SyncTarget and synced count.
type breakerFixture struct {
	*deletionBreaker
	clock    time.Time
	synced   int
	st       *workloadv1alpha1.SyncTarget
	recorder *record.FakeRecorder
	metrics  *syncerMetrics
}

func newBreakerFixture(budget DeletionBudget) *breakerFixture {
	f := &breakerFixture{
		clock:    time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		st:       &workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{Name: testSyncTargetName, UID: testSyncTargetUID}},
		recorder: record.NewFakeRecorder(100),
		metrics:  newSyncerMetrics(testSyncTargetName),
	}
	target := syncTarget{workspace: testLocationWorkspace, name: testSyncTargetName, key: testStKey, uid: testSyncTargetUID}
	f.deletionBreaker = newDeletionBreaker(budget, target, func() int { return f.synced }, f.metrics)
	f.now = func() time.Time { return f.clock }
	f.syncTarget = func() *workloadv1alpha1.SyncTarget { return f.st }
	f.recorder = record.NewFakeRecorder(100)
	f.deletionBreaker.recorder = f.recorder
	return f
}

func (f *breakerFixture) advance(d time.Duration) { f.clock = f.clock.Add(d) }

// resumeAt sets the resume annotation.
func (f *breakerFixture) resumeAt(at time.Time) {
	f.st = f.st.DeepCopy()
	f.st.Annotations = map[string]string{workloadv1alpha1.ResumeDeletionsAnnotation: at.Format(time.RFC3339Nano)}
}

func objectDeletion(name, reason string) plannedDeletion {
	return plannedDeletion{workspace: testWorkspace, resource: "configmaps", downstreamNamespace: "ns-1", name: name, reason: reason, objects: 1}
}

// admitMany asks for n distinct deletions named prefix-i and returns how many were admitted.
func (f *breakerFixture) admitMany(t *testing.T, prefix, reason string, n int) int {
	t.Helper()
	admitted := 0
	for i := range n {
		if f.admit(t.Context(), objectDeletion(fmt.Sprintf("%s-%d", prefix, i), reason)) {
			admitted++
		}
	}
	return admitted
}

func (f *breakerFixture) expectCondition(t *testing.T, status metav1.ConditionStatus, reason string, messageParts ...string) {
	t.Helper()
	c := f.condition(t.Context())
	if c.Type != workloadv1alpha1.SyncTargetDeletionsPaused || c.Status != status || c.Reason != reason {
		t.Fatalf("got condition %s=%s (%s: %s), want %s (%s)", c.Type, c.Status, c.Reason, c.Message, status, reason)
	}
	for _, p := range messageParts {
		if !strings.Contains(c.Message, p) {
			t.Errorf("condition message %q does not contain %q", c.Message, p)
		}
	}
}

func (f *breakerFixture) events() []string { return drainEvents(f.recorder) }

func TestBreakerTripsAtTheThreshold(t *testing.T) {
	tests := []struct {
		name         string
		budget       DeletionBudget
		synced       int
		wantAdmitted int
	}{
		{name: "the objects floor on a small target", budget: DeletionBudget{Objects: 10, Percent: 20, Window: time.Minute}, synced: 30, wantAdmitted: 10},
		{name: "the percentage on a large target", budget: DeletionBudget{Objects: 10, Percent: 20, Window: time.Minute}, synced: 200, wantAdmitted: 40},
		{name: "zero budget pauses every object deletion", budget: DeletionBudget{Objects: 0, Percent: 0, Window: time.Minute}, synced: 200, wantAdmitted: 0},
		{name: "a negative objects floor disables the budget", budget: DeletionBudget{Objects: -1, Percent: 20, Window: time.Minute}, synced: 200, wantAdmitted: 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newBreakerFixture(tc.budget)
			f.synced = tc.synced
			if got := f.admitMany(t, "cm", deletionUnscheduled, 100); got != tc.wantAdmitted {
				t.Fatalf("admitted %d of 100 deletions, want %d", got, tc.wantAdmitted)
			}
			if tc.wantAdmitted == 100 {
				f.expectCondition(t, metav1.ConditionFalse, workloadv1alpha1.ReasonDeletionsWithinBudget, "disabled")
				return
			}
			// Tripped: even a small deletion later in the window is held, and so is one
			// after the window: only an operator resumes.
			if f.admit(t.Context(), objectDeletion("late", deletionTargetDeleted)) {
				t.Error("a deletion was admitted while the breaker is tripped")
			}
			f.advance(2 * time.Minute)
			if f.admit(t.Context(), objectDeletion("after-window", deletionUnscheduled)) {
				t.Error("a deletion was admitted after the window, without a resume")
			}
			held := fmt.Sprintf("Held: %d unscheduled, 1 synctarget-deleted", 100-tc.wantAdmitted+1)
			f.expectCondition(t, metav1.ConditionTrue, workloadv1alpha1.ReasonDeletionBudgetExceeded,
				held, fmt.Sprintf("more than %d objects", tc.wantAdmitted), "kubectl tmc workload resume-deletions east")
			if events := f.events(); len(events) != 1 || !strings.HasPrefix(events[0], "Warning DeletionsPaused") {
				t.Errorf("got events %q, want one DeletionsPaused warning", events)
			}
		})
	}
}

func TestBreakerCountsTheSameDeletionOnce(t *testing.T) {
	f := newBreakerFixture(DeletionBudget{Objects: 10, Percent: 0, Window: time.Minute})
	for range 50 {
		if !f.admit(t.Context(), objectDeletion("retried", deletionUnscheduled)) {
			t.Fatal("a deletion asked for again was held")
		}
	}
	// The retried deletion took one of the ten.
	if got := f.admitMany(t, "cm", deletionUnscheduled, 9); got != 9 {
		t.Fatalf("admitted %d of 9 more deletions, want 9", got)
	}
	if f.admit(t.Context(), objectDeletion("one-too-many", deletionUnscheduled)) {
		t.Fatal("the eleventh object was admitted")
	}
	// A deletion admitted before the trip and asked for again (its copy is still going)
	// is not held.
	if !f.admit(t.Context(), objectDeletion("retried", deletionUnscheduled)) {
		t.Error("a deletion admitted before the trip was held when asked again")
	}
}

func TestBreakerWindowSlides(t *testing.T) {
	f := newBreakerFixture(DeletionBudget{Objects: 10, Percent: 0, Window: time.Minute})
	if got := f.admitMany(t, "first", deletionUnscheduled, 10); got != 10 {
		t.Fatalf("admitted %d, want 10", got)
	}
	f.advance(time.Minute)
	if got := f.admitMany(t, "second", deletionUnscheduled, 10); got != 10 {
		t.Fatalf("admitted %d after the window slid, want 10", got)
	}
	f.expectCondition(t, metav1.ConditionFalse, workloadv1alpha1.ReasonDeletionsWithinBudget)
}

func TestBreakerCountsNamespaceObjects(t *testing.T) {
	f := newBreakerFixture(DeletionBudget{Objects: 10, Percent: 0, Window: time.Minute})
	empty := plannedDeletion{workspace: testWorkspace, resource: "namespaces", name: "empty", reason: deletionNamespaceCleanup}
	for i := range 20 {
		empty.name = fmt.Sprintf("empty-%d", i)
		if !f.admit(t.Context(), empty) {
			t.Fatal("an empty namespace's deletion was held: it removes no synced object")
		}
	}
	full := plannedDeletion{workspace: testWorkspace, resource: "namespaces", name: "full", reason: deletionNamespaceCleanup, objects: 11}
	if f.admit(t.Context(), full) {
		t.Fatal("a namespace holding 11 synced objects was admitted on a budget of 10")
	}
	f.expectCondition(t, metav1.ConditionTrue, workloadv1alpha1.ReasonDeletionBudgetExceeded, "Held: 1 namespace-cleanup")
}

func TestBreakerNeverAdmitsLostUntilResumed(t *testing.T) {
	for _, budget := range []DeletionBudget{
		{Objects: 10, Percent: 20, Window: time.Minute},
		{Objects: -1, Window: time.Minute}, // disabled: lost copies still wait
	} {
		t.Run(fmt.Sprintf("objects %d", budget.Objects), func(t *testing.T) {
			f := newBreakerFixture(budget)
			f.synced = 100
			if f.admit(t.Context(), objectDeletion("lost", deletionUpstreamLost)) {
				t.Fatal("an upstream-lost deletion was admitted")
			}
			f.advance(5 * time.Minute)
			if f.admit(t.Context(), objectDeletion("lost", deletionUpstreamLost)) {
				t.Fatal("an upstream-lost deletion was admitted later, without a resume")
			}
			// Other deletions are unaffected by one lost object.
			if !f.admit(t.Context(), objectDeletion("unscheduled", deletionUnscheduled)) {
				t.Fatal("an ordinary deletion was held because of one upstream-lost object")
			}
			f.expectCondition(t, metav1.ConditionTrue, workloadv1alpha1.ReasonUpstreamObjectsLost, "Kept 1 downstream copies", "Held: 1 upstream-lost")
			if events := f.events(); len(events) != 1 || !strings.HasPrefix(events[0], "Warning UpstreamObjectsLost") {
				t.Errorf("got events %q, want one UpstreamObjectsLost warning", events)
			}

			// A resume older than the hold does nothing; a newer one releases it.
			f.resumeAt(f.clock.Add(-10 * time.Minute))
			if f.admit(t.Context(), objectDeletion("lost", deletionUpstreamLost)) {
				t.Fatal("a resume older than the hold released it")
			}
			f.advance(time.Second)
			f.resumeAt(f.clock)
			f.advance(time.Second)
			if !f.admit(t.Context(), objectDeletion("lost", deletionUpstreamLost)) {
				t.Fatal("an upstream-lost deletion held before the resume was not admitted")
			}
			// Asked again while its copy is going (even after the window): still admitted,
			// and counted once.
			f.advance(2 * time.Minute)
			if !f.admit(t.Context(), objectDeletion("lost", deletionUpstreamLost)) {
				t.Fatal("a resumed upstream-lost deletion was held when asked again")
			}
			if got := testutil.ToFloat64(f.metrics.deletionsAdmitted.WithLabelValues(testSyncTargetName, deletionUpstreamLost)); got != 1 {
				t.Errorf("admitted upstream-lost = %v, want 1", got)
			}
			// A lost object first held after the resume needs another one.
			if f.admit(t.Context(), objectDeletion("lost-later", deletionUpstreamLost)) {
				t.Fatal("an upstream-lost deletion held after the resume was admitted")
			}
		})
	}
}

func TestBreakerManyLostObjectsTrip(t *testing.T) {
	f := newBreakerFixture(DeletionBudget{Objects: 10, Percent: 20, Window: time.Minute})
	f.synced = 200
	if got := f.admitMany(t, "lost", deletionUpstreamLost, 200); got != 0 {
		t.Fatalf("admitted %d upstream-lost deletions", got)
	}
	// Asked again, they are not counted again.
	f.admitMany(t, "lost", deletionUpstreamLost, 200)
	f.expectCondition(t, metav1.ConditionTrue, workloadv1alpha1.ReasonDeletionBudgetExceeded, "Held: 200 upstream-lost", "more than 40 objects")
	if f.admit(t.Context(), objectDeletion("unscheduled", deletionUnscheduled)) {
		t.Fatal("an ordinary deletion was admitted while 200 lost objects tripped the breaker")
	}

	f.advance(time.Second)
	f.resumeAt(f.clock)
	f.advance(time.Second)
	f.expectCondition(t, metav1.ConditionFalse, workloadv1alpha1.ReasonDeletionsResumed, "201 held deletions released")
	// Everything held before the resume goes, uncounted: the operator approved it.
	if got := f.admitMany(t, "lost", deletionUpstreamLost, 200); got != 200 {
		t.Fatalf("admitted %d of 200 resumed upstream-lost deletions", got)
	}
	if !f.admit(t.Context(), objectDeletion("unscheduled", deletionUnscheduled)) {
		t.Fatal("the held ordinary deletion was not admitted after the resume")
	}
	// New deletions count in a fresh window.
	if got := f.admitMany(t, "new", deletionUnscheduled, 50); got != 40 {
		t.Fatalf("admitted %d new deletions after the resume, want the budget of 40", got)
	}
	var kinds []string
	for _, e := range f.events() {
		kinds = append(kinds, strings.Join(strings.Fields(e)[:2], " "))
	}
	if got := strings.Join(kinds, ","); got != "Warning UpstreamObjectsLost,Warning DeletionsPaused,Normal DeletionsResumed,Warning DeletionsPaused" {
		t.Errorf("got events %s", got)
	}
}

func TestBreakerResume(t *testing.T) {
	tests := []struct {
		name       string
		resume     func(f *breakerFixture, trippedAt time.Time)
		wantResume bool
	}{
		{name: "newer than the trip", resume: func(f *breakerFixture, trippedAt time.Time) { f.resumeAt(trippedAt.Add(time.Second)) }, wantResume: true},
		{name: "older than the trip", resume: func(f *breakerFixture, trippedAt time.Time) { f.resumeAt(trippedAt.Add(-time.Second)) }},
		{name: "not a time", resume: func(f *breakerFixture, _ time.Time) {
			f.st = f.st.DeepCopy()
			f.st.Annotations = map[string]string{workloadv1alpha1.ResumeDeletionsAnnotation: "yes please"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newBreakerFixture(DeletionBudget{Objects: 10, Percent: 0, Window: time.Minute})
			f.admitMany(t, "cm", deletionUnscheduled, 11)
			trippedAt := f.clock
			f.advance(5 * time.Second)
			tc.resume(f, trippedAt)
			f.advance(5 * time.Second)
			if got := f.admit(t.Context(), objectDeletion("cm-10", deletionUnscheduled)); got != tc.wantResume {
				t.Fatalf("admit of the held deletion after the resume = %v, want %v", got, tc.wantResume)
			}
			if !tc.wantResume {
				f.expectCondition(t, metav1.ConditionTrue, workloadv1alpha1.ReasonDeletionBudgetExceeded)
				return
			}
			f.expectCondition(t, metav1.ConditionFalse, workloadv1alpha1.ReasonDeletionsResumed)
		})
	}
}

func TestBreakerIgnoresAResumeFromTheFuture(t *testing.T) {
	f := newBreakerFixture(DeletionBudget{Objects: 10, Percent: 0, Window: time.Minute})
	// An operator's clock an hour ahead: the resume is seen now and counts as now.
	f.resumeAt(f.clock.Add(time.Hour))
	f.condition(t.Context())
	f.advance(time.Second)
	f.admitMany(t, "cm", deletionUnscheduled, 11)
	f.advance(time.Minute)
	if f.admit(t.Context(), objectDeletion("cm-10", deletionUnscheduled)) {
		t.Fatal("a resume dated in the future released a trip that happened after it was seen")
	}
}

func TestBreakerRestoresATripFromTheCondition(t *testing.T) {
	f := newBreakerFixture(DeletionBudget{Objects: 10, Percent: 0, Window: time.Minute})
	pausedAt := metav1.NewTime(f.clock.Add(-time.Hour))
	f.st.Status.Conditions = []metav1.Condition{{
		Type: workloadv1alpha1.SyncTargetDeletionsPaused, Status: metav1.ConditionTrue,
		Reason: workloadv1alpha1.ReasonDeletionBudgetExceeded, LastTransitionTime: pausedAt,
	}}
	// A restarted syncer does not start over with a fresh budget.
	if f.admit(t.Context(), objectDeletion("cm", deletionUnscheduled)) {
		t.Fatal("a restarted syncer admitted a deletion while its previous run had paused them")
	}
	f.resumeAt(f.clock)
	f.advance(time.Second)
	if !f.admit(t.Context(), objectDeletion("cm", deletionUnscheduled)) {
		t.Fatal("the held deletion was not admitted after the resume")
	}
}

func TestBreakerMetrics(t *testing.T) {
	f := newBreakerFixture(DeletionBudget{Objects: 2, Percent: 0, Window: time.Minute})
	gauge := func(reason string) float64 {
		return testutil.ToFloat64(f.metrics.deletionsHeld.WithLabelValues(testSyncTargetName, reason))
	}
	paused := func() float64 {
		return testutil.ToFloat64(f.metrics.deletionsPaused.WithLabelValues(testSyncTargetName))
	}
	admitted := func(reason string) float64 {
		return testutil.ToFloat64(f.metrics.deletionsAdmitted.WithLabelValues(testSyncTargetName, reason))
	}

	f.admitMany(t, "cm", deletionUnscheduled, 2)
	if paused() != 0 || admitted(deletionUnscheduled) != 2 {
		t.Fatalf("within budget: paused %v, admitted %v; want 0 and 2", paused(), admitted(deletionUnscheduled))
	}
	f.admitMany(t, "more", deletionUnscheduled, 3)
	f.admitMany(t, "lost", deletionUpstreamLost, 4)
	if paused() != 1 || gauge(deletionUnscheduled) != 3 || gauge(deletionUpstreamLost) != 4 || gauge(deletionNamespaceCleanup) != 0 {
		t.Fatalf("tripped: paused %v, held unscheduled %v, lost %v, namespace-cleanup %v; want 1, 3, 4, 0",
			paused(), gauge(deletionUnscheduled), gauge(deletionUpstreamLost), gauge(deletionNamespaceCleanup))
	}
	f.advance(time.Second)
	f.resumeAt(f.clock)
	f.advance(time.Second)
	f.condition(t.Context())
	if paused() != 0 || gauge(deletionUnscheduled) != 0 || gauge(deletionUpstreamLost) != 0 {
		t.Fatalf("resumed: paused %v, held %v/%v; want 0", paused(), gauge(deletionUnscheduled), gauge(deletionUpstreamLost))
	}
	f.admitMany(t, "lost", deletionUpstreamLost, 4)
	if admitted(deletionUpstreamLost) != 4 {
		t.Errorf("admitted upstream-lost %v, want 4", admitted(deletionUpstreamLost))
	}
}

func TestBreakerSignalsTheReporterOncePerTrip(t *testing.T) {
	f := newBreakerFixture(DeletionBudget{Objects: 1, Percent: 0, Window: time.Minute})
	drain := func() int {
		n := 0
		for {
			select {
			case <-f.changed:
				n++
			default:
				return n
			}
		}
	}
	f.admitMany(t, "cm", deletionUnscheduled, 1)
	if n := drain(); n != 0 {
		t.Fatalf("%d wake-ups within budget, want none", n)
	}
	f.admitMany(t, "over", deletionUnscheduled, 1)
	if n := drain(); n != 1 {
		t.Fatalf("%d wake-ups at the trip, want 1", n)
	}
	f.admitMany(t, "held", deletionUnscheduled, 20)
	f.condition(t.Context())
	if n := drain(); n != 0 {
		t.Fatalf("%d wake-ups for further holds, want none: they wait for the next heartbeat", n)
	}
	f.advance(time.Second)
	f.resumeAt(f.clock)
	f.condition(t.Context())
	if n := drain(); n != 1 {
		t.Fatalf("%d wake-ups at the resume, want 1", n)
	}
}

func TestDataPathAsksTheBreaker(t *testing.T) {
	env := newTestEnv(t, testObjects{})
	if env.spec.remover.budget != deletionBudget(env.breaker) || env.namespaces.budget != deletionBudget(env.breaker) {
		t.Fatal("the removals and the namespace cleanup do not ask the mass-deletion breaker")
	}
	target := syncTarget{workspace: testLocationWorkspace, name: testSyncTargetName, key: testStKey, uid: testSyncTargetUID}
	d := newDataPath(target, env.spec.chain, &Config{UpstreamConfig: &rest.Config{Host: "https://upstream.invalid"}}, env.downstreamDynamic, env.downstreamKube,
		env.metrics, env.errors, env.recovery, withDeletionBudget(unlimitedBudget{}))
	t.Cleanup(func() { d.spec.queue.ShutDown(); d.status.queue.ShutDown(); d.namespaces.queue.ShutDown() })
	if d.spec.remover.budget != deletionBudget(unlimitedBudget{}) || d.namespaces.budget != deletionBudget(unlimitedBudget{}) {
		t.Error("withDeletionBudget did not replace the breaker")
	}
	if d.breaker.budget != DefaultDeletionBudget() {
		t.Errorf("a Config without DeletionBudget got %+v, want the defaults", d.breaker.budget)
	}
}
