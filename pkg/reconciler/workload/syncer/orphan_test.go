package syncer

import (
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// TestDeletionPolicyOrphan: with the policy Orphan (the object's annotation, else its
// upstream namespace's) any removal leaves the copy running without the ownership label,
// marks the downstream namespace as holding orphans, releases the upstream object and
// tells the user — without asking the budget.
func TestDeletionPolicyOrphan(t *testing.T) {
	policy := workloadv1alpha1.DeletionPolicyAnnotation
	orphan, del := workloadv1alpha1.DeletionPolicyOrphan, workloadv1alpha1.DeletionPolicyDelete
	removal := workloadv1alpha1.DeletionAnnotation(testStKey)
	tests := []struct {
		name             string
		upstream         *unstructured.Unstructured
		upstreamNSPolicy string
		nsAnnotated      bool // the downstream namespace holds orphans already
		targetDeleting   bool

		wantOrphan     bool
		wantEvents     []string
		wantKubeWrites []string
		wantPerTarget  bool // the state label is released too
	}{
		{
			name:           "object annotated Orphan, deleted by the user",
			upstream:       upstreamConfigMap("web", deleting, withAnnotation(policy, orphan)),
			wantOrphan:     true,
			wantEvents:     []string{"Normal Orphaned"},
			wantKubeWrites: []string{"patch namespaces"},
		},
		{
			name:             "upstream namespace says Orphan, object unscheduled by the deletion annotation",
			upstream:         upstreamConfigMap("web", withAnnotation(removal, "2026-01-01T00:00:00Z")),
			upstreamNSPolicy: orphan,
			wantOrphan:       true,
			wantEvents:       []string{"Normal Orphaned"},
			wantKubeWrites:   []string{"patch namespaces"},
			wantPerTarget:    true,
		},
		{
			name:           "object annotated Orphan, SyncTarget being deleted",
			upstream:       upstreamConfigMap("web", withAnnotation(policy, orphan)),
			targetDeleting: true,
			wantOrphan:     true,
			wantEvents:     []string{"Normal Orphaned"},
			wantKubeWrites: []string{"patch namespaces"},
			wantPerTarget:  true,
		},
		{
			name:        "namespace already marked: not written again",
			upstream:    upstreamConfigMap("web", deleting, withAnnotation(policy, orphan)),
			nsAnnotated: true,
			wantOrphan:  true,
			wantEvents:  []string{"Normal Orphaned"},
		},
		{
			name:           "unknown policy value: orphaned to be safe, and said so",
			upstream:       upstreamConfigMap("web", deleting, withAnnotation(policy, "Keep")),
			wantOrphan:     true,
			wantEvents:     []string{"Warning InvalidDeletionPolicy", "Normal Orphaned"},
			wantKubeWrites: []string{"patch namespaces"},
		},
		{
			name:             "the object's Delete wins over the namespace's Orphan",
			upstream:         upstreamConfigMap("web", deleting, withAnnotation(policy, del)),
			upstreamNSPolicy: orphan,
		},
		{
			name:     "no policy anywhere: Delete",
			upstream: upstreamConfigMap("web", deleting),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := ownedNamespace(t)
			if tc.nsAnnotated {
				ns.Annotations[workloadv1alpha1.DownstreamOrphansAnnotation] = "2026-01-01T00:00:00Z"
			}
			env := newTestEnv(t, testObjects{
				upstream:   []*unstructured.Unstructured{tc.upstream},
				downstream: []*unstructured.Unstructured{syncedCopy(t, tc.upstream)},
				namespaces: []*corev1.Namespace{ns},
			})
			budget := &recordingBudget{}
			env.spec.remover.budget = budget
			env.spec.remover.targetDeleting = func() bool { return tc.targetDeleting }
			env.spec.remover.upstreamNamespace = func(ws, name string) (*corev1.Namespace, bool) {
				if ws != testWorkspace || name != testNamespace || tc.upstreamNSPolicy == "" {
					return nil, false
				}
				return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{policy: tc.upstreamNSPolicy}}}, true
			}

			requeue, err := env.spec.reconcile(t.Context(), webKey)
			if err != nil {
				t.Fatal(err)
			}
			expectEvents(t, env.events(), tc.wantEvents)
			expectWrites(t, "downstream kube", env.downstreamKube.Actions(), tc.wantKubeWrites)
			if !tc.wantOrphan {
				expectWrites(t, "downstream", env.downstreamDynamic.Actions(), []string{"delete configmaps"})
				if requeue == 0 {
					t.Error("a deleted copy must be waited for")
				}
				return
			}
			if len(budget.calls) != 0 {
				t.Errorf("orphaning must not ask the budget, got %+v", budget.calls)
			}
			if requeue != 0 {
				t.Errorf("got requeue %s, want the removal done at once", requeue)
			}
			expectWrites(t, "downstream", env.downstreamDynamic.Actions(), []string{"patch configmaps"})
			patch := expectMetadataPatch(t, env.downstreamDynamic.Actions(), "configmaps", "", "42")
			if !isNull(patch.Object, "metadata", "labels", workloadv1alpha1.InternalDownstreamClusterLabel) {
				t.Errorf("the orphaning patch must drop the ownership label: %v", patch.Object)
			}
			copyObj := liveDownstream(t, env, configMapsGVR, "web")
			if _, owned := copyObj.GetLabels()[workloadv1alpha1.InternalDownstreamClusterLabel]; owned || copyObj.GetLabels()["app"] != "web" {
				t.Errorf("the orphan must keep its own labels and lose only the ownership label, got %v", copyObj.GetLabels())
			}
			if v, _, _ := unstructured.NestedString(copyObj.Object, "data", "key"); v != "value" {
				t.Errorf("the orphan's data changed: %v", copyObj.Object["data"])
			}
			if got := liveNamespace(t, env).Annotations[workloadv1alpha1.DownstreamOrphansAnnotation]; got == "" {
				t.Errorf("the downstream namespace must be marked as holding orphans")
			}
			if len(tc.wantKubeWrites) > 0 {
				nsPatch := expectMetadataPatch(t, env.downstreamKube.Actions(), "namespaces", "", "")
				if _, found, _ := unstructured.NestedString(nsPatch.Object, "metadata", "annotations", workloadv1alpha1.DownstreamOrphansAnnotation); !found {
					t.Errorf("the namespace patch must set %s: %v", workloadv1alpha1.DownstreamOrphansAnnotation, nsPatch.Object)
				}
			}
			released := liveUpstream(t, env, configMapsGVR, "web")
			if slices.Contains(released.GetFinalizers(), testFinalize) {
				t.Errorf("the upstream object must be released, got finalizers %q", released.GetFinalizers())
			}
			if _, labelled := released.GetLabels()[testStateKey]; labelled != !tc.wantPerTarget {
				t.Errorf("state label present = %v, want %v (per-target removal: %v)", labelled, !tc.wantPerTarget, tc.wantPerTarget)
			}
		})
	}
}

// TestOrphanedEventNamesTheSyncTarget: the user learns where the orphan runs.
func TestOrphanedEventNamesTheSyncTarget(t *testing.T) {
	up := upstreamConfigMap("web", deleting, withAnnotation(workloadv1alpha1.DeletionPolicyAnnotation, workloadv1alpha1.DeletionPolicyOrphan))
	env := newTestEnv(t, testObjects{
		upstream:   []*unstructured.Unstructured{up},
		downstream: []*unstructured.Unstructured{syncedCopy(t, up)},
		namespaces: []*corev1.Namespace{ownedNamespace(t)},
	})
	if _, err := env.spec.reconcile(t.Context(), webKey); err != nil {
		t.Fatal(err)
	}
	events := env.events()
	if len(events) != 1 || !strings.Contains(events[0], "SyncTarget "+testSyncTargetName) {
		t.Errorf("got events %q, want one Orphaned Event naming SyncTarget %s", events, testSyncTargetName)
	}
}

// TestOrphanRetryAfterPartialFailure: the namespace is marked before the copy loses its
// label, so a retry after a failed copy patch still finds the copy ours and finishes.
func TestOrphanRetryAfterPartialFailure(t *testing.T) {
	up := upstreamConfigMap("web", deleting, withAnnotation(workloadv1alpha1.DeletionPolicyAnnotation, workloadv1alpha1.DeletionPolicyOrphan))
	env := newTestEnv(t, testObjects{
		upstream:   []*unstructured.Unstructured{up},
		downstream: []*unstructured.Unstructured{syncedCopy(t, up)},
		namespaces: []*corev1.Namespace{ownedNamespace(t)},
	})
	env.downstreamDynamic.PrependReactor("patch", "configmaps", failOnce())
	if _, err := env.spec.reconcile(t.Context(), webKey); err == nil {
		t.Fatal("want the injected failure")
	}
	if got := liveNamespace(t, env).Annotations[workloadv1alpha1.DownstreamOrphansAnnotation]; got == "" {
		t.Fatal("the namespace must be marked before the copy is touched")
	}
	if !slices.Contains(liveUpstream(t, env, configMapsGVR, "web").GetFinalizers(), testFinalize) {
		t.Fatal("the upstream object must not be released before the copy is orphaned")
	}
	if _, err := env.spec.reconcile(t.Context(), webKey); err != nil {
		t.Fatal(err)
	}
	if _, owned := liveDownstream(t, env, configMapsGVR, "web").GetLabels()[workloadv1alpha1.InternalDownstreamClusterLabel]; owned {
		t.Error("the retry must orphan the copy")
	}
	if slices.Contains(liveUpstream(t, env, configMapsGVR, "web").GetFinalizers(), testFinalize) {
		t.Error("the retry must release the upstream object")
	}
}

// TestUpstreamLostAdmittedHonoursOrphan: once an operator resumes, a lost object's copy
// follows the policy it carries (the annotation is synced down with the object).
func TestUpstreamLostAdmittedHonoursOrphan(t *testing.T) {
	up := upstreamConfigMap("web", withAnnotation(workloadv1alpha1.DeletionPolicyAnnotation, workloadv1alpha1.DeletionPolicyOrphan))
	env := newTestEnv(t, testObjects{
		downstream: []*unstructured.Unstructured{syncedCopy(t, up)},
		namespaces: []*corev1.Namespace{ownedNamespace(t)},
	})
	budget := &recordingBudget{admits: true}
	env.spec.remover.budget = budget
	if _, err := env.spec.reconcile(t.Context(), webKey); err != nil {
		t.Fatal(err)
	}
	if got := budget.reasons(); !slices.Equal(got, []string{deletionUpstreamLost}) {
		t.Errorf("budget asked with %q, want only %s", got, deletionUpstreamLost)
	}
	expectWrites(t, "downstream", env.downstreamDynamic.Actions(), []string{"patch configmaps"})
	if _, owned := liveDownstream(t, env, configMapsGVR, "web").GetLabels()[workloadv1alpha1.InternalDownstreamClusterLabel]; owned {
		t.Error("the copy must be orphaned, not deleted")
	}
}

// failOnce fails the first request it sees with a 503, then lets the others through.
func failOnce() clienttesting.ReactionFunc {
	var failed atomic.Bool
	return func(clienttesting.Action) (bool, runtime.Object, error) {
		if failed.Swap(true) {
			return false, nil, nil
		}
		return true, nil, apierrors.NewServiceUnavailable("injected failure")
	}
}
