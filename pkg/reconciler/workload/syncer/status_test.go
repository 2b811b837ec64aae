package syncer

import (
	"encoding/json"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	clienttesting "k8s.io/client-go/testing"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func TestResourceControllerStatus(t *testing.T) {
	dsNS := downstreamNamespaceFor(t, testWorkspace, testNamespace)
	readyStatus := map[string]any{"replicas": int64(2), "readyReplicas": int64(2)}
	statusAnnotation := workloadv1alpha1.StatusAnnotation(testStKey)
	onTwoTargets := withLabel(workloadv1alpha1.ClusterResourceStateLabel(otherStKey), workloadv1alpha1.ResourceStateSync)
	readyJSON, err := json.Marshal(readyStatus)
	if err != nil {
		t.Fatal(err)
	}

	// downstreamReady is the downstream copy of upstream, reporting readyStatus.
	downstreamReady := func(t *testing.T, upstream *unstructured.Unstructured) *unstructured.Unstructured {
		return syncedCopy(t, upstream, withField(readyStatus, "status"))
	}
	otherTarget := workloadv1alpha1.NewNamespaceLocator(testLocationWorkspace, "west", "west-uid", testWorkspace, testNamespace)
	otherNS, err := otherTarget.DownstreamNamespaceName()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		objs func(t *testing.T) testObjects
		key  *statusKey // the downstream copy of web in dsNS when nil

		wantUpstreamWrites []string
		check              func(t *testing.T, env *testEnv)
	}{
		{
			name: "downstream status differs: copied to the upstream status",
			objs: func(t *testing.T) testObjects {
				up := upstreamDeployment("web")
				return testObjects{
					upstream:   []*unstructured.Unstructured{up},
					downstream: []*unstructured.Unstructured{downstreamReady(t, up)},
					namespaces: []*corev1.Namespace{ownedNamespace(t)},
				}
			},
			wantUpstreamWrites: []string{"update deployments/status"},
			check: func(t *testing.T, env *testEnv) {
				update := findAction[clienttesting.UpdateActionImpl](t, env.upstreamDynamic.Actions(), "update", "deployments")
				obj := update.GetObject().(*unstructured.Unstructured)
				if obj.GetNamespace() != testNamespace || obj.GetName() != "web" || obj.GetResourceVersion() != "7" {
					t.Errorf("updated %s/%s at resourceVersion %q, want %s/web at the cached 7", obj.GetNamespace(), obj.GetName(), obj.GetResourceVersion(), testNamespace)
				}
				if !equality.Semantic.DeepEqual(obj.Object["status"], readyStatus) {
					t.Errorf("got status %v, want %v", obj.Object["status"], readyStatus)
				}
				if got := testutil.ToFloat64(env.metrics.resourcesSynced.WithLabelValues(testSyncTargetName, testWorkspace, "deployments.apps/v1", directionUp)); got != 1 {
					t.Errorf("got %v status syncs counted, want 1", got)
				}
			},
		},
		{
			name: "statuses semantically equal: no write",
			objs: func(t *testing.T) testObjects {
				up := upstreamDeployment("web", withField(readyStatus, "status"))
				// The same numbers as floats, as a JSON decoder may produce them.
				return testObjects{
					upstream:   []*unstructured.Unstructured{up},
					downstream: []*unstructured.Unstructured{syncedCopy(t, up, withField(map[string]any{"replicas": 2.0, "readyReplicas": 2.0}, "status"))},
					namespaces: []*corev1.Namespace{ownedNamespace(t)},
				}
			},
			check: func(t *testing.T, env *testEnv) {
				if got := testutil.ToFloat64(env.metrics.skippedWrites.WithLabelValues(testSyncTargetName, directionUp)); got != 1 {
					t.Errorf("got %v skipped status writes, want 1", got)
				}
			},
		},
		{
			name: "namespace locator names another SyncTarget: no write",
			objs: func(t *testing.T) testObjects {
				up := upstreamDeployment("web")
				down := downstreamReady(t, up)
				down.SetNamespace(otherNS)
				return testObjects{
					upstream:   []*unstructured.Unstructured{up},
					downstream: []*unstructured.Unstructured{down},
					namespaces: []*corev1.Namespace{downstreamNamespace(t, otherNS, otherTarget)},
				}
			},
			key: &statusKey{gvr: deploymentsGVR, downstreamNamespace: otherNS, name: "web"},
		},
		{
			name: "downstream namespace unknown: no write",
			objs: func(t *testing.T) testObjects {
				up := upstreamDeployment("web")
				return testObjects{
					upstream:   []*unstructured.Unstructured{up},
					downstream: []*unstructured.Unstructured{downstreamReady(t, up)},
				}
			},
		},
		{
			name: "synced to two targets: per-target status annotation",
			objs: func(t *testing.T) testObjects {
				up := upstreamDeployment("web", onTwoTargets)
				return testObjects{
					upstream:   []*unstructured.Unstructured{up},
					downstream: []*unstructured.Unstructured{downstreamReady(t, up)},
					namespaces: []*corev1.Namespace{ownedNamespace(t)},
				}
			},
			wantUpstreamWrites: []string{"patch deployments"},
			check: func(t *testing.T, env *testEnv) {
				patch := findAction[clienttesting.PatchActionImpl](t, env.upstreamDynamic.Actions(), "patch", "deployments")
				if patch.GetPatchType() != types.MergePatchType || patch.GetNamespace() != testNamespace || patch.GetName() != "web" {
					t.Errorf("got a %s patch of %s/%s, want a merge patch of %s/web", patch.GetPatchType(), patch.GetNamespace(), patch.GetName(), testNamespace)
				}
				got := decodePatch(t, patch.GetPatch())
				var status map[string]any
				if err := json.Unmarshal([]byte(got.GetAnnotations()[statusAnnotation]), &status); err != nil {
					t.Fatalf("invalid status annotation in patch %s: %v", patch.GetPatch(), err)
				}
				if !equality.Semantic.DeepEqual(status, map[string]any{"replicas": 2.0, "readyReplicas": 2.0}) {
					t.Errorf("got annotated status %v, want %v", status, readyStatus)
				}
				if len(got.Object) != 1 || len(got.GetAnnotations()) != 1 {
					t.Errorf("the patch must only set the annotation, got %s", patch.GetPatch())
				}
			},
		},
		{
			name: "synced to two targets, annotation current: no write",
			objs: func(t *testing.T) testObjects {
				up := upstreamDeployment("web", onTwoTargets, withAnnotation(statusAnnotation, string(readyJSON)))
				return testObjects{
					upstream:   []*unstructured.Unstructured{up},
					downstream: []*unstructured.Unstructured{downstreamReady(t, up)},
					namespaces: []*corev1.Namespace{ownedNamespace(t)},
				}
			},
		},
		{
			name: "synced to two targets, downstream without status: no write",
			objs: func(t *testing.T) testObjects {
				up := upstreamDeployment("web", onTwoTargets)
				return testObjects{
					upstream:   []*unstructured.Unstructured{up},
					downstream: []*unstructured.Unstructured{syncedCopy(t, up)},
					namespaces: []*corev1.Namespace{ownedNamespace(t)},
				}
			},
		},
		{
			name: "upstream being deleted: no write",
			objs: func(t *testing.T) testObjects {
				up := upstreamDeployment("web", deleting)
				return testObjects{
					upstream:   []*unstructured.Unstructured{up},
					downstream: []*unstructured.Unstructured{downstreamReady(t, up)},
					namespaces: []*corev1.Namespace{ownedNamespace(t)},
				}
			},
		},
		{
			name: "upstream gone: no write",
			objs: func(t *testing.T) testObjects {
				return testObjects{
					downstream: []*unstructured.Unstructured{downstreamReady(t, upstreamDeployment("web"))},
					namespaces: []*corev1.Namespace{ownedNamespace(t)},
				}
			},
		},
		{
			name: "downstream gone: no write",
			objs: func(t *testing.T) testObjects {
				return testObjects{
					upstream:   []*unstructured.Unstructured{upstreamDeployment("web")},
					namespaces: []*corev1.Namespace{ownedNamespace(t)},
				}
			},
		},
		{
			name: "type without a status subresource: no write",
			objs: func(t *testing.T) testObjects {
				up := upstreamConfigMap("web", withField(map[string]any{"x": "y"}, "status"))
				return testObjects{
					upstream:   []*unstructured.Unstructured{up},
					downstream: []*unstructured.Unstructured{syncedCopy(t, up, withField(map[string]any{"x": "z"}, "status"))},
					namespaces: []*corev1.Namespace{ownedNamespace(t)},
				}
			},
			key: &statusKey{gvr: configMapsGVR, downstreamNamespace: dsNS, name: "web"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, tc.objs(t))
			key := statusKey{gvr: deploymentsGVR, downstreamNamespace: dsNS, name: "web"}
			if tc.key != nil {
				key = *tc.key
			}
			if _, err := env.status.reconcile(t.Context(), key); err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			expectWrites(t, "upstream", env.upstreamDynamic.Actions(), tc.wantUpstreamWrites)
			expectWrites(t, "downstream", env.downstreamDynamic.Actions(), nil)
			if tc.check != nil {
				tc.check(t, env)
			}
		})
	}
}

// Through a syncer view, the server keeps each target's status and summarises: the syncer
// always writes the status subresource, with its own status, also on several targets, and
// not when its recorded status is current.
func TestStatusThroughSyncerView(t *testing.T) {
	dsNS := downstreamNamespaceFor(t, testWorkspace, testNamespace)
	readyStatus := map[string]any{"replicas": int64(2), "readyReplicas": int64(2)}
	readyJSON, err := json.Marshal(readyStatus)
	if err != nil {
		t.Fatal(err)
	}
	onTwoTargets := withLabel(workloadv1alpha1.ClusterResourceStateLabel(otherStKey), workloadv1alpha1.ResourceStateSync)
	aggregate := withField(map[string]any{"replicas": int64(5), "readyReplicas": int64(5)}, "status")
	tests := []struct {
		name      string
		upstream  *unstructured.Unstructured
		wantWrite bool
	}{
		{name: "one target, status differs", upstream: upstreamDeployment("web"), wantWrite: true},
		{name: "one target, status current", upstream: upstreamDeployment("web", withField(readyStatus, "status"))},
		{name: "two targets: this target's status, not an annotation patch", upstream: upstreamDeployment("web", onTwoTargets, aggregate), wantWrite: true},
		{name: "two targets, recorded status current", upstream: upstreamDeployment("web", onTwoTargets, aggregate,
			withAnnotation(workloadv1alpha1.StatusAnnotation(testStKey), string(readyJSON)))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, testObjects{
				upstream:   []*unstructured.Unstructured{tc.upstream},
				downstream: []*unstructured.Unstructured{syncedCopy(t, tc.upstream, withField(readyStatus, "status"))},
				namespaces: []*corev1.Namespace{ownedNamespace(t)},
			})
			env.status.serverSummarises = true
			if _, err := env.status.reconcile(t.Context(), statusKey{gvr: deploymentsGVR, downstreamNamespace: dsNS, name: "web"}); err != nil {
				t.Fatal(err)
			}
			if !tc.wantWrite {
				expectWrites(t, "upstream", env.upstreamDynamic.Actions(), nil)
				return
			}
			expectWrites(t, "upstream", env.upstreamDynamic.Actions(), []string{"update deployments/status"})
			update := findAction[clienttesting.UpdateActionImpl](t, env.upstreamDynamic.Actions(), "update", "deployments")
			if got := update.GetObject().(*unstructured.Unstructured).Object["status"]; !equality.Semantic.DeepEqual(got, readyStatus) {
				t.Errorf("wrote status %v, want this target's %v", got, readyStatus)
			}
		})
	}
}
