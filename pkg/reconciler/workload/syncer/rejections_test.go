package syncer

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const rejectedMessage = `pods "web-5d9c7b-x2k4q" is forbidden: violates PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)`

// failingStatus is a Deployment status whose pods the ReplicaSet controller cannot create.
func failingStatus(message string) map[string]any {
	return map[string]any{
		"replicas": int64(0),
		"conditions": []any{
			map[string]any{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
			map[string]any{"type": replicaFailureCondition, "status": "True", "reason": "FailedCreate", "message": message},
		},
	}
}

// A ReplicaFailure=True condition downstream is reported once as a Warning Event on the
// upstream workload: when it first goes up, not again once the upstream status (or the
// per-target annotation) shows it, and again when the failure changes.
func TestStatusReportsRejectedPods(t *testing.T) {
	dsNS := downstreamNamespaceFor(t, testWorkspace, testNamespace)
	failing := failingStatus(rejectedMessage)
	failingJSON, err := json.Marshal(failing)
	if err != nil {
		t.Fatal(err)
	}
	onTwoTargets := withLabel(workloadv1alpha1.ClusterResourceStateLabel(otherStKey), workloadv1alpha1.ResourceStateSync)
	for _, tc := range []struct {
		name       string
		upstream   *unstructured.Unstructured
		downstream map[string]any
		wantEvent  bool
	}{
		{name: "failure appears downstream: Event", upstream: upstreamDeployment("web"), downstream: failing, wantEvent: true},
		{name: "failure already copied up: no Event", upstream: upstreamDeployment("web", withField(failing, "status")), downstream: failing},
		{name: "failure changed: Event", upstream: upstreamDeployment("web", withField(failingStatus("exceeded quota: compute"), "status")), downstream: failing, wantEvent: true},
		{name: "no failure: no Event", upstream: upstreamDeployment("web"), downstream: map[string]any{"replicas": int64(2), "conditions": []any{
			map[string]any{"type": replicaFailureCondition, "status": "False", "reason": "FailedCreate"},
		}}},
		{name: "several targets, failure new: Event", upstream: upstreamDeployment("web", onTwoTargets), downstream: failing, wantEvent: true},
		{name: "several targets, failure in the annotation: no Event",
			upstream:   upstreamDeployment("web", onTwoTargets, withAnnotation(workloadv1alpha1.StatusAnnotation(testStKey), string(failingJSON))),
			downstream: failing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, testObjects{
				upstream:   []*unstructured.Unstructured{tc.upstream},
				downstream: []*unstructured.Unstructured{syncedCopy(t, tc.upstream, withField(tc.downstream, "status"))},
				namespaces: []*corev1.Namespace{ownedNamespace(t)},
			})
			if _, err := env.status.reconcile(t.Context(), statusKey{gvr: deploymentsGVR, downstreamNamespace: dsNS, name: "web"}); err != nil {
				t.Fatal(err)
			}
			events := drainEvents(env.recorder)
			if !tc.wantEvent {
				if len(events) > 0 {
					t.Errorf("got Events %q, want none", events)
				}
				return
			}
			if len(events) != 1 || !strings.HasPrefix(events[0], "Warning PodsRejected ") ||
				!strings.Contains(events[0], "violates PodSecurity") || !strings.Contains(events[0], testSyncTargetName) {
				t.Errorf("got Events %q, want one Warning PodsRejected naming the SyncTarget and the PodSecurity violation", events)
			}
		})
	}
}

// When another manager owns the upstream .status (a hub's Deployment controller), the
// failure goes up in the per-target annotation: found there, it is not reported again.
func TestRejectionsReadTheAnnotationWhenStatusIsOwnedUpstream(t *testing.T) {
	dsNS := downstreamNamespaceFor(t, testWorkspace, testNamespace)
	failing := failingStatus(rejectedMessage)
	failingJSON, err := json.Marshal(failing)
	if err != nil {
		t.Fatal(err)
	}
	up := upstreamDeployment("web", withStatusManager("kube-controller-manager"),
		withAnnotation(workloadv1alpha1.StatusAnnotation(testStKey), string(failingJSON)))
	env := newTestEnv(t, testObjects{
		upstream:   []*unstructured.Unstructured{up},
		downstream: []*unstructured.Unstructured{syncedCopy(t, up, withField(failing, "status"))},
		namespaces: []*corev1.Namespace{ownedNamespace(t)},
	})
	if _, err := env.status.reconcile(t.Context(), statusKey{gvr: deploymentsGVR, downstreamNamespace: dsNS, name: "web"}); err != nil {
		t.Fatal(err)
	}
	for _, e := range drainEvents(env.recorder) {
		if strings.Contains(e, podsRejectedReason) {
			t.Errorf("got %q: a failure already in the status annotation was reported again", e)
		}
	}
}
