package syncer

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// TestReleaseClearsUpstreamStatus: when a per-target removal leaves the object on no
// target, the status its copy reported is cleared through the status subresource before
// the release; never while another target syncs it, for a user deletion, or for a type
// without status.
func TestReleaseClearsUpstreamStatus(t *testing.T) {
	removal := withAnnotation(workloadv1alpha1.DeletionAnnotation(testStKey), "2026-01-01T00:00:00Z")
	readyStatus := withField(map[string]any{"replicas": int64(2), "readyReplicas": int64(2)}, "status")
	otherTarget := withLabel(workloadv1alpha1.ClusterResourceStateLabel(otherStKey), workloadv1alpha1.ResourceStateSync)
	deploymentKey := specKey{workspace: testWorkspace, gvr: deploymentsGVR, upstreamNamespace: testNamespace, name: "web"}
	tests := []struct {
		name       string
		upstream   *unstructured.Unstructured
		unlabelled bool // the object left the cache: unscheduled
		key        specKey
		wantWrites []string
	}{
		{
			name:       "per-target removal, no target left: status cleared, then released",
			upstream:   upstreamDeployment("web", removal, readyStatus),
			key:        deploymentKey,
			wantWrites: []string{"patch deployments/status", "patch deployments"},
		},
		{
			name:       "unscheduled (state label gone), no target left: status cleared, then released",
			upstream:   upstreamDeployment("web", withLabel(testStateKey, ""), readyStatus),
			unlabelled: true,
			key:        deploymentKey,
			wantWrites: []string{"patch deployments/status", "patch deployments"},
		},
		{
			name:       "another target still syncs it: status kept",
			upstream:   upstreamDeployment("web", removal, readyStatus, otherTarget),
			key:        deploymentKey,
			wantWrites: []string{"patch deployments"},
		},
		{
			name:       "deleted by the user: status kept",
			upstream:   upstreamDeployment("web", deleting, readyStatus),
			key:        deploymentKey,
			wantWrites: []string{"patch deployments"},
		},
		{
			name:       "no status: nothing to clear",
			upstream:   upstreamDeployment("web", removal, withField(map[string]any{}, "status")),
			key:        deploymentKey,
			wantWrites: []string{"patch deployments"},
		},
		{
			name:       "type without status: nothing to clear",
			upstream:   upstreamConfigMap("web", removal, readyStatus),
			key:        webKey,
			wantWrites: []string{"patch configmaps"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs := testObjects{upstream: []*unstructured.Unstructured{tc.upstream}}
			if tc.unlabelled {
				objs = testObjects{upstreamLiveOnly: []*unstructured.Unstructured{tc.upstream}}
			}
			env := newTestEnv(t, objs)
			if _, err := env.spec.reconcile(t.Context(), tc.key); err != nil {
				t.Fatal(err)
			}
			expectWrites(t, "upstream", env.upstreamDynamic.Actions(), tc.wantWrites)
			if len(tc.wantWrites) < 2 {
				return
			}
			patch := expectMetadataPatch(t, env.upstreamDynamic.Actions(), "deployments", "status", "7")
			if !isNull(patch.Object, "status") {
				t.Errorf("the status patch must set status to null: %v", patch.Object)
			}
			obj := liveUpstream(t, env, deploymentsGVR, "web")
			if _, found, _ := unstructured.NestedFieldNoCopy(obj.Object, "status"); found {
				t.Errorf("status still there: %v", obj.Object["status"])
			}
			if _, labelled := obj.GetLabels()[testStateKey]; labelled {
				t.Errorf("the release must follow the status clear: labels %v", obj.GetLabels())
			}
		})
	}
}
