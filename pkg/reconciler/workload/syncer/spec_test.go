package syncer

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	clienttesting "k8s.io/client-go/testing"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

var webKey = specKey{workspace: testWorkspace, gvr: configMapsGVR, upstreamNamespace: testNamespace, name: "web"}

func TestResourceControllerSpec(t *testing.T) {
	dsNS := downstreamNamespaceFor(t, testWorkspace, testNamespace)
	softHold := workloadv1alpha1.SoftFinalizersAnnotation(testStKey)
	removal := workloadv1alpha1.DeletionAnnotation(testStKey)

	tests := []struct {
		name string
		objs func(t *testing.T) testObjects
		key  *specKey // webKey when nil

		wantErrType          tmc.TMCErrorType
		wantRequeue          bool
		wantUpstreamWrites   []string
		wantDownstreamWrites []string
		wantKubeWrites       []string
		wantEvents           []string
		check                func(t *testing.T, env *testEnv)
	}{
		{
			name: "new upstream object: finalizer first, nothing downstream",
			objs: func(t *testing.T) testObjects {
				return testObjects{upstream: []*unstructured.Unstructured{upstreamConfigMap("web", withoutFinalizer)}}
			},
			wantUpstreamWrites: []string{"patch configmaps"},
			check: func(t *testing.T, env *testEnv) {
				if n := len(env.downstreamDynamic.Actions()) + len(env.downstreamKube.Actions()); n != 0 {
					t.Errorf("got %d downstream requests before the finalizer is in place, want none", n)
				}
				patch := expectMetadataPatch(t, env.upstreamDynamic.Actions(), "configmaps", "", "7")
				if got := patch.GetFinalizers(); !slices.Equal(got, []string{testFinalize}) {
					t.Errorf("the patch sets finalizers %q, want %q", got, testFinalize)
				}
				if got := liveUpstream(t, env, configMapsGVR, "web").GetFinalizers(); !slices.Equal(got, []string{testFinalize}) {
					t.Errorf("got finalizers %q, want %q", got, testFinalize)
				}
			},
		},
		{
			name: "finalizer present, namespace missing: namespace created and object applied",
			objs: func(t *testing.T) testObjects {
				return testObjects{upstream: []*unstructured.Unstructured{upstreamConfigMap("web",
					withFinalizers("example.com/keep", testFinalize),
					withField([]any{map[string]any{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u"}}, "metadata", "ownerReferences"),
					withAnnotation(workloadv1alpha1.StatusAnnotation(otherStKey), `{"x":1}`))}}
			},
			wantDownstreamWrites: []string{"patch configmaps"},
			wantKubeWrites:       []string{"create namespaces"},
			check: func(t *testing.T, env *testEnv) {
				create := findAction[clienttesting.CreateActionImpl](t, env.downstreamKube.Actions(), "create", "namespaces")
				ns := create.GetObject().(*corev1.Namespace)
				if ns.Name != dsNS {
					t.Errorf("created namespace %q, want %q", ns.Name, dsNS)
				}
				if got := ns.Labels[workloadv1alpha1.InternalDownstreamClusterLabel]; got != testStKey {
					t.Errorf("namespace ownership label is %q, want %q", got, testStKey)
				}
				loc, err := workloadv1alpha1.ParseNamespaceLocator(ns.Annotations[workloadv1alpha1.NamespaceLocatorAnnotation])
				if err != nil || loc != testLocator(testWorkspace, testNamespace) {
					t.Errorf("namespace locator is %+v (%v), want %+v", loc, err, testLocator(testWorkspace, testNamespace))
				}

				patch := findAction[clienttesting.PatchActionImpl](t, env.downstreamDynamic.Actions(), "patch", "configmaps")
				if patch.GetPatchType() != types.ApplyPatchType || patch.PatchOptions.FieldManager != FieldManager ||
					patch.PatchOptions.Force == nil || !*patch.PatchOptions.Force {
					t.Errorf("got %s patch with options %+v, want a forced apply by %s", patch.GetPatchType(), patch.PatchOptions, FieldManager)
				}
				if patch.GetNamespace() != dsNS || patch.GetName() != "web" {
					t.Errorf("applied %s/%s, want %s/web", patch.GetNamespace(), patch.GetName(), dsNS)
				}
				applied := decodePatch(t, patch.GetPatch())
				labels, ann := applied.GetLabels(), applied.GetAnnotations()
				if _, ok := labels[testStateKey]; ok {
					t.Errorf("the state label must not go downstream: %v", labels)
				}
				if labels[workloadv1alpha1.InternalDownstreamClusterLabel] != testStKey || labels["app"] != "web" {
					t.Errorf("got labels %v, want the ownership label and app=web", labels)
				}
				if ann[transform.SpecHashAnnotation] == "" {
					t.Errorf("missing spec-hash annotation: %v", ann)
				}
				if len(ann) != 1 {
					t.Errorf("kcp and per-target annotations must be removed, got %v", ann)
				}
				for _, f := range [][]string{{"metadata", "uid"}, {"metadata", "resourceVersion"}, {"metadata", "finalizers"}, {"metadata", "ownerReferences"}, {"status"}} {
					if _, found, _ := unstructured.NestedFieldNoCopy(applied.Object, f...); found {
						t.Errorf("the applied object must not carry %v", f)
					}
				}
				if applied.GetNamespace() != dsNS {
					t.Errorf("applied object namespace is %q, want %q", applied.GetNamespace(), dsNS)
				}
				if v, _, _ := unstructured.NestedString(applied.Object, "data", "key"); v != "value" {
					t.Errorf("data.key is %q, want value", v)
				}
			},
		},
		{
			name: "downstream up to date: no write on either side",
			objs: func(t *testing.T) testObjects {
				up := upstreamConfigMap("web")
				return testObjects{
					upstream:   []*unstructured.Unstructured{up},
					downstream: []*unstructured.Unstructured{syncedCopy(t, up, withField("kube-root-ca", "metadata", "labels", "added-by-downstream"))},
					namespaces: []*corev1.Namespace{ownedNamespace(t)},
				}
			},
			check: func(t *testing.T, env *testEnv) {
				if got := testutil.ToFloat64(env.metrics.skippedWrites.WithLabelValues(testSyncTargetName, directionDown)); got != 1 {
					t.Errorf("got %v skipped writes, want 1", got)
				}
			},
		},
		{
			name: "downstream drifted: one apply",
			objs: func(t *testing.T) testObjects {
				up := upstreamConfigMap("web")
				return testObjects{
					upstream:   []*unstructured.Unstructured{up},
					downstream: []*unstructured.Unstructured{syncedCopy(t, up, withField("edited", "data", "key"))},
					namespaces: []*corev1.Namespace{ownedNamespace(t)},
				}
			},
			wantDownstreamWrites: []string{"patch configmaps"},
			check: func(t *testing.T, env *testEnv) {
				patch := findAction[clienttesting.PatchActionImpl](t, env.downstreamDynamic.Actions(), "patch", "configmaps")
				if v, _, _ := unstructured.NestedString(decodePatch(t, patch.GetPatch()).Object, "data", "key"); v != "value" {
					t.Errorf("the apply must restore data.key=value, got %q", v)
				}
			},
		},
		{
			name: "upstream changed (stale spec hash): one apply",
			objs: func(t *testing.T) testObjects {
				up := upstreamConfigMap("web")
				return testObjects{
					upstream:   []*unstructured.Unstructured{up},
					downstream: []*unstructured.Unstructured{syncedCopy(t, up, withAnnotation(transform.SpecHashAnnotation, "0000000000000000"))},
					namespaces: []*corev1.Namespace{ownedNamespace(t)},
				}
			},
			wantDownstreamWrites: []string{"patch configmaps"},
		},
		{
			name: "pre-existing downstream object without ownership label: conflict, untouched",
			objs: func(t *testing.T) testObjects {
				up := upstreamConfigMap("web")
				foreign := syncedCopy(t, up)
				foreign.SetLabels(map[string]string{"app": "theirs"})
				return testObjects{
					upstream:           []*unstructured.Unstructured{up},
					downstreamLiveOnly: []*unstructured.Unstructured{foreign},
					namespaces:         []*corev1.Namespace{ownedNamespace(t)},
				}
			},
			wantErrType: tmc.TMCErrorTypeResourceConflict,
			wantEvents:  []string{"Warning ResourceConflict"},
			check: func(t *testing.T, env *testEnv) {
				if got := testutil.ToFloat64(env.metrics.conflicts.WithLabelValues(testSyncTargetName, testWorkspace, "configmaps/v1")); got != 1 {
					t.Errorf("got %v conflicts counted, want 1", got)
				}
			},
		},
		{
			name: "downstream copy still terminating: wait, do not re-create",
			objs: func(t *testing.T) testObjects {
				up := upstreamConfigMap("web")
				return testObjects{
					upstream:   []*unstructured.Unstructured{up},
					downstream: []*unstructured.Unstructured{syncedCopy(t, up, deleting, withField("edited", "data", "key"))},
					namespaces: []*corev1.Namespace{ownedNamespace(t)},
				}
			},
			wantRequeue: true,
		},
		{
			name: "upstream deleted, downstream exists: downstream deleted, finalizer kept",
			objs: func(t *testing.T) testObjects {
				up := upstreamConfigMap("web", deleting)
				return testObjects{
					upstream:   []*unstructured.Unstructured{up},
					downstream: []*unstructured.Unstructured{syncedCopy(t, up)},
					namespaces: []*corev1.Namespace{ownedNamespace(t)},
				}
			},
			wantRequeue:          true,
			wantDownstreamWrites: []string{"delete configmaps"},
			check:                expectDownstreamDeleteWithUID,
		},
		{
			name: "upstream deleted, downstream gone: finalizer removed",
			objs: func(t *testing.T) testObjects {
				return testObjects{upstream: []*unstructured.Unstructured{upstreamConfigMap("web", deleting, withFinalizers("example.com/keep", testFinalize))}}
			},
			wantUpstreamWrites: []string{"patch configmaps"},
			check: func(t *testing.T, env *testEnv) {
				expectMetadataPatch(t, env.upstreamDynamic.Actions(), "configmaps", "", "7")
				if got := liveUpstream(t, env, configMapsGVR, "web").GetFinalizers(); !slices.Equal(got, []string{"example.com/keep"}) {
					t.Errorf("got finalizers %q, want only example.com/keep", got)
				}
			},
		},
		{
			name: "upstream deleted, finalizer already released: nothing to do",
			objs: func(t *testing.T) testObjects {
				return testObjects{upstream: []*unstructured.Unstructured{upstreamConfigMap("web", deleting, withFinalizers("example.com/keep"))}}
			},
		},
		{
			name: "per-target removal held by a soft finalizer: downstream kept",
			objs: func(t *testing.T) testObjects {
				up := upstreamConfigMap("web", withAnnotation(removal, "2026-01-01T00:00:00Z"), withAnnotation(softHold, "example.com/drain"))
				return testObjects{
					upstream:   []*unstructured.Unstructured{up},
					downstream: []*unstructured.Unstructured{syncedCopy(t, up)},
					namespaces: []*corev1.Namespace{ownedNamespace(t)},
				}
			},
		},
		{
			name: "per-target removal without soft finalizer: downstream deleted",
			objs: func(t *testing.T) testObjects {
				up := upstreamConfigMap("web", withAnnotation(removal, "2026-01-01T00:00:00Z"), withAnnotation(softHold, " , "))
				return testObjects{
					upstream:   []*unstructured.Unstructured{up},
					downstream: []*unstructured.Unstructured{syncedCopy(t, up)},
					namespaces: []*corev1.Namespace{ownedNamespace(t)},
				}
			},
			wantRequeue:          true,
			wantDownstreamWrites: []string{"delete configmaps"},
			check:                expectDownstreamDeleteWithUID,
		},
		{
			name: "per-target removal, downstream gone: upstream released for this target",
			objs: func(t *testing.T) testObjects {
				return testObjects{upstream: []*unstructured.Unstructured{upstreamConfigMap("web",
					withAnnotation(removal, "2026-01-01T00:00:00Z"),
					withAnnotation(workloadv1alpha1.StatusAnnotation(testStKey), `{}`),
					withLabel(workloadv1alpha1.ClusterResourceStateLabel(otherStKey), workloadv1alpha1.ResourceStateSync))}}
			},
			wantUpstreamWrites: []string{"patch configmaps"},
			check: func(t *testing.T, env *testEnv) {
				expectMetadataPatch(t, env.upstreamDynamic.Actions(), "configmaps", "", "7")
				obj := liveUpstream(t, env, configMapsGVR, "web")
				if len(obj.GetFinalizers()) != 0 {
					t.Errorf("got finalizers %q, want none", obj.GetFinalizers())
				}
				if _, ok := obj.GetLabels()[testStateKey]; ok {
					t.Errorf("this target's state label must be removed: %v", obj.GetLabels())
				}
				if obj.GetLabels()[workloadv1alpha1.ClusterResourceStateLabel(otherStKey)] != workloadv1alpha1.ResourceStateSync {
					t.Errorf("another target's state label must be kept: %v", obj.GetLabels())
				}
				if want := map[string]string{logicalcluster.AnnotationKey: testWorkspace}; !maps.Equal(obj.GetAnnotations(), want) {
					t.Errorf("got annotations %v, want %v", obj.GetAnnotations(), want)
				}
			},
		},
		{
			name: "upstream missing from cache but live (cache lag): downstream kept",
			objs: func(t *testing.T) testObjects {
				up := upstreamConfigMap("web")
				return testObjects{
					upstreamLiveOnly: []*unstructured.Unstructured{up},
					downstream:       []*unstructured.Unstructured{syncedCopy(t, up)},
					namespaces:       []*corev1.Namespace{ownedNamespace(t)},
				}
			},
		},
		{
			name: "state label removed upstream (object left the cache): downstream deleted first",
			objs: func(t *testing.T) testObjects {
				synced := upstreamConfigMap("web")
				return testObjects{
					upstreamLiveOnly: []*unstructured.Unstructured{upstreamConfigMap("web", withLabel(testStateKey, ""))},
					downstream:       []*unstructured.Unstructured{syncedCopy(t, synced)},
					namespaces:       []*corev1.Namespace{ownedNamespace(t)},
				}
			},
			wantRequeue:          true,
			wantDownstreamWrites: []string{"delete configmaps"},
			check:                expectDownstreamDeleteWithUID,
		},
		{
			name: "state label removed upstream, downstream copy gone: finalizer released",
			objs: func(t *testing.T) testObjects {
				return testObjects{
					upstreamLiveOnly: []*unstructured.Unstructured{upstreamConfigMap("web", withLabel(testStateKey, ""))},
					namespaces:       []*corev1.Namespace{ownedNamespace(t)},
				}
			},
			wantUpstreamWrites: []string{"patch configmaps"},
			check: func(t *testing.T, env *testEnv) {
				expectMetadataPatch(t, env.upstreamDynamic.Actions(), "configmaps", "", "7")
				if obj := liveUpstream(t, env, configMapsGVR, "web"); len(obj.GetFinalizers()) != 0 {
					t.Errorf("got finalizers %q, want the syncer's released", obj.GetFinalizers())
				}
			},
		},
		{
			// Issue 11: vanishing without a deletionTimestamp is "upstream lost", which the
			// breaker never admits before an operator resumes: the copy stays.
			name: "upstream gone (live 404) with our copy: upstream lost, downstream kept",
			objs: func(t *testing.T) testObjects {
				return testObjects{
					downstream: []*unstructured.Unstructured{syncedCopy(t, upstreamConfigMap("web"))},
					namespaces: []*corev1.Namespace{ownedNamespace(t)},
				}
			},
			wantRequeue: true,
		},
		{
			name: "upstream gone, downstream gone: nothing to do",
			objs: func(t *testing.T) testObjects { return testObjects{namespaces: []*corev1.Namespace{ownedNamespace(t)}} },
		},
		{
			name: "workspace not watched: nothing at all",
			objs: func(t *testing.T) testObjects {
				return testObjects{downstream: []*unstructured.Unstructured{syncedCopy(t, upstreamConfigMap("web"))}}
			},
			key: &specKey{workspace: "root:org:gone", gvr: configMapsGVR, upstreamNamespace: testNamespace, name: "web"},
			check: func(t *testing.T, env *testEnv) {
				if n := len(env.upstreamDynamic.Actions()) + len(env.downstreamDynamic.Actions()) + len(env.downstreamKube.Actions()); n != 0 {
					t.Errorf("got %d requests, want none", n)
				}
			},
		},
		{
			name: "invalid spec-diff annotation: InvalidResource and an Event, no write",
			objs: func(t *testing.T) testObjects {
				return testObjects{
					upstream:   []*unstructured.Unstructured{upstreamConfigMap("web", withAnnotation(workloadv1alpha1.SpecDiffAnnotation(testStKey), "{not a patch"))},
					namespaces: []*corev1.Namespace{ownedNamespace(t)},
				}
			},
			wantErrType: tmc.TMCErrorTypeInvalidResource,
			wantEvents:  []string{"Warning InvalidSyncAnnotation"},
		},
		{
			name: "downstream namespace owned by another locator: NamespaceCollision, no write",
			objs: func(t *testing.T) testObjects {
				return testObjects{
					upstream:   []*unstructured.Unstructured{upstreamConfigMap("web")},
					namespaces: []*corev1.Namespace{downstreamNamespace(t, dsNS, testLocator("root:org:team-b", testNamespace))},
				}
			},
			wantErrType: tmc.TMCErrorTypeNamespaceCollision,
			wantEvents:  []string{"Warning NamespaceError"},
		},
		{
			name: "downstream namespace exists without locator (not ours): NamespaceCollision, no write",
			objs: func(t *testing.T) testObjects {
				return testObjects{
					upstream:           []*unstructured.Unstructured{upstreamConfigMap("web")},
					namespacesLiveOnly: []*corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: dsNS}}},
				}
			},
			wantErrType:    tmc.TMCErrorTypeNamespaceCollision,
			wantKubeWrites: []string{"create namespaces"}, // refused: AlreadyExists
			wantEvents:     []string{"Warning NamespaceError"},
			check: func(t *testing.T, env *testEnv) {
				ns, err := env.downstreamKube.CoreV1().Namespaces().Get(t.Context(), dsNS, metav1.GetOptions{})
				if err != nil || len(ns.Labels)+len(ns.Annotations) != 0 {
					t.Errorf("the foreign namespace must stay untouched, got %+v (%v)", ns, err)
				}
			},
		},
		{
			name: "upstream object no longer labelled Sync for this target: nothing",
			objs: func(t *testing.T) testObjects {
				return testObjects{upstream: []*unstructured.Unstructured{upstreamConfigMap("web", withoutFinalizer, withLabel(testStateKey, ""))}}
			},
		},
		{
			name: "resource type not accepted: nothing",
			key:  &specKey{workspace: testWorkspace, gvr: configMapsGVR.GroupVersion().WithResource("secrets"), upstreamNamespace: testNamespace, name: "web"},
			objs: func(t *testing.T) testObjects { return testObjects{} },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, tc.objs(t))
			key := webKey
			if tc.key != nil {
				key = *tc.key
			}
			requeue, err := env.spec.reconcile(t.Context(), key)
			expectProcessError(t, requeue, err, tc.wantErrType, tc.wantRequeue)
			expectWrites(t, "upstream", env.upstreamDynamic.Actions(), tc.wantUpstreamWrites)
			expectWrites(t, "downstream", env.downstreamDynamic.Actions(), tc.wantDownstreamWrites)
			expectWrites(t, "downstream kube", env.downstreamKube.Actions(), tc.wantKubeWrites)
			expectEvents(t, env.events(), tc.wantEvents)
			if tc.check != nil {
				tc.check(t, env)
			}
		})
	}
}

func TestResourceControllerSpecRemovalRequested(t *testing.T) {
	removal := workloadv1alpha1.DeletionAnnotation(testStKey)
	softHold := workloadv1alpha1.SoftFinalizersAnnotation(testStKey)
	tests := []struct {
		name string
		obj  *unstructured.Unstructured
		want bool
	}{
		{"synced object", upstreamConfigMap("web"), false},
		{"deletion timestamp", upstreamConfigMap("web", deleting), true},
		{"per-target removal", upstreamConfigMap("web", withAnnotation(removal, "2026-01-01T00:00:00Z")), true},
		{"per-target removal held by a soft finalizer", upstreamConfigMap("web", withAnnotation(removal, "2026-01-01T00:00:00Z"), withAnnotation(softHold, "a,b")), false},
		{"another target's removal", upstreamConfigMap("web", withAnnotation(workloadv1alpha1.DeletionAnnotation(otherStKey), "2026-01-01T00:00:00Z")), false},
		{"state label removed while holding our finalizer", upstreamConfigMap("web", withLabel(testStateKey, "")), true},
		{"state label removed, no finalizer", upstreamConfigMap("web", withLabel(testStateKey, ""), withoutFinalizer), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := removalRequested(testStKey, tc.obj); got != tc.want {
				t.Errorf("removalRequested = %v, want %v", got, tc.want)
			}
		})
	}
}

// expectDownstreamDeleteWithUID checks that the downstream delete is guarded by the UID of
// the object that was read, so that a re-created object is never deleted by mistake.
func expectDownstreamDeleteWithUID(t *testing.T, env *testEnv) {
	t.Helper()
	del := findAction[clienttesting.DeleteActionImpl](t, env.downstreamDynamic.Actions(), "delete", "configmaps")
	if del.GetNamespace() != downstreamNamespaceFor(t, testWorkspace, testNamespace) || del.GetName() != "web" {
		t.Errorf("deleted %s/%s, want the copy of %s/web", del.GetNamespace(), del.GetName(), testNamespace)
	}
	pre := del.DeleteOptions.Preconditions
	if pre == nil || pre.UID == nil || *pre.UID != "downstream-uid-web" {
		t.Errorf("got preconditions %+v, want UID downstream-uid-web", pre)
	}
}

func expectProcessError(t *testing.T, requeue time.Duration, err error, wantType tmc.TMCErrorType, wantRequeue bool) {
	t.Helper()
	var tmcErr *tmc.TMCError
	switch {
	case wantRequeue:
		if requeue <= 0 || err != nil {
			t.Errorf("got requeue %s and error %v, want a requeue", requeue, err)
		}
	case wantType != "":
		if !errors.As(err, &tmcErr) || tmcErr.Type != wantType {
			t.Errorf("got error %v, want a TMC error of type %s", err, wantType)
		}
	case err != nil:
		t.Errorf("unexpected error: %v", err)
	}
}

func expectWrites(t *testing.T, side string, actions []clienttesting.Action, want []string) {
	t.Helper()
	if got := writes(actions); !slices.Equal(got, want) {
		t.Errorf("%s writes: got %q, want %q", side, got, want)
	}
}
