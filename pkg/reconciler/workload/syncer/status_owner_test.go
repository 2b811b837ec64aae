package syncer

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	clienttesting "k8s.io/client-go/testing"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// withStatusManager records manager as a writer of the object's status subresource, as the
// API server does in managedFields.
func withStatusManager(manager string) objectOption {
	return func(u *unstructured.Unstructured) {
		u.SetManagedFields(append(u.GetManagedFields(), metav1.ManagedFieldsEntry{
			Manager:     manager,
			Operation:   metav1.ManagedFieldsOperationUpdate,
			APIVersion:  "apps/v1",
			FieldsType:  "FieldsV1",
			FieldsV1:    metav1.NewFieldsV1(`{"f:status":{"f:replicas":{}}}`),
			Subresource: "status",
		}))
	}
}

// withSpecManager records manager as a writer of the object itself (no subresource).
func withSpecManager(manager string) objectOption {
	return func(u *unstructured.Unstructured) {
		u.SetManagedFields(append(u.GetManagedFields(), metav1.ManagedFieldsEntry{
			Manager:    manager,
			Operation:  metav1.ManagedFieldsOperationUpdate,
			APIVersion: "apps/v1",
			FieldsType: "FieldsV1",
			FieldsV1:   metav1.NewFieldsV1(`{"f:spec":{"f:replicas":{}}}`),
		}))
	}
}

// The syncer does not fight another field manager over an upstream object's .status (the
// Deployment controller of a plain Kubernetes hub): the downstream status goes to the
// per-target status annotation, .status is not written, and one Warning Event says so.
// A status only the syncer (by its field manager, or an earlier syncer by its user agent)
// and spec writers touched is written as before.
func TestStatusOwnedByAnotherManager(t *testing.T) {
	dsNS := downstreamNamespaceFor(t, testWorkspace, testNamespace)
	readyStatus := map[string]any{"replicas": int64(2), "readyReplicas": int64(2)}
	statusAnnotation := workloadv1alpha1.StatusAnnotation(testStKey)
	hubStatus := withField(map[string]any{"replicas": int64(2), "readyReplicas": int64(0)}, "status")

	for _, tc := range []struct {
		name     string
		upstream *unstructured.Unstructured
		// wantAnnotation: the status goes to the annotation (and one Event), else to .status.
		wantAnnotation bool
	}{
		{name: "status written by kube-controller-manager: annotation and Event",
			upstream:       upstreamDeployment("web", hubStatus, withSpecManager("kubectl-create"), withStatusManager(FieldManager), withStatusManager("kube-controller-manager")),
			wantAnnotation: true},
		{name: "status written by the syncer only: .status",
			upstream: upstreamDeployment("web", hubStatus, withSpecManager("kubectl-create"), withStatusManager(FieldManager))},
		{name: "status written by an earlier syncer (user-agent manager): .status",
			upstream: upstreamDeployment("web", hubStatus, withStatusManager(legacyStatusManager))},
		{name: "another manager on the object, not its status: .status",
			upstream: upstreamDeployment("web", hubStatus, withSpecManager("kube-controller-manager"))},
		{name: "no managedFields: .status",
			upstream: upstreamDeployment("web", hubStatus)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, testObjects{
				upstream:   []*unstructured.Unstructured{tc.upstream},
				downstream: []*unstructured.Unstructured{syncedCopy(t, tc.upstream, withField(readyStatus, "status"))},
				namespaces: []*corev1.Namespace{ownedNamespace(t)},
			})
			key := statusKey{gvr: deploymentsGVR, downstreamNamespace: dsNS, name: "web"}
			if _, err := env.status.reconcile(t.Context(), key); err != nil {
				t.Fatal(err)
			}
			expectWrites(t, "downstream", env.downstreamDynamic.Actions(), nil)
			events := env.events()
			if !tc.wantAnnotation {
				expectWrites(t, "upstream", env.upstreamDynamic.Actions(), []string{"update deployments/status"})
				update := findAction[clienttesting.UpdateActionImpl](t, env.upstreamDynamic.Actions(), "update", "deployments")
				if got := update.GetObject().(*unstructured.Unstructured).Object["status"]; !equality.Semantic.DeepEqual(got, readyStatus) {
					t.Errorf("got status %v, want the downstream %v", got, readyStatus)
				}
				if len(events) > 0 {
					t.Errorf("got Events %q, want none", events)
				}
				return
			}
			expectWrites(t, "upstream", env.upstreamDynamic.Actions(), []string{"patch deployments"})
			patch := findAction[clienttesting.PatchActionImpl](t, env.upstreamDynamic.Actions(), "patch", "deployments")
			got := decodePatch(t, patch.GetPatch())
			var status map[string]any
			if err := json.Unmarshal([]byte(got.GetAnnotations()[statusAnnotation]), &status); err != nil {
				t.Fatalf("invalid status annotation in patch %s: %v", patch.GetPatch(), err)
			}
			if !equality.Semantic.DeepEqual(status, map[string]any{"replicas": 2.0, "readyReplicas": 2.0}) {
				t.Errorf("got annotated status %v, want the downstream %v", status, readyStatus)
			}
			if len(got.Object) != 1 || len(got.GetAnnotations()) != 1 {
				t.Errorf("the patch must only set the annotation, got %s", patch.GetPatch())
			}
			if len(events) != 1 || !strings.HasPrefix(events[0], "Warning "+statusOwnedUpstreamReason+" ") ||
				!strings.Contains(events[0], "kube-controller-manager") || !strings.Contains(events[0], statusAnnotation) ||
				!strings.Contains(events[0], "without the workload controllers") {
				t.Errorf("got Events %q, want one Warning %s naming the manager, the annotation and the README advice", events, statusOwnedUpstreamReason)
			}
		})
	}
}

// The StatusOwnedUpstream Event is recorded once per object, not on every status change.
func TestStatusOwnedByAnotherManagerEventOnce(t *testing.T) {
	dsNS := downstreamNamespaceFor(t, testWorkspace, testNamespace)
	up := upstreamDeployment("web", withStatusManager("kube-controller-manager"))
	env := newTestEnv(t, testObjects{
		upstream:   []*unstructured.Unstructured{up},
		downstream: []*unstructured.Unstructured{syncedCopy(t, up, withField(map[string]any{"readyReplicas": int64(1)}, "status"))},
		namespaces: []*corev1.Namespace{ownedNamespace(t)},
	})
	key := statusKey{gvr: deploymentsGVR, downstreamNamespace: dsNS, name: "web"}
	for ready := int64(1); ready <= 3; ready++ {
		env.addToCache(t, env.downstreamCaches, syncedCopy(t, up, withField(map[string]any{"readyReplicas": ready}, "status")))
		if _, err := env.status.reconcile(t.Context(), key); err != nil {
			t.Fatal(err)
		}
	}
	if got := writes(env.upstreamDynamic.Actions()); len(got) != 3 || got[0] != "patch deployments" {
		t.Errorf("got upstream writes %q, want three annotation patches", got)
	}
	expectEvents(t, env.events(), []string{"Warning " + statusOwnedUpstreamReason})
}

// The memory of reported objects is bounded: the oldest is forgotten first.
func TestStatusOwnerReportsBounded(t *testing.T) {
	r := newStatusOwnerReports()
	for i := range statusOwnerReportsRemembered + 1 {
		if !r.firstTime(strconv.Itoa(i)) {
			t.Fatalf("object %d reported as seen before", i)
		}
	}
	if got := r.reported.Len(); got != statusOwnerReportsRemembered {
		t.Errorf("remembers %d objects, want at most %d", got, statusOwnerReportsRemembered)
	}
	if !r.firstTime("0") {
		t.Error("the oldest object is still remembered past the bound")
	}
}
