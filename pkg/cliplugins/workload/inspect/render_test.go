package inspect

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func TestVerdict(t *testing.T) {
	deployment := fromYAML(t, upstreamDeployment)
	desired := desiredFor(t, deployment)
	unlabelled := deployment.DeepCopy()
	unlabelled.SetLabels(map[string]string{"app": "web"})
	unlabelled.SetFinalizers(nil)
	removal := deployment.DeepCopy()
	annotations := removal.GetAnnotations()
	annotations[workloadv1alpha1.DeletionAnnotation(testKey)] = "2026-03-01T11:00:00Z"
	removal.SetAnnotations(annotations)

	tests := []struct {
		name     string
		upstream *unstructured.Unstructured
		live     *unstructured.Unstructured
		want     string
	}{
		{name: "absent", live: nil, want: "not present downstream"},
		{name: "applied, with defaults and status", live: liveFrom(t, desired, nil), want: "up to date"},
		{
			name: "upstream changed since the last apply",
			live: liveFrom(t, desired, func(live *unstructured.Unstructured) {
				ann := live.GetAnnotations()
				ann[transform.SpecHashAnnotation] = "0123456789abcdef"
				live.SetAnnotations(ann)
			}),
			want: "would apply: hash changed",
		},
		{
			name: "drift",
			live: liveFrom(t, desired, func(live *unstructured.Unstructured) {
				must(t, unstructured.SetNestedField(live.Object, int64(5), "spec", "replicas"))
			}),
			want: "would apply: drift at spec.replicas",
		},
		{
			name: "not ours",
			live: liveFrom(t, desired, func(live *unstructured.Unstructured) {
				live.SetLabels(map[string]string{"app": "web"})
			}),
			want: "conflict: exists without the ownership label",
		},
		{
			name: "owned by another target",
			live: liveFrom(t, desired, func(live *unstructured.Unstructured) {
				live.SetLabels(map[string]string{workloadv1alpha1.InternalDownstreamClusterLabel: "otherkey"})
			}),
			want: "conflict: exists without the ownership label",
		},
		{
			name: "being deleted",
			live: liveFrom(t, desired, func(live *unstructured.Unstructured) {
				ts := metav1.NewTime(testNow)
				live.SetDeletionTimestamp(&ts)
			}),
			want: "being deleted downstream: the syncer re-creates it once it is gone",
		},
		{
			name: "not labelled", upstream: unlabelled, live: nil,
			want: "not present downstream (but the object is not labelled for this SyncTarget)",
		},
		{
			name: "removal requested", upstream: removal, live: liveFrom(t, desired, nil),
			want: "up to date (but the syncer deletes it: removal from this SyncTarget is requested)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := tt.upstream
			if up == nil {
				up = deployment
			}
			p, err := buildPreview(t.Context(), previewInput{
				workloadWorkspace: testWorkloadWorkspace, locationWorkspace: testLocationWorkspace,
				syncTarget: testSyncTarget, gvr: deploymentsGVR, upstreamObj: up,
			})
			must(t, err)
			if got := verdict(p, tt.live); got != tt.want {
				t.Errorf("verdict = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPreviewNotes(t *testing.T) {
	deployment := fromYAML(t, upstreamDeployment)
	synced := func(state workloadv1alpha1.ResourceState, message string) []workloadv1alpha1.SyncedResource {
		return []workloadv1alpha1.SyncedResource{{ResourceToSync: workloadv1alpha1.ResourceToSync{Group: "apps", Resource: "deployments"}, State: state, Message: message}}
	}
	placed := []workloadv1alpha1.WorkspaceReference{{Path: testWorkloadWorkspace}}
	tests := []struct {
		name      string
		status    workloadv1alpha1.SyncTargetStatus
		location  string
		wantNotes []string
	}{
		{name: "accepted and placed", status: workloadv1alpha1.SyncTargetStatus{SyncedResources: synced(workloadv1alpha1.ResourceStateAccepted, ""), Workspaces: placed}},
		{
			name:      "incompatible",
			status:    workloadv1alpha1.SyncTargetStatus{SyncedResources: synced(workloadv1alpha1.ResourceStateIncompatible, "API group \"apps\" is not served"), Workspaces: placed},
			wantNotes: []string{`Warning: SyncTarget cluster-1 does not accept deployments.apps (state Incompatible: API group "apps" is not served).`},
		},
		{
			name:      "not requested",
			status:    workloadv1alpha1.SyncTargetStatus{SyncedResources: accepted(workloadv1alpha1.ResourceToSync{Resource: "configmaps"}), Workspaces: placed},
			wantNotes: []string{"Warning: deployments.apps is not among the resource types of SyncTarget cluster-1."},
		},
		{
			name: "nothing reported, not placed",
			wantNotes: []string{
				"Warning: SyncTarget cluster-1 has not reported its synced resources yet; is its syncer running?",
				"Warning: workspace root:org:team-a is not in the status.workspaces of SyncTarget cluster-1, so its syncer does not watch it (unless started with --workspaces).",
			},
		},
		{
			name:     "plain hub: one workspace, always watched",
			location: hubWorkspace,
			status:   workloadv1alpha1.SyncTargetStatus{SyncedResources: synced(workloadv1alpha1.ResourceStateAccepted, "")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := testSyncTarget.DeepCopy()
			st.Status = tt.status
			location := tt.location
			if location == "" {
				location = testLocationWorkspace
			}
			up := deployment.DeepCopy()
			// Keep the object labelled for the target, whatever its key.
			up.SetLabels(map[string]string{workloadv1alpha1.ClusterResourceStateLabel(workloadv1alpha1.SyncTargetKeyOf(st, location)): "Sync"})
			up.SetFinalizers(nil)
			p, err := buildPreview(t.Context(), previewInput{
				workloadWorkspace: testWorkloadWorkspace, locationWorkspace: location,
				syncTarget: st, gvr: deploymentsGVR, upstreamObj: up,
			})
			must(t, err)
			if strings.Join(p.notes, "\n") != strings.Join(tt.wantNotes, "\n") {
				t.Errorf("notes:\n%s\nwant:\n%s", strings.Join(p.notes, "\n"), strings.Join(tt.wantNotes, "\n"))
			}
		})
	}
}
