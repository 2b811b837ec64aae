package release

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clienttesting "k8s.io/client-go/testing"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// widgetsGVR is a type outside the tmc-controller's --resources (the defaults in the
// tests): the object caches do not cover it.
var widgetsGVR = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}

func widget(ns, name string, labels map[string]string, finalizers ...string) *unstructured.Unstructured {
	u := configMap(ns, name, labels, nil, finalizers...)
	u.SetAPIVersion("example.com/v1")
	u.SetKind("Widget")
	return u
}

// syncingWidgets makes the SyncTarget's syncer report widgets as synced.
func syncingWidgets(st *workloadv1alpha1.SyncTarget) {
	st.Status.SyncedResources = append(st.Status.SyncedResources, workloadv1alpha1.SyncedResource{
		ResourceToSync: workloadv1alpha1.ResourceToSync{Group: "example.com", Resource: "widgets"},
		Versions:       []string{"v1"}, State: workloadv1alpha1.ResourceStateAccepted,
	})
}

// TestDeletedSyncTargetReleasesUncachedTypes: past the grace period the controller also
// releases the objects of a type its caches do not cover (listed live with the target's
// state label), and keeps its finalizer until they are released.
func TestDeletedSyncTargetReleasesUncachedTypes(t *testing.T) {
	st := syncTarget(deletedAgo(testGrace+time.Second), syncingWidgets)
	env := newTestEnv(t, st, []*corev1.Namespace{namespace("web", nil, nil)},
		[]*unstructured.Unstructured{
			widget("web", "held", map[string]string{eastLabel: syncValue}, eastFinalizer, "example.com/keep"),
			widget("web", "other-target", map[string]string{westLabel: syncValue}, westFinalizer),
		})
	env.reconcile(t)
	got := patches(t, env.dynamic.Actions(), "widgets")
	if len(got) != 1 || got["held"] == nil {
		t.Fatalf("widget patches %v, want held released", got)
	}
	meta := metadataOf(got["held"])
	if fin, _ := meta["finalizers"].([]any); len(fin) != 1 || fin[0] != "example.com/keep" || meta["resourceVersion"] != "11" {
		t.Errorf("release of held %v, want our finalizer gone with the resourceVersion precondition", got["held"])
	}
	if n := writes(env.tmc.Actions()); n != 0 {
		t.Errorf("the SyncTarget was written while a widget held it: %v", env.tmc.Actions())
	}
	assertReleaseEvents(t, env.events.all(), []string{"web"}, "was deleted")

	env.clearActions()
	env.reconcile(t)
	if got := patches(t, env.tmc.Actions(), "synctargets"); got["east"] == nil {
		t.Errorf("the SyncTarget finalizer stays after everything was released: %v", env.tmc.Actions())
	}
}

// TestUncachedListFailureKeepsFinalizer: a live list that fails must not let the SyncTarget
// go as if nothing were held.
func TestUncachedListFailureKeepsFinalizer(t *testing.T) {
	st := syncTarget(deletedAgo(testGrace+time.Second), syncingWidgets)
	env := newTestEnv(t, st, nil, []*unstructured.Unstructured{widget("web", "held", map[string]string{eastLabel: syncValue}, eastFinalizer)})
	env.dynamic.PrependReactor("list", "widgets", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(widgetsGVR.GroupResource(), "", nil)
	})
	if _, err := env.c.reconcile(t.Context(), syncTargetKey{workspace: testLocation, name: "east"}); !apierrors.IsForbidden(err) {
		t.Errorf("reconcile returned %v, want the Forbidden list for the queue's retry rule", err)
	}
	if n := writes(env.tmc.Actions()); n != 0 {
		t.Errorf("the SyncTarget was written on a partial view: %v", env.tmc.Actions())
	}
}

// TestUncachedHoldingsKeepFinalizerWithinGrace: within the grace period, with nothing left
// in the caches, an uncached object still held keeps the SyncTarget's finalizer (the
// syncer may still release it) and is not released by the controller yet.
func TestUncachedHoldingsKeepFinalizerWithinGrace(t *testing.T) {
	env := newTestEnv(t, syncTarget(deletedAgo(time.Second), syncingWidgets), nil,
		[]*unstructured.Unstructured{widget("web", "held", map[string]string{eastLabel: syncValue}, eastFinalizer)})
	env.reconcile(t)
	if n := env.allWrites(); n != 0 {
		t.Errorf("%d writes within the grace period, want none: tmc %v, dynamic %v", n, env.tmc.Actions(), env.dynamic.Actions())
	}
}

// TestSilentSyncTargetReleasesUncachedRemovals: a silent syncer's evicted object of an
// uncached type listed in spec.resources (its version found by discovery) is released;
// one still placed is not.
func TestSilentSyncTargetReleasesUncachedRemovals(t *testing.T) {
	st := syncTarget(heartbeatAgo(testThresh+testGrace+time.Second, false), func(st *workloadv1alpha1.SyncTarget) {
		st.Spec.Resources = []workloadv1alpha1.ResourceToSync{{Group: "example.com", Resource: "widgets"}}
	})
	deleted := widget("web", "deleted", map[string]string{eastLabel: syncValue}, eastFinalizer)
	now := metav1.NewTime(testNow.Add(-time.Hour))
	deleted.SetDeletionTimestamp(&now)
	env := newTestEnv(t, st, []*corev1.Namespace{namespace("web", map[string]string{eastLabel: syncValue}, nil)},
		[]*unstructured.Unstructured{deleted, widget("web", "placed", map[string]string{eastLabel: syncValue}, eastFinalizer)})
	env.kube.Resources = []*metav1.APIResourceList{{GroupVersion: "example.com/v1", APIResources: []metav1.APIResource{{Name: "widgets", Namespaced: true, Kind: "Widget"}}}}
	env.reconcile(t)
	if got := patches(t, env.dynamic.Actions(), "widgets"); len(got) != 1 || got["deleted"] == nil {
		t.Errorf("widget patches %v, want only the deleted one released", got)
	}
}

// TestUncachedListPaginates: every page of the live list counts.
func TestUncachedListPaginates(t *testing.T) {
	st := syncTarget(deletedAgo(testGrace+time.Second), syncingWidgets)
	env := newTestEnv(t, st, nil, nil)
	pages := 0
	env.dynamic.PrependReactor("list", "widgets", func(clienttesting.Action) (bool, runtime.Object, error) {
		pages++
		list := &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "WidgetList"}}
		item := widget("web", "first", map[string]string{eastLabel: syncValue}, eastFinalizer)
		if pages == 1 {
			list.SetContinue("page-2")
		} else {
			item.SetName("second")
		}
		list.Items = []unstructured.Unstructured{*item}
		return true, list, nil
	})
	env.reconcile(t)
	if got := patches(t, env.dynamic.Actions(), "widgets"); len(got) != 2 || pages != 2 {
		t.Errorf("released %v over %d pages, want both pages' widgets", got, pages)
	}
}
