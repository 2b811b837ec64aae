package release

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clienttesting "k8s.io/client-go/testing"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

var (
	podsGVR              = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	persistentVolumesGVR = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumes"}

	upsyncValue = workloadv1alpha1.ResourceStateUpsync
)

func pod(ns, name string, labels map[string]string, finalizers ...string) *unstructured.Unstructured {
	u := configMap(ns, name, labels, nil, finalizers...)
	u.SetKind("Pod")
	u.SetUID(types.UID("uid-" + name))
	return u
}

func persistentVolume(name string, labels map[string]string, finalizers ...string) *unstructured.Unstructured {
	u := configMap("", name, labels, nil, finalizers...)
	u.SetKind("PersistentVolume")
	return u
}

// deletes returns "resource namespace/name" of every delete action.
func deletes(actions []clienttesting.Action) []string {
	var out []string
	for _, a := range actions {
		if d, ok := a.(clienttesting.DeleteAction); ok {
			entry := d.GetResource().Resource + " " + d.GetNamespace() + "/" + d.GetName()
			// No kubelet upstream finishes a graceful deletion: a copy goes at once.
			if grace := d.GetDeleteOptions().GracePeriodSeconds; grace == nil || *grace != 0 {
				entry += " (with grace)"
			}
			out = append(out, entry)
		}
	}
	return out
}

// TestDeletedSyncTargetDeletesUpsyncedObjects: past the grace period the upsynced objects
// of the deleted target (found by live lists: pods and volumes are not cached) lose the
// syncer finalizer and are deleted; another target's upsynced pod is not touched; a Sync
// object is released, not deleted.
func TestDeletedSyncTargetDeletesUpsyncedObjects(t *testing.T) {
	st := syncTarget(deletedAgo(testGrace + time.Second))
	env := newTestEnv(t, st, []*corev1.Namespace{namespace("web", nil, nil)},
		[]*unstructured.Unstructured{
			pod("web", "up", map[string]string{eastLabel: upsyncValue}, eastFinalizer, "example.com/keep"),
			pod("web", "west-up", map[string]string{westLabel: upsyncValue}, westFinalizer),
			persistentVolume("pv-up", map[string]string{eastLabel: upsyncValue}, eastFinalizer),
			configMap("web", "synced", map[string]string{eastLabel: syncValue}, nil, eastFinalizer),
		})
	env.reconcile(t)

	gotDeletes := strings.Join(deletes(env.dynamic.Actions()), ",")
	if want := "persistentvolumes /pv-up,pods web/up"; gotDeletes != want {
		t.Errorf("deleted %q, want %q", gotDeletes, want)
	}
	podPatches := patches(t, env.dynamic.Actions(), "pods")
	if len(podPatches) != 1 || podPatches["up"] == nil {
		t.Fatalf("pod patches %v, want only up's finalizer", podPatches)
	}
	meta := metadataOf(podPatches["up"])
	if fin, _ := meta["finalizers"].([]any); len(fin) != 1 || fin[0] != "example.com/keep" || meta["resourceVersion"] != "11" {
		t.Errorf("finalizer patch of up %v, want the syncer finalizer gone with the resourceVersion precondition", podPatches["up"])
	}
	if _, ok := meta["labels"]; ok {
		t.Errorf("the upsynced pod was released (labels patched) instead of deleted: %v", podPatches["up"])
	}
	if cm := patches(t, env.dynamic.Actions(), "configmaps"); cm["synced"] == nil {
		t.Errorf("the Sync ConfigMap was not released: %v", cm)
	}
	assertReleasedMetric(t, env, ReasonSyncTargetDeleted, "upsynced", 2)
	assertReleasedMetric(t, env, ReasonSyncTargetDeleted, "object", 1)
	assertReleaseEvents(t, env.events.all(), []string{"web"}, "was deleted")
	found := false
	for _, e := range env.events.all() {
		found = found || (e.kind == "SyncTarget" && strings.Contains(e.message, "deleted 2 upsynced objects"))
	}
	if !found {
		t.Errorf("no SyncTarget Event counts the deleted upsynced objects: %+v", env.events.all())
	}
}

// TestUpsyncedObjectsKeepFinalizerWithinGrace: within the grace period an upsynced pod of
// the deleted target is the syncer's to remove: it keeps the SyncTarget's finalizer and is
// neither deleted nor released by the controller.
func TestUpsyncedObjectsKeepFinalizerWithinGrace(t *testing.T) {
	env := newTestEnv(t, syncTarget(deletedAgo(time.Second)), nil,
		[]*unstructured.Unstructured{pod("web", "up", map[string]string{eastLabel: upsyncValue}, eastFinalizer)})
	env.reconcile(t)
	if n := env.allWrites(); n != 0 {
		t.Errorf("%d writes within the grace period, want none: tmc %v, dynamic %v", n, env.tmc.Actions(), env.dynamic.Actions())
	}
}

// TestSilentSyncTargetKeepsUpsyncedObjects: a silent syncer's upsynced pod with its
// finalizer is not a removal (it carries no Sync label by design) and stays; one in a
// namespace removed from the target is deleted; a terminating one loses the finalizer and
// its deletion is finished without grace (no kubelet upstream would ever finish it).
func TestSilentSyncTargetKeepsUpsyncedObjects(t *testing.T) {
	st := syncTarget(heartbeatAgo(testThresh+testGrace+time.Second, false))
	terminating := pod("web", "terminating", map[string]string{eastLabel: upsyncValue}, eastFinalizer)
	ts := metav1.NewTime(testNow.Add(-time.Hour))
	terminating.SetDeletionTimestamp(&ts)
	env := newTestEnv(t, st, []*corev1.Namespace{
		namespace("web", map[string]string{eastLabel: syncValue}, nil),
		namespace("gone", map[string]string{eastLabel: syncValue}, map[string]string{eastDeletion: testNow.Add(-time.Hour).Format(time.RFC3339)}),
	}, []*unstructured.Unstructured{
		pod("web", "placed", map[string]string{eastLabel: upsyncValue}, eastFinalizer),
		pod("gone", "evicted", map[string]string{eastLabel: upsyncValue}, eastFinalizer),
		terminating,
	})
	env.reconcile(t)
	if got, want := strings.Join(deletes(env.dynamic.Actions()), ","), "pods gone/evicted,pods web/terminating"; got != want {
		t.Errorf("deleted %q, want %q", got, want)
	}
	got := patches(t, env.dynamic.Actions(), "pods")
	if len(got) != 2 || got["evicted"] == nil || got["terminating"] == nil {
		t.Errorf("pod patches %v, want the finalizers of evicted and terminating only", got)
	}
}
