package syncer

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clienttesting "k8s.io/client-go/testing"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// recordingBudget records every admit call and answers with admits.
type recordingBudget struct {
	mu     sync.Mutex
	admits bool
	calls  []plannedDeletion
}

func (b *recordingBudget) admit(_ context.Context, d plannedDeletion) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, d)
	return b.admits
}

func (b *recordingBudget) reasons() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, c := range b.calls {
		out = append(out, c.reason)
	}
	return out
}

// TestRemovalGoesThroughTheBudget: every downstream deletion the syncer decides on its own
// asks the budget first, with its reason, and keeps the copy when refused; a deletion the
// user asked for never asks.
func TestRemovalGoesThroughTheBudget(t *testing.T) {
	removal := workloadv1alpha1.DeletionAnnotation(testStKey)
	tests := []struct {
		name           string
		objs           func(t *testing.T) testObjects
		targetDeleting bool
		admits         bool

		wantReasons          []string
		wantRequeue          time.Duration // exact, when set
		wantDownstreamWrites []string
	}{
		{
			name: "user deleted the object: deleted without asking the budget",
			objs: func(t *testing.T) testObjects {
				up := upstreamConfigMap("web", deleting)
				return testObjects{upstream: []*unstructured.Unstructured{up}, downstream: []*unstructured.Unstructured{syncedCopy(t, up)}}
			},
			wantDownstreamWrites: []string{"delete configmaps"},
		},
		{
			name: "user deleted the object while the target is deleted: still no budget",
			objs: func(t *testing.T) testObjects {
				up := upstreamConfigMap("web", deleting)
				return testObjects{upstream: []*unstructured.Unstructured{up}, downstream: []*unstructured.Unstructured{syncedCopy(t, up)}}
			},
			targetDeleting:       true,
			wantDownstreamWrites: []string{"delete configmaps"},
		},
		{
			name: "per-target deletion annotation, admitted: deleted",
			objs: func(t *testing.T) testObjects {
				up := upstreamConfigMap("web", withAnnotation(removal, "2026-01-01T00:00:00Z"))
				return testObjects{upstream: []*unstructured.Unstructured{up}, downstream: []*unstructured.Unstructured{syncedCopy(t, up)}}
			},
			admits:               true,
			wantReasons:          []string{deletionUnscheduled},
			wantDownstreamWrites: []string{"delete configmaps"},
		},
		{
			name: "per-target deletion annotation, held: copy kept",
			objs: func(t *testing.T) testObjects {
				up := upstreamConfigMap("web", withAnnotation(removal, "2026-01-01T00:00:00Z"))
				return testObjects{upstream: []*unstructured.Unstructured{up}, downstream: []*unstructured.Unstructured{syncedCopy(t, up)}}
			},
			wantReasons: []string{deletionUnscheduled},
			wantRequeue: deletionHeldRequeue,
		},
		{
			name: "unlabelled upstream (unscheduled), held: copy kept",
			objs: func(t *testing.T) testObjects {
				return testObjects{
					upstreamLiveOnly: []*unstructured.Unstructured{upstreamConfigMap("web", withLabel(testStateKey, ""))},
					downstream:       []*unstructured.Unstructured{syncedCopy(t, upstreamConfigMap("web"))},
				}
			},
			wantReasons: []string{deletionUnscheduled},
			wantRequeue: deletionHeldRequeue,
		},
		{
			name: "unlabelled upstream being deleted by the user: deleted without asking",
			objs: func(t *testing.T) testObjects {
				return testObjects{
					upstreamLiveOnly: []*unstructured.Unstructured{upstreamConfigMap("web", withLabel(testStateKey, ""), deleting)},
					downstream:       []*unstructured.Unstructured{syncedCopy(t, upstreamConfigMap("web"))},
				}
			},
			wantDownstreamWrites: []string{"delete configmaps"},
		},
		{
			name: "SyncTarget being deleted, held: copy kept",
			objs: func(t *testing.T) testObjects {
				up := upstreamConfigMap("web")
				return testObjects{upstream: []*unstructured.Unstructured{up}, downstream: []*unstructured.Unstructured{syncedCopy(t, up)}}
			},
			targetDeleting: true,
			wantReasons:    []string{deletionTargetDeleted},
			wantRequeue:    deletionHeldRequeue,
		},
		{
			name: "SyncTarget being deleted, admitted: deleted",
			objs: func(t *testing.T) testObjects {
				up := upstreamConfigMap("web")
				return testObjects{upstream: []*unstructured.Unstructured{up}, downstream: []*unstructured.Unstructured{syncedCopy(t, up)}}
			},
			targetDeleting:       true,
			admits:               true,
			wantReasons:          []string{deletionTargetDeleted},
			wantDownstreamWrites: []string{"delete configmaps"},
		},
		{
			name: "upstream lost (live 404), held: copy kept",
			objs: func(t *testing.T) testObjects {
				return testObjects{downstream: []*unstructured.Unstructured{syncedCopy(t, upstreamConfigMap("web"))}}
			},
			wantReasons: []string{deletionUpstreamLost},
			wantRequeue: upstreamLostRequeue,
		},
		{
			name: "upstream lost, admitted (an operator resumed): deleted",
			objs: func(t *testing.T) testObjects {
				return testObjects{downstream: []*unstructured.Unstructured{syncedCopy(t, upstreamConfigMap("web"))}}
			},
			admits:               true,
			wantReasons:          []string{deletionUpstreamLost},
			wantDownstreamWrites: []string{"delete configmaps"},
		},
		{
			name: "upstream gone, copy not ours: nothing asked, nothing touched",
			objs: func(t *testing.T) testObjects {
				foreign := syncedCopy(t, upstreamConfigMap("web"))
				foreign.SetLabels(map[string]string{"app": "theirs"})
				return testObjects{downstreamLiveOnly: []*unstructured.Unstructured{foreign}}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, tc.objs(t))
			budget := &recordingBudget{admits: tc.admits}
			env.spec.remover.budget = budget
			env.spec.remover.targetDeleting = func() bool { return tc.targetDeleting }

			requeue, err := env.spec.reconcile(t.Context(), webKey)
			if err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			if tc.wantRequeue > 0 && requeue != tc.wantRequeue {
				t.Errorf("got requeue %s, want %s", requeue, tc.wantRequeue)
			}
			if got := budget.reasons(); !slices.Equal(got, tc.wantReasons) {
				t.Errorf("budget asked with reasons %q, want %q", got, tc.wantReasons)
			}
			for _, c := range budget.calls {
				want := plannedDeletion{workspace: testWorkspace, resource: "configmaps", downstreamNamespace: downstreamNamespaceFor(t, testWorkspace, testNamespace), name: "web", reason: c.reason, objects: 1}
				if c != want {
					t.Errorf("planned deletion %+v, want %+v", c, want)
				}
			}
			expectWrites(t, "downstream", env.downstreamDynamic.Actions(), tc.wantDownstreamWrites)
			if len(tc.wantDownstreamWrites) > 0 {
				expectDownstreamDeleteWithUID(t, env)
			}
		})
	}
}

// TestUpstreamLostIsKeptAndReported: a held upstream-lost copy is counted in the gauge,
// marked failing with UpstreamLost (which a successful queue pass does not clear) and
// recorded once in the error summary; it is forgotten when the object comes back.
func TestUpstreamLostIsKeptAndReported(t *testing.T) {
	env := newTestEnv(t, testObjects{downstream: []*unstructured.Unstructured{syncedCopy(t, upstreamConfigMap("web"))}})
	env.spec.remover.budget = &recordingBudget{}
	q := env.specQueue(env.spec.reconcile)
	t.Cleanup(q.ShutDown)
	lostGauge := func() float64 {
		return testutil.ToFloat64(env.metrics.upstreamLost.WithLabelValues(testSyncTargetName))
	}

	for range 2 {
		q.Add(webKey)
		q.ProcessNext(t.Context())
	}
	expectWrites(t, "downstream", env.downstreamDynamic.Actions(), nil)
	if got := lostGauge(); got != 1 {
		t.Errorf("upstream-lost gauge is %v, want 1", got)
	}
	if got := env.errors.failingCounts()[tmc.TMCErrorTypeUpstreamLost]; got != 1 {
		t.Errorf("got %d keys failing with UpstreamLost, want 1 (failing: %v)", got, env.errors.failingCounts())
	}
	summary := env.errors.summary()
	if summary == nil || summary.Counts[string(tmc.TMCErrorTypeUpstreamLost)] != 1 {
		t.Fatalf("the error summary must count the lost object once, got %+v", summary)
	}
	if r := summary.Recent[0]; r.Type != string(tmc.TMCErrorTypeUpstreamLost) || r.Workspace != testWorkspace || !strings.Contains(r.Message, "resume-deletions") {
		t.Errorf("got recent error %+v, want an UpstreamLost entry of %s telling how to resume", r, testWorkspace)
	}
	if got := testutil.ToFloat64(env.metrics.errors.WithLabelValues(testSyncTargetName, string(tmc.TMCErrorTypeUpstreamLost))); got != 1 {
		t.Errorf("error metric counts %v UpstreamLost, want 1", got)
	}

	// The object is back (e.g. the upstream was restored): no longer lost.
	env.addToCache(t, env.upstreamCaches, upstreamConfigMap("web"))
	if _, err := env.spec.reconcile(t.Context(), webKey); err != nil {
		t.Fatal(err)
	}
	if got := lostGauge(); got != 0 {
		t.Errorf("upstream-lost gauge is %v after the object came back, want 0", got)
	}
	if got := env.errors.failingCounts()[tmc.TMCErrorTypeUpstreamLost]; got != 0 {
		t.Errorf("got %d keys still failing with UpstreamLost, want 0", got)
	}
}

// TestUpstreamMetadataWritesArePatches: the finalizer is added and the object released with
// a JSON merge patch carrying the resourceVersion, and a conflict is an error the queue
// retries (ResourceConflict), never a blind overwrite.
func TestUpstreamMetadataWritesArePatches(t *testing.T) {
	t.Run("per-target release drops finalizer, state label and per-target annotations", func(t *testing.T) {
		up := upstreamConfigMap("web",
			withFinalizers("example.com/keep", testFinalize),
			withAnnotation(workloadv1alpha1.DeletionAnnotation(testStKey), "2026-01-01T00:00:00Z"),
			withAnnotation(workloadv1alpha1.StatusAnnotation(testStKey), `{}`),
			withAnnotation("team", "a"))
		env := newTestEnv(t, testObjects{upstream: []*unstructured.Unstructured{up}})
		if _, err := env.spec.reconcile(t.Context(), webKey); err != nil {
			t.Fatal(err)
		}
		patch := expectMetadataPatch(t, env.upstreamDynamic.Actions(), "configmaps", "", "7")
		if got := patch.GetFinalizers(); !slices.Equal(got, []string{"example.com/keep"}) {
			t.Errorf("the patch sets finalizers %q, want only example.com/keep", got)
		}
		for _, path := range [][]string{
			{"metadata", "labels", testStateKey},
			{"metadata", "annotations", workloadv1alpha1.DeletionAnnotation(testStKey)},
			{"metadata", "annotations", workloadv1alpha1.StatusAnnotation(testStKey)},
		} {
			if !isNull(patch.Object, path...) {
				t.Errorf("the patch must set %v to null: %v", path, patch.Object)
			}
		}
		obj := liveUpstream(t, env, configMapsGVR, "web")
		if obj.GetAnnotations()["team"] != "a" || obj.GetLabels()["app"] != "web" {
			t.Errorf("a release must keep everything else, got labels %v annotations %v", obj.GetLabels(), obj.GetAnnotations())
		}
	})
	conflict := func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "configmaps"}, "web", errors.New("the object has been modified"))
	}
	for _, tc := range []struct {
		name string
		obj  *unstructured.Unstructured
	}{
		{"finalizer added on a stale resourceVersion", upstreamConfigMap("web", withoutFinalizer)},
		{"release on a stale resourceVersion", upstreamConfigMap("web", deleting)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, testObjects{upstream: []*unstructured.Unstructured{tc.obj}})
			env.upstreamDynamic.PrependReactor("patch", "configmaps", conflict)
			_, err := env.spec.reconcile(t.Context(), webKey)
			if got := tmc.Classify(err).Type; got != tmc.TMCErrorTypeResourceConflict {
				t.Errorf("got error %v (%s), want a ResourceConflict for the queue to retry", err, got)
			}
			expectWrites(t, "upstream", env.upstreamDynamic.Actions(), []string{"patch configmaps"})
		})
	}
}

// expectMetadataPatch returns the first patch of resource (and subresource) as an object,
// after checking that it is a JSON merge patch with resourceVersion wantRV as precondition.
func expectMetadataPatch(t *testing.T, actions []clienttesting.Action, resource, subresource, wantRV string) *unstructured.Unstructured {
	t.Helper()
	for _, a := range actions {
		patch, ok := a.(clienttesting.PatchActionImpl)
		if !ok || a.GetResource().Resource != resource || a.GetSubresource() != subresource {
			continue
		}
		if patch.GetPatchType() != types.MergePatchType {
			t.Errorf("got a %s patch of %s, want a JSON merge patch", patch.GetPatchType(), resource)
		}
		obj := decodePatch(t, patch.GetPatch())
		if got := obj.GetResourceVersion(); got != wantRV {
			t.Errorf("the patch of %s carries resourceVersion %q, want %q as precondition", resource, got, wantRV)
		}
		return obj
	}
	t.Fatalf("no patch of %s %s among %v", resource, subresource, writes(actions))
	return nil
}

// isNull reports whether path is present in obj with a null value (a merge patch removal).
func isNull(obj map[string]any, path ...string) bool {
	v, found, err := unstructured.NestedFieldNoCopy(obj, path...)
	return err == nil && found && v == nil
}

func liveUpstream(t *testing.T, env *testEnv, gvr schema.GroupVersionResource, name string) *unstructured.Unstructured {
	t.Helper()
	obj, err := env.upstreamDynamic.Resource(gvr).Namespace(testNamespace).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

func liveDownstream(t *testing.T, env *testEnv, gvr schema.GroupVersionResource, name string) *unstructured.Unstructured {
	t.Helper()
	obj, err := env.downstreamDynamic.Resource(gvr).Namespace(downstreamNamespaceFor(t, testWorkspace, testNamespace)).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

func liveNamespace(t *testing.T, env *testEnv) *corev1.Namespace {
	t.Helper()
	ns, err := env.downstreamKube.CoreV1().Namespaces().Get(t.Context(), downstreamNamespaceFor(t, testWorkspace, testNamespace), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns
}
