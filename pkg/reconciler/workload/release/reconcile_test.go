package release

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	clienttesting "k8s.io/client-go/testing"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

var syncValue = workloadv1alpha1.ResourceStateSync

func TestFinalizerIsAddedOnce(t *testing.T) {
	env := newTestEnv(t, syncTarget(func(st *workloadv1alpha1.SyncTarget) {
		st.Finalizers = []string{"example.com/other"}
	}, heartbeatAgo(time.Second, true)), nil, nil)
	env.reconcile(t)
	got := patches(t, env.tmc.Actions(), "synctargets")
	want := map[string]any{"metadata": map[string]any{
		"resourceVersion": "7",
		"finalizers":      []any{"example.com/other", workloadv1alpha1.SyncTargetCleanupFinalizer},
	}}
	if !reflect.DeepEqual(got["east"], want) {
		t.Fatalf("finalizer patch %v, want %v", got["east"], want)
	}

	env = newTestEnv(t, syncTarget(heartbeatAgo(time.Second, true)), nil, nil)
	env.reconcile(t)
	if n := env.allWrites(); n != 0 {
		t.Errorf("%d writes for a SyncTarget that has the finalizer, want 0: %v", n, env.tmc.Actions())
	}
}

func TestDeletedSyncTargetWithinGrace(t *testing.T) {
	// Deleted 10s before the grace period ends.
	st := syncTarget(deletedAgo(testGrace - 10*time.Second))
	stamp := st.DeletionTimestamp.UTC().Format(time.RFC3339)
	env := newTestEnv(t, st,
		[]*corev1.Namespace{
			namespace("web", map[string]string{eastLabel: syncValue}, nil),
			namespace("empty", map[string]string{eastLabel: syncValue}, nil),
			namespace("other", map[string]string{westLabel: syncValue}, nil),
		},
		[]*unstructured.Unstructured{
			configMap("web", "held", map[string]string{eastLabel: syncValue}, nil, eastFinalizer),
		})

	// First the namespaces labelled for the target are marked for removal, and nothing
	// else is decided on caches that do not show the marks yet.
	if after := env.reconcile(t); after != writeRecheck {
		t.Errorf("requeue after marking %s, want %s", after, writeRecheck)
	}
	marks := patches(t, env.kube.Actions(), "namespaces")
	wantMark := map[string]any{"metadata": map[string]any{"resourceVersion": "3", "annotations": map[string]any{eastDeletion: stamp}}}
	if len(marks) != 2 || !reflect.DeepEqual(marks["web"], wantMark) || !reflect.DeepEqual(marks["empty"], wantMark) {
		t.Fatalf("marks %v, want %v on web and empty", marks, wantMark)
	}
	if n := writes(env.dynamic.Actions()) + writes(env.tmc.Actions()); n != 0 {
		t.Fatalf("%d object or SyncTarget writes while marking, want 0", n)
	}
	waitFor(t, "the marks in the cache", func() bool {
		return hasKey(env.cachedNamespace("web").Annotations, eastDeletion) && hasKey(env.cachedNamespace("empty").Annotations, eastDeletion)
	})

	// Within the grace period: the syncer's objects are left to it; a namespace none of
	// whose objects holds the key is released; the SyncTarget comes back when the grace
	// period ends.
	env.clearActions()
	if after := env.reconcile(t); after != 10*time.Second {
		t.Errorf("requeue after %s, want the 10s left of the grace period", after)
	}
	if n := writes(env.dynamic.Actions()); n != 0 {
		t.Errorf("%d object writes within the grace period, want 0: %v", n, env.dynamic.Actions())
	}
	released := patches(t, env.kube.Actions(), "namespaces")
	wantRelease := map[string]any{"metadata": map[string]any{
		"resourceVersion": "4", "labels": map[string]any{eastLabel: nil}, "annotations": map[string]any{eastDeletion: nil},
	}}
	if _, ok := released["web"]; ok || len(released) != 1 {
		t.Fatalf("namespaces released %v, want only empty", released)
	}
	if got := released["empty"]; metadataOf(got)["labels"] == nil || !reflect.DeepEqual(metadataOf(got)["annotations"], metadataOf(wantRelease)["annotations"]) {
		t.Errorf("release of empty %v, want label and annotation removed like %v", got, wantRelease)
	}
	if n := writes(env.tmc.Actions()); n != 0 {
		t.Errorf("the SyncTarget was written while objects hold it: %v", env.tmc.Actions())
	}
	if ev := env.events.all(); len(ev) != 0 {
		t.Errorf("Events within the grace period: %v", ev)
	}
}

func TestDeletedSyncTargetReleasedBySyncer(t *testing.T) {
	st := syncTarget(deletedAgo(time.Minute))
	env := newTestEnv(t, st,
		[]*corev1.Namespace{namespace("web", map[string]string{eastLabel: syncValue}, map[string]string{eastDeletion: "2026-03-01T11:59:00Z"})},
		// The syncer released it: only another target's keys are left.
		[]*unstructured.Unstructured{configMap("web", "done", map[string]string{westLabel: syncValue}, nil, westFinalizer)})

	env.reconcile(t)
	if got := patches(t, env.kube.Actions(), "namespaces"); len(got) != 1 || got["web"] == nil {
		t.Fatalf("namespace patches %v, want web released", got)
	}
	if n := writes(env.dynamic.Actions()); n != 0 {
		t.Errorf("objects written although the syncer released them: %v", env.dynamic.Actions())
	}
	waitFor(t, "the released namespace in the cache", func() bool {
		return len(env.c.holdingsFor(stKeyEast).namespaces) == 0
	})
	env.clearActions()
	if after := env.reconcile(t); after != 0 {
		t.Errorf("requeue after %s once released, want none", after)
	}
	want := map[string]any{"metadata": map[string]any{"resourceVersion": "7", "finalizers": nil}}
	if got := patches(t, env.tmc.Actions(), "synctargets"); !reflect.DeepEqual(got["east"], want) {
		t.Errorf("finalizer patch %v, want %v", got["east"], want)
	}
	if ev := env.events.all(); len(ev) != 0 {
		t.Errorf("Events although the syncer released everything: %v", ev)
	}
}

func TestDeletedSyncTargetReleasedAfterGrace(t *testing.T) {
	st := syncTarget(deletedAgo(testGrace + time.Second))
	stamp := st.DeletionTimestamp.UTC().Format(time.RFC3339)
	everything := map[string]string{
		eastDeletion: stamp,
		workloadv1alpha1.SoftFinalizersAnnotation(stKeyEast): "example.com/wait",
		workloadv1alpha1.StatusAnnotation(stKeyEast):         "{}",
		workloadv1alpha1.SpecDiffAnnotation(stKeyEast):       "[]",
		workloadv1alpha1.StatusAnnotation(stKeyWest):         "{}",
	}
	env := newTestEnv(t, st,
		[]*corev1.Namespace{
			namespace("web", map[string]string{eastLabel: syncValue}, map[string]string{eastDeletion: stamp}),
			namespace("by-hand", nil, nil),
		},
		[]*unstructured.Unstructured{
			configMap("web", "both", map[string]string{eastLabel: syncValue, westLabel: syncValue}, everything, eastFinalizer, westFinalizer),
			configMap("by-hand", "labelled", map[string]string{eastLabel: syncValue}, nil, eastFinalizer),
		})

	env.reconcile(t)
	got := patches(t, env.dynamic.Actions(), "configmaps")
	wantBoth := map[string]any{"metadata": map[string]any{
		"resourceVersion": "11",
		"labels":          map[string]any{eastLabel: nil},
		"annotations": map[string]any{
			eastDeletion: nil,
			workloadv1alpha1.SoftFinalizersAnnotation(stKeyEast): nil,
			workloadv1alpha1.StatusAnnotation(stKeyEast):         nil,
			workloadv1alpha1.SpecDiffAnnotation(stKeyEast):       nil,
		},
		"finalizers": []any{westFinalizer},
	}}
	if !reflect.DeepEqual(got["both"], wantBoth) {
		t.Errorf("release of both %v, want %v", got["both"], wantBoth)
	}
	wantLabelled := map[string]any{"metadata": map[string]any{
		"resourceVersion": "11", "labels": map[string]any{eastLabel: nil}, "finalizers": nil,
	}}
	if !reflect.DeepEqual(got["labelled"], wantLabelled) {
		t.Errorf("release of labelled %v, want %v", got["labelled"], wantLabelled)
	}
	// The namespace waits until the cache shows its objects released.
	if ns := patches(t, env.kube.Actions(), "namespaces"); len(ns) != 0 {
		t.Errorf("namespaces released before their objects: %v", ns)
	}
	if n := writes(env.tmc.Actions()); n != 0 {
		t.Errorf("the SyncTarget was written while objects hold it: %v", env.tmc.Actions())
	}
	assertReleaseEvents(t, env.events.all(), []string{"by-hand", "web"}, "was deleted")
	assertReleasedMetric(t, env, ReasonSyncTargetDeleted, "object", 2)

	waitFor(t, "the released objects in the cache", func() bool { return env.heldObjects() == 0 })
	env.clearActions()
	env.reconcile(t)
	if ns := patches(t, env.kube.Actions(), "namespaces"); len(ns) != 1 || ns["web"] == nil {
		t.Fatalf("namespace patches %v, want web released", ns)
	}
	assertReleasedMetric(t, env, ReasonSyncTargetDeleted, "namespace", 1)

	waitFor(t, "the released namespace in the cache", func() bool { return env.c.holdingsFor(stKeyEast).done() })
	env.clearActions()
	env.reconcile(t)
	if got := patches(t, env.tmc.Actions(), "synctargets"); got["east"] == nil || writes(env.kube.Actions())+writes(env.dynamic.Actions()) != 0 {
		t.Errorf("want only the finalizer removed, got SyncTarget %v, kube %v, dynamic %v", got, env.kube.Actions(), env.dynamic.Actions())
	}
}

func TestSilentSyncTarget(t *testing.T) {
	deleting := metav1.NewTime(testNow.Add(-time.Hour))
	namespaces := []*corev1.Namespace{
		namespace("leaving", map[string]string{eastLabel: syncValue}, map[string]string{eastDeletion: "2026-03-01T11:00:00Z"}),
		namespace("staying", map[string]string{eastLabel: syncValue}, nil),
		namespace("empty-leaving", map[string]string{eastLabel: syncValue}, map[string]string{eastDeletion: "2026-03-01T11:00:00Z"}),
	}
	objects := []*unstructured.Unstructured{
		// The namespace's removal, not yet propagated to the object, counts.
		configMap("leaving", "evicted", map[string]string{eastLabel: syncValue}, nil, eastFinalizer),
		// Soft finalizers still delay the removal.
		configMap("leaving", "soft", map[string]string{eastLabel: syncValue},
			map[string]string{eastDeletion: "2026-03-01T11:00:00Z", workloadv1alpha1.SoftFinalizersAnnotation(stKeyEast): "example.com/wait"}, eastFinalizer),
		// Still placed: untouched.
		configMap("staying", "placed", map[string]string{eastLabel: syncValue}, nil, eastFinalizer),
		// Unscheduled by hand on the object.
		configMap("staying", "annotated", map[string]string{eastLabel: syncValue}, map[string]string{eastDeletion: "2026-03-01T11:00:00Z"}, eastFinalizer),
		// Unlabelled, still holding the finalizer.
		configMap("staying", "unlabelled", nil, nil, eastFinalizer),
		// A per-target setting on an object that does not hold the key is not a removal.
		configMap("leaving", "configured", nil, map[string]string{workloadv1alpha1.SpecDiffAnnotation(stKeyEast): "[]"}),
	}
	userDeleted := configMap("staying", "deleted", map[string]string{eastLabel: syncValue}, nil, eastFinalizer)
	userDeleted.SetDeletionTimestamp(&deleting)
	objects = append(objects, userDeleted)

	tests := []struct {
		name       string
		heartbeat  time.Duration // before testNow
		healthy    bool
		wantAfter  time.Duration
		wantObject []string
	}{
		{name: "within threshold + grace nothing is released", heartbeat: testThresh + testGrace - 5*time.Second,
			wantAfter: 5 * time.Second},
		{name: "a condition still healthy releases nothing", heartbeat: testThresh + testGrace + time.Second, healthy: true,
			wantAfter: recheckPeriod},
		{name: "silent beyond threshold + grace: removals asked are released", heartbeat: testThresh + testGrace + time.Second,
			wantAfter: writeRecheck, wantObject: []string{"annotated", "deleted", "evicted", "unlabelled"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, syncTarget(heartbeatAgo(tc.heartbeat, tc.healthy)), namespaces, objects)
			if after := env.reconcile(t); after != tc.wantAfter {
				t.Errorf("requeue after %s, want %s", after, tc.wantAfter)
			}
			got := sets.List(sets.KeySet(patches(t, env.dynamic.Actions(), "configmaps")))
			if strings.Join(got, ",") != strings.Join(tc.wantObject, ",") {
				t.Errorf("released objects %v, want %v", got, tc.wantObject)
			}
			if tc.wantObject == nil {
				if n := env.allWrites(); n != 0 {
					t.Errorf("%d writes, want none", n)
				}
				return
			}
			// Namespaces are released once no object in them holds the key: here only the
			// empty one.
			if ns := patches(t, env.kube.Actions(), "namespaces"); len(ns) != 1 || ns["empty-leaving"] == nil {
				t.Errorf("namespace patches %v, want empty-leaving", ns)
			}
			assertReleaseEvents(t, env.events.all(), []string{"empty-leaving", "leaving", "staying"}, "no heartbeat since")
			assertReleasedMetric(t, env, ReasonSyncerHeartbeatLost, "object", 4)
			assertReleasedMetric(t, env, ReasonSyncerHeartbeatLost, "namespace", 1)
		})
	}
}

func TestSilentSyncTargetNeverSeenCountsFromCreation(t *testing.T) {
	st := syncTarget(func(st *workloadv1alpha1.SyncTarget) {
		st.CreationTimestamp = metav1.NewTime(testNow.Add(-testThresh - testGrace + time.Minute))
	})
	env := newTestEnv(t, st, []*corev1.Namespace{namespace("leaving", map[string]string{eastLabel: syncValue}, map[string]string{eastDeletion: "x"})}, nil)
	if after := env.reconcile(t); after != time.Minute {
		t.Errorf("requeue after %s, want the minute left since creation", after)
	}
	if n := env.allWrites(); n != 0 {
		t.Errorf("%d writes before threshold + grace since creation, want none", n)
	}
}

func TestReleaseConflictIsRetried(t *testing.T) {
	env := newTestEnv(t, syncTarget(deletedAgo(testGrace+time.Second)),
		[]*corev1.Namespace{namespace("web", map[string]string{eastLabel: syncValue}, map[string]string{eastDeletion: "x"})},
		[]*unstructured.Unstructured{
			configMap("web", "a", map[string]string{eastLabel: syncValue}, nil, eastFinalizer),
			configMap("web", "b", map[string]string{eastLabel: syncValue}, nil, eastFinalizer),
		})
	env.dynamic.PrependReactor("patch", "configmaps", func(action clienttesting.Action) (bool, runtime.Object, error) {
		if action.(clienttesting.PatchAction).GetName() == "a" {
			return true, nil, apierrors.NewConflict(configMapsGVR.GroupResource(), "a", nil)
		}
		return false, nil, nil
	})
	_, err := env.c.reconcile(t.Context(), syncTargetKey{workspace: testLocation, name: "east"})
	if !apierrors.IsConflict(err) {
		t.Fatalf("reconcile error %v, want the conflict for the queue's retry rule", err)
	}
	if got := patches(t, env.dynamic.Actions(), "configmaps"); got["b"] == nil {
		t.Errorf("a conflict on one object stopped the others: %v", got)
	}
}

func TestReleaseIsIdempotent(t *testing.T) {
	env := newTestEnv(t, syncTarget(deletedAgo(testGrace+time.Second), func(st *workloadv1alpha1.SyncTarget) { st.Finalizers = nil }),
		[]*corev1.Namespace{namespace("web", map[string]string{westLabel: syncValue}, nil)},
		[]*unstructured.Unstructured{configMap("web", "a", map[string]string{westLabel: syncValue}, nil, westFinalizer)})
	for range 2 {
		env.reconcile(t)
	}
	if n := env.allWrites(); n != 0 {
		t.Errorf("%d writes with nothing to release, want none", n)
	}
}

func assertReleaseEvents(t *testing.T, events []recordedEvent, namespaces []string, why string) {
	t.Helper()
	var got []string
	for _, e := range events {
		if e.eventType != corev1.EventTypeWarning || e.reason != EventReasonReleased {
			t.Errorf("unexpected Event %+v", e)
			continue
		}
		if !strings.Contains(e.message, "copies may remain on the physical cluster") || !strings.Contains(e.message, why) {
			t.Errorf("Event message %q does not say where copies may remain and why (%q)", e.message, why)
		}
		switch e.kind {
		case "Namespace":
			if e.workspace != wsA || !strings.Contains(e.message, "SyncTarget east (location workspace "+testLocation+")") {
				t.Errorf("namespace Event %+v does not name the SyncTarget and its location workspace", e)
			}
			got = append(got, e.name)
		case "SyncTarget":
			if e.workspace != testLocation || e.name != "east" {
				t.Errorf("SyncTarget Event %+v on the wrong object", e)
			}
		}
	}
	if strings.Join(sets.List(sets.New(got...)), ",") != strings.Join(namespaces, ",") {
		t.Errorf("Events on namespaces %v, want %v", got, namespaces)
	}
}

func assertReleasedMetric(t *testing.T, env *testEnv, reason, kind string, want float64) {
	t.Helper()
	got := testutil.ToFloat64(env.metrics.CounterVec(ReleasedMetric).WithLabelValues(reason, kind))
	if got != want {
		t.Errorf("%s{reason=%s,kind=%s} = %v, want %v", ReleasedMetric, reason, kind, got, want)
	}
}
