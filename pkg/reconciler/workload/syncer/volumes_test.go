package syncer

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	clienttesting "k8s.io/client-go/testing"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

var volumeKey = specKey{workspace: testWorkspace, gvr: persistentVolumesGVR, name: "pv-a"}

func init() { testListKinds[persistentVolumesGVR] = "PersistentVolumeList" }

// upstreamVolume is a pre-provisioned PersistentVolume of testWorkspace bound to claim
// "data" in testNamespace, labelled Sync for this target, with the syncer finalizer.
func upstreamVolume(opts ...objectOption) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "PersistentVolume",
		"metadata": map[string]any{
			"name":            "pv-a",
			"uid":             "upstream-uid-pv-a",
			"resourceVersion": "7",
			"labels":          map[string]any{testStateKey: workloadv1alpha1.ResourceStateSync},
			"finalizers":      []any{testFinalize},
		},
		"spec": map[string]any{
			"capacity":                      map[string]any{"storage": "1Gi"},
			"accessModes":                   []any{"ReadWriteOnce"},
			"persistentVolumeReclaimPolicy": "Retain",
			"nfs":                           map[string]any{"server": "nfs.example", "path": "/exports/a"},
			"claimRef": map[string]any{
				"kind": "PersistentVolumeClaim", "namespace": testNamespace, "name": "data",
				"uid": "upstream-claim-uid", "resourceVersion": "3",
			},
		},
	}}
	for _, o := range opts {
		o(u)
	}
	return u
}

// placedNamespace is testNamespace upstream, placed on this target.
func placedNamespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{testStateKey: workloadv1alpha1.ResourceStateSync}}}
}

// volumeCopy is the downstream copy of the volume of workspace ws, as the syncer writes it.
func volumeCopy(t *testing.T, ws string, opts ...objectOption) *unstructured.Unstructured {
	t.Helper()
	u := upstreamVolume()
	u.SetFinalizers(nil)
	u.SetLabels(map[string]string{workloadv1alpha1.InternalDownstreamClusterLabel: testStKey})
	u.SetUID(types.UID("downstream-uid-pv-a"))
	ann, err := testLocator(ws, testNamespace).MarshalAnnotation()
	if err != nil {
		t.Fatal(err)
	}
	u.SetAnnotations(map[string]string{workloadv1alpha1.NamespaceLocatorAnnotation: ann})
	for _, o := range opts {
		o(u)
	}
	return u
}

// newVolumeEnv is a test env that also accepts persistentvolumes (cluster-scoped), with
// upstreamObjs and downstreamObjs in the caches and clients, and testNamespace placed.
func newVolumeEnv(t *testing.T, upstreamObjs, downstreamObjs, downstreamLiveOnly []*unstructured.Unstructured) *testEnv {
	t.Helper()
	env := newTestEnv(t, testObjects{
		upstreamLiveOnly:   upstreamObjs,
		downstreamLiveOnly: append(append([]*unstructured.Unstructured(nil), downstreamObjs...), downstreamLiveOnly...),
		upstreamNamespaces: []*corev1.Namespace{placedNamespace(testNamespace)},
	})
	e := env.engine
	e.resources[persistentVolumesGVR] = resourceInfo{gvr: persistentVolumesGVR, kind: "PersistentVolume", hasStatus: true, clusterScoped: true}
	env.upstreamCaches[persistentVolumesGVR], env.downstreamCaches[persistentVolumesGVR] = newIndexer(), newIndexer()
	e.upstreamInformers[upstreamInformerKey{workspace: testWorkspace, gvr: persistentVolumesGVR}] = env.handle(env.upstreamCaches[persistentVolumesGVR], persistentVolumesGVR)
	e.downstreamInformers[persistentVolumesGVR] = env.handle(env.downstreamCaches[persistentVolumesGVR], persistentVolumesGVR)
	for _, o := range upstreamObjs {
		if err := env.upstreamCaches[persistentVolumesGVR].Add(o.DeepCopy()); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range downstreamObjs {
		if err := env.downstreamCaches[persistentVolumesGVR].Add(o.DeepCopy()); err != nil {
			t.Fatal(err)
		}
	}
	return env
}

func TestVolumeSyncedDown(t *testing.T) {
	env := newVolumeEnv(t, []*unstructured.Unstructured{upstreamVolume()}, nil, nil)
	if _, err := env.spec.reconcile(t.Context(), volumeKey); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	expectWrites(t, "downstream", env.downstreamDynamic.Actions(), []string{"patch persistentvolumes"})
	patch := findAction[clienttesting.PatchAction](t, env.downstreamDynamic.Actions(), "patch", "persistentvolumes")
	if patch.GetNamespace() != "" {
		t.Errorf("applied in namespace %q, want cluster-wide", patch.GetNamespace())
	}
	applied := decodePatch(t, patch.GetPatch())
	if got := applied.GetLabels()[workloadv1alpha1.InternalDownstreamClusterLabel]; got != testStKey {
		t.Errorf("ownership label %q, want %q", got, testStKey)
	}
	locator, err := workloadv1alpha1.ParseNamespaceLocator(applied.GetAnnotations()[workloadv1alpha1.NamespaceLocatorAnnotation])
	if err != nil || locator != testLocator(testWorkspace, testNamespace) {
		t.Errorf("locator %+v (%v), want %+v", locator, err, testLocator(testWorkspace, testNamespace))
	}
	claimRef, _, _ := unstructured.NestedMap(applied.Object, "spec", "claimRef")
	want := map[string]any{"kind": "PersistentVolumeClaim", "namespace": downstreamNamespaceFor(t, testWorkspace, testNamespace), "name": "data"}
	if len(claimRef) != len(want) || claimRef["namespace"] != want["namespace"] || claimRef["name"] != want["name"] || claimRef["kind"] != want["kind"] {
		t.Errorf("claimRef %v, want %v (uid and resourceVersion dropped)", claimRef, want)
	}
	if policy, _, _ := unstructured.NestedString(applied.Object, "spec", "persistentVolumeReclaimPolicy"); policy != "Retain" {
		t.Errorf("reclaim policy %q, want the owner's Retain", policy)
	}
	if hash, err := transform.Hash(applied); err != nil || applied.GetAnnotations()[transform.SpecHashAnnotation] != hash {
		t.Errorf("spec hash %q does not match the applied object (%s, %v)", applied.GetAnnotations()[transform.SpecHashAnnotation], hash, err)
	}

	// The applied copy in the cache: nothing more to write.
	env2 := newVolumeEnv(t, []*unstructured.Unstructured{upstreamVolume()}, []*unstructured.Unstructured{applied}, nil)
	if _, err := env2.spec.reconcile(t.Context(), volumeKey); err != nil {
		t.Fatalf("second reconcile: %v", err)
	}
	expectWrites(t, "downstream", env2.downstreamDynamic.Actions(), nil)
}

func TestVolumeRefused(t *testing.T) {
	allowHostPath := func() workloadv1alpha1.SyncTargetTenancy {
		return workloadv1alpha1.SyncTargetTenancy{AllowHostPathVolumes: true}
	}
	withoutClaimRef := func(u *unstructured.Unstructured) { unstructured.RemoveNestedField(u.Object, "spec", "claimRef") }
	hostPath := func(u *unstructured.Unstructured) {
		unstructured.RemoveNestedField(u.Object, "spec", "nfs")
		withField(map[string]any{"path": "/var/lib/data"}, "spec", "hostPath")(u)
	}
	local := func(u *unstructured.Unstructured) {
		unstructured.RemoveNestedField(u.Object, "spec", "nfs")
		withField(map[string]any{"path": "/mnt/disks/a"}, "spec", "local")(u)
	}
	tests := []struct {
		name        string
		upstream    []objectOption
		tenancy     func() workloadv1alpha1.SyncTargetTenancy
		wantSynced  bool
		wantMessage string
	}{
		{name: "no claimRef", upstream: []objectOption{withoutClaimRef}, wantMessage: "has no spec.claimRef"},
		{name: "claimRef without namespace", upstream: []objectOption{withField("", "spec", "claimRef", "namespace")}, wantMessage: "has no spec.claimRef"},
		{name: "claimRef to a namespace not placed here", upstream: []objectOption{withField("other", "spec", "claimRef", "namespace")}, wantMessage: "not placed on SyncTarget"},
		{name: "claimRef to a namespace being removed from here", upstream: []objectOption{withField("leaving", "spec", "claimRef", "namespace")}, wantMessage: "not placed on SyncTarget"},
		{name: "claimRef of another kind", upstream: []objectOption{withField("Pod", "spec", "claimRef", "kind")}, wantMessage: "not PersistentVolumeClaim"},
		{name: "hostPath refused", upstream: []objectOption{hostPath}, wantMessage: "allowHostPathVolumes"},
		{name: "local refused", upstream: []objectOption{local}, wantMessage: "allowHostPathVolumes"},
		{name: "hostPath allowed", upstream: []objectOption{hostPath}, tenancy: allowHostPath, wantSynced: true},
		{name: "local allowed", upstream: []objectOption{local}, tenancy: allowHostPath, wantSynced: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := upstreamVolume(append([]objectOption{withoutFinalizer}, tc.upstream...)...)
			env := newVolumeEnv(t, []*unstructured.Unstructured{up}, nil, nil)
			leaving := placedNamespace("leaving")
			leaving.Annotations = map[string]string{workloadv1alpha1.DeletionAnnotation(testStKey): "2026-01-01T00:00:00Z"}
			unplaced := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other", Labels: map[string]string{testStateKey: workloadv1alpha1.ResourceStateUpsync}}}
			for _, ns := range []*corev1.Namespace{leaving, unplaced} {
				if err := env.upstreamNamespaceCache.Add(ns); err != nil {
					t.Fatal(err)
				}
			}
			env.spec.tenancy = tc.tenancy
			_, err := env.spec.reconcile(t.Context(), volumeKey)
			if tc.wantSynced {
				// The first pass adds the finalizer, the second applies.
				if err != nil {
					t.Fatalf("reconcile: %v", err)
				}
				expectWrites(t, "upstream", env.upstreamDynamic.Actions(), []string{"patch persistentvolumes"})
				return
			}
			expectProcessError(t, 0, err, tmc.TMCErrorTypeInvalidResource, false)
			events := env.events()
			expectEvents(t, events, []string{"Warning " + volumeRefusedEventReason})
			if !strings.Contains(strings.Join(events, "\n"), tc.wantMessage) {
				t.Errorf("no event mentions %q: %q", tc.wantMessage, events)
			}
			expectWrites(t, "downstream", env.downstreamDynamic.Actions(), nil)
			expectWrites(t, "upstream", env.upstreamDynamic.Actions(), nil)
		})
	}
}

func TestVolumeCollision(t *testing.T) {
	overwrite := withAnnotation(workloadv1alpha1.ConflictPolicyAnnotation, string(workloadv1alpha1.ConflictPolicyOverwrite))
	unowned := func(u *unstructured.Unstructured) { u.SetLabels(nil) }
	tests := []struct {
		name        string
		downstream  *unstructured.Unstructured
		inCache     bool // our ownership label: the filtered cache holds it
		wantMessage string
	}{
		{name: "unowned", downstream: volumeCopy(t, testWorkspace, unowned), wantMessage: "does not carry"},
		{name: "another target's", downstream: volumeCopy(t, testWorkspace, withLabel(workloadv1alpha1.InternalDownstreamClusterLabel, otherStKey)), wantMessage: "another SyncTarget owns it"},
		{name: "another workspace's", downstream: volumeCopy(t, "root:org:team-b"), inCache: true, wantMessage: "another workspace's"},
		{name: "ours without a locator", downstream: volumeCopy(t, testWorkspace, func(u *unstructured.Unstructured) { u.SetAnnotations(nil) }), inCache: true, wantMessage: "another workspace's"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cached, live []*unstructured.Unstructured
			if tc.inCache {
				cached = []*unstructured.Unstructured{tc.downstream}
			} else {
				live = []*unstructured.Unstructured{tc.downstream}
			}
			env := newVolumeEnv(t, []*unstructured.Unstructured{upstreamVolume(overwrite)}, cached, live)
			env.spec.targetConflictPolicy = func() workloadv1alpha1.ConflictPolicy { return workloadv1alpha1.ConflictPolicyOverwrite }
			_, err := env.spec.reconcile(t.Context(), volumeKey)
			expectProcessError(t, 0, err, tmc.TMCErrorTypeResourceConflict, false)
			events := env.events()
			expectEvents(t, events, []string{"Warning ResourceConflict"})
			if !strings.Contains(strings.Join(events, "\n"), tc.wantMessage) {
				t.Errorf("no event mentions %q: %q", tc.wantMessage, events)
			}
			expectWrites(t, "downstream", env.downstreamDynamic.Actions(), nil)
		})
	}
}

func TestVolumeRemoval(t *testing.T) {
	tests := []struct {
		name       string
		downstream *unstructured.Unstructured
		wantWrites []string
	}{
		{name: "our copy is deleted", downstream: volumeCopy(t, testWorkspace), wantWrites: []string{"delete persistentvolumes"}},
		{name: "another workspace's copy is never touched", downstream: volumeCopy(t, "root:org:team-b")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newVolumeEnv(t, []*unstructured.Unstructured{upstreamVolume(deleting)}, []*unstructured.Unstructured{tc.downstream}, nil)
			if _, err := env.spec.reconcile(t.Context(), volumeKey); err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			expectWrites(t, "downstream", env.downstreamDynamic.Actions(), tc.wantWrites)
		})
	}
}

func TestVolumeStatusUp(t *testing.T) {
	bound := withField(map[string]any{"phase": "Bound"}, "status")
	tests := []struct {
		name       string
		downstream *unstructured.Unstructured
		wantWrites []string
	}{
		{name: "our copy's status goes up", downstream: volumeCopy(t, testWorkspace, bound), wantWrites: []string{"update persistentvolumes/status"}},
		{name: "a copy naming another target writes nothing", downstream: volumeCopy(t, testWorkspace, bound, func(u *unstructured.Unstructured) {
			loc := workloadv1alpha1.NewNamespaceLocator(testLocationCluster, "west", "west-uid", testClusterName(testWorkspace), testNamespace)
			ann, _ := loc.MarshalAnnotation()
			u.SetAnnotations(map[string]string{workloadv1alpha1.NamespaceLocatorAnnotation: ann})
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newVolumeEnv(t, []*unstructured.Unstructured{upstreamVolume()}, []*unstructured.Unstructured{tc.downstream}, nil)
			if _, err := env.status.reconcile(t.Context(), statusKey{gvr: persistentVolumesGVR, name: "pv-a"}); err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			expectWrites(t, "upstream", env.upstreamDynamic.Actions(), tc.wantWrites)
		})
	}
}

func TestVolumeDownstreamChangeQueuesItsUpstream(t *testing.T) {
	env := newVolumeEnv(t, nil, nil, nil)
	var queued []specKey
	env.engine.events.specChanged = func(key specKey) { queued = append(queued, key) }
	env.engine.events.statusChanged = func(statusKey) {}
	env.engine.downstreamChanged(persistentVolumesGVR, volumeCopy(t, testWorkspace), false)
	if len(queued) != 1 || queued[0] != volumeKey {
		t.Errorf("queued %v, want %v", queued, volumeKey)
	}
}
