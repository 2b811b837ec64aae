package inspect

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
	tmcfake "github.com/tmc-dev/tmc/sdk/client/clientset/versioned/fake"
)

func ago(d time.Duration) *metav1.Time {
	t := metav1.NewTime(testNow.Add(-d))
	return &t
}

func condition(typ string, status metav1.ConditionStatus, reason, message string, since time.Duration) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: message, LastTransitionTime: *ago(since)}
}

func accepted(resources ...workloadv1alpha1.ResourceToSync) []workloadv1alpha1.SyncedResource {
	var out []workloadv1alpha1.SyncedResource
	for _, r := range resources {
		out = append(out, workloadv1alpha1.SyncedResource{ResourceToSync: r, Versions: []string{"v1"}, State: workloadv1alpha1.ResourceStateAccepted})
	}
	return out
}

// detailedSyncTarget has every part of the status filled in.
func detailedSyncTarget() *workloadv1alpha1.SyncTarget {
	capacity := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("16"), corev1.ResourceMemory: resource.MustParse("64Gi"), corev1.ResourcePods: resource.MustParse("220")}
	allocatable := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("15500m"), corev1.ResourceMemory: resource.MustParse("60Gi"), corev1.ResourcePods: resource.MustParse("220")}
	synced := accepted(workloadv1alpha1.DefaultResources()[:3]...)
	synced = append(synced, workloadv1alpha1.SyncedResource{
		ResourceToSync: workloadv1alpha1.ResourceToSync{Group: "apps", Resource: "deployments"},
		Versions:       []string{"v1"}, State: workloadv1alpha1.ResourceStateAccepted,
	}, workloadv1alpha1.SyncedResource{
		ResourceToSync: workloadv1alpha1.ResourceToSync{Group: "networking.k8s.io", Resource: "ingresses"},
		State:          workloadv1alpha1.ResourceStateUnauthorized, Message: "the syncer may not\ncreate ingresses.networking.k8s.io",
	})
	return &workloadv1alpha1.SyncTarget{
		ObjectMeta: metav1.ObjectMeta{Name: "cluster-1", UID: "7d3c0f4e-1111-4222-8333-944455556666", Labels: map[string]string{"region": "eu-west", "env": "prod"}},
		Spec:       workloadv1alpha1.SyncTargetSpec{Cells: map[string]string{"cloud": "aws"}},
		Status: workloadv1alpha1.SyncTargetStatus{
			Conditions: []metav1.Condition{
				condition(workloadv1alpha1.SyncTargetReady, metav1.ConditionTrue, workloadv1alpha1.ReasonReady, "", 2*time.Hour),
				condition(workloadv1alpha1.SyncTargetSyncerReady, metav1.ConditionTrue, workloadv1alpha1.ReasonSyncerStarted, "syncer v0.3.0 started", 2*time.Hour),
				condition(workloadv1alpha1.SyncTargetHeartbeatHealthy, metav1.ConditionTrue, workloadv1alpha1.ReasonHeartbeatReceived, "", 90*time.Minute),
				condition(workloadv1alpha1.SyncTargetSyncerAuthorized, metav1.ConditionFalse, workloadv1alpha1.ReasonSyncerUnauthorized, "cannot create ingresses.networking.k8s.io", 2*time.Hour),
				condition(workloadv1alpha1.SyncTargetResourcesSynced, metav1.ConditionFalse, workloadv1alpha1.ReasonResourceSyncErrors, "2 objects failing", 4*time.Minute),
				condition(workloadv1alpha1.SyncTargetSyncerConfined, metav1.ConditionFalse, workloadv1alpha1.ReasonBindingMissing,
					"ValidatingAdmissionPolicyBinding tmc-syncer-cluster-1-0123abcd does not exist on the physical cluster", 3*time.Minute),
			},
			LastSyncerHeartbeatTime: ago(12 * time.Second),
			SyncedResources:         synced,
			Workspaces:              []workloadv1alpha1.WorkspaceReference{{Path: "root:org:team-a"}, {Path: "root:org:team-b"}, {Path: "root:org:team-c"}, {Path: "root:org:team-d"}},
			WorkspaceHealth: []workloadv1alpha1.WorkspaceHealth{
				{Path: "root:org:team-a", Ready: true},
				{Path: "root:org:team-b", Reason: workloadv1alpha1.WorkspaceForbidden, Message: `The syncer may not list configmaps: configmaps is forbidden`},
				{Path: "root:org:team-c", Reason: "Syncing", Message: "waiting for the informers"},
				{Path: "root:org:gone", Ready: true},
			},
			VirtualWorkspaces: []workloadv1alpha1.VirtualWorkspace{
				{SyncerURL: "https://vw-1.example.com:6444/services/syncer/2x7hd9kq1lm/cluster-1/7d3c0f4e-1111-4222-8333-944455556666"},
				{SyncerURL: "https://vw-2.example.com:6444/services/syncer/2x7hd9kq1lm/cluster-1/7d3c0f4e-1111-4222-8333-944455556666"},
			},
			Capacity:    &capacity,
			Allocatable: &allocatable,
			Syncer:      &workloadv1alpha1.SyncerInfo{Version: "v0.3.0", Pod: "tmc-syncer/syncer-cluster-1-5f7d9-abcde", StartTime: ago(2 * time.Hour)},
			Errors: &workloadv1alpha1.ErrorSummary{
				Counts: map[string]int64{"ResourceConflict": 2, "NetworkError": 1},
				Recent: []workloadv1alpha1.SyncerError{
					{Type: "ResourceConflict", Workspace: "root:org:team-a", Resource: "deployments.apps default/web", Message: "Deployment kcp-1a2b3c4d5e6f/web already exists without the label", Time: *ago(40 * time.Second)},
					{Type: "NetworkError", Message: "dial tcp 10.0.0.1:6443: connect: connection refused", Time: *ago(25 * time.Minute)},
				},
			},
		},
	}
}

// tableSyncTargets covers every column value, in unsorted order.
func tableSyncTargets() []runtime.Object {
	incompatible := accepted(workloadv1alpha1.DefaultResources()...)
	incompatible[9].State = workloadv1alpha1.ResourceStateIncompatible
	return []runtime.Object{
		&workloadv1alpha1.SyncTarget{
			ObjectMeta: metav1.ObjectMeta{Name: "cluster-3"},
			Spec: workloadv1alpha1.SyncTargetSpec{
				EvictAfter: ago(time.Minute),
				Resources:  []workloadv1alpha1.ResourceToSync{{Resource: "configmaps"}, {Group: "apps", Resource: "deployments"}},
			},
		},
		&workloadv1alpha1.SyncTarget{
			ObjectMeta: metav1.ObjectMeta{Name: "cluster-2"},
			Spec:       workloadv1alpha1.SyncTargetSpec{Unschedulable: true},
			Status: workloadv1alpha1.SyncTargetStatus{
				Conditions:              []metav1.Condition{condition(workloadv1alpha1.SyncTargetReady, metav1.ConditionFalse, workloadv1alpha1.ReasonNotReady, "", time.Minute)},
				LastSyncerHeartbeatTime: ago(5*time.Minute + 3*time.Second),
				SyncedResources:         incompatible,
			},
		},
		detailedSyncTarget(),
		&workloadv1alpha1.SyncTarget{
			ObjectMeta: metav1.ObjectMeta{Name: "cluster-4"},
			Spec:       workloadv1alpha1.SyncTargetSpec{Unschedulable: true, EvictAfter: ago(-10 * time.Minute)},
			Status: workloadv1alpha1.SyncTargetStatus{
				Conditions: []metav1.Condition{
					condition(workloadv1alpha1.SyncTargetReady, metav1.ConditionTrue, workloadv1alpha1.ReasonReady, "", time.Hour),
					condition(workloadv1alpha1.SyncTargetSyncerConfined, metav1.ConditionTrue, workloadv1alpha1.ReasonSyncerConfined, "", time.Hour),
				},
				LastSyncerHeartbeatTime: ago(3 * 24 * time.Hour),
				SyncedResources:         accepted(workloadv1alpha1.DefaultResources()...),
				Workspaces:              []workloadv1alpha1.WorkspaceReference{{Path: "root:org:team-c"}},
			},
		},
	}
}

func statusUpstream(client tmcclient.Interface) *fakeUpstream {
	return &fakeUpstream{currentWorkspace: "root:locations", tmc: map[string]tmcclient.Interface{"": client}}
}

func TestStatusGolden(t *testing.T) {
	tests := []struct {
		name    string
		objects []runtime.Object
		args    []string
		golden  string
	}{
		{name: "table", objects: tableSyncTargets(), golden: "status-table.golden"},
		{name: "detailed view", objects: tableSyncTargets(), args: []string{"cluster-1"}, golden: "status-detail.golden"},
		{name: "detailed view of a new target", objects: tableSyncTargets(), args: []string{"cluster-3"}, golden: "status-detail-new.golden"},
		{name: "detailed view of a draining target", objects: tableSyncTargets(), args: []string{"cluster-4"}, golden: "status-detail-draining.golden"},
		{name: "yaml", objects: []runtime.Object{detailedSyncTarget()}, args: []string{"cluster-1", "-o", "yaml"}, golden: "status-cluster-1.yaml.golden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			streams, out, errOut := newStreams()
			cmd := newStatusCommand(streams, statusUpstream(tmcfake.NewSimpleClientset(tt.objects...)), fixedNow)
			if err := execute(t, cmd, streams, tt.args...); err != nil {
				t.Fatalf("status failed: %v", err)
			}
			if errOut.Len() != 0 {
				t.Errorf("unexpected stderr: %q", errOut.String())
			}
			checkGolden(t, tt.golden, out.String())
		})
	}
}

func TestStatusJSONList(t *testing.T) {
	streams, out, _ := newStreams()
	cmd := newStatusCommand(streams, statusUpstream(tmcfake.NewSimpleClientset(tableSyncTargets()...)), fixedNow)
	if err := execute(t, cmd, streams, "-o", "json"); err != nil {
		t.Fatal(err)
	}
	var list struct {
		Kind  string                        `json:"kind"`
		Items []workloadv1alpha1.SyncTarget `json:"items"`
	}
	if err := json.Unmarshal(out.Bytes(), &list); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if list.Kind != "List" || len(list.Items) != 4 {
		t.Fatalf("got kind %q with %d items, want a List of 4", list.Kind, len(list.Items))
	}
	for i, st := range list.Items {
		if st.Kind != "SyncTarget" || st.APIVersion != "workload.kcp.io/v1alpha1" {
			t.Errorf("item %d has type %s %s", i, st.APIVersion, st.Kind)
		}
		if want := []string{"cluster-1", "cluster-2", "cluster-3", "cluster-4"}[i]; st.Name != want {
			t.Errorf("item %d is %s, want %s (sorted by name)", i, st.Name, want)
		}
	}
}

// TestStatusOutputOmitsManagedFields checks -o json|yaml print as kubectl does without
// --show-managed-fields, for one SyncTarget and for the list.
func TestStatusOutputOmitsManagedFields(t *testing.T) {
	st := detailedSyncTarget()
	st.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "tmc-workload-syncer", Operation: metav1.ManagedFieldsOperationUpdate}}
	for _, args := range [][]string{{"-o", "json"}, {"-o", "yaml"}, {"cluster-1", "-o", "json"}, {"cluster-1", "-o", "yaml"}} {
		streams, out, _ := newStreams()
		cmd := newStatusCommand(streams, statusUpstream(tmcfake.NewSimpleClientset(st)), fixedNow)
		if err := execute(t, cmd, streams, args...); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if strings.Contains(out.String(), "managedFields") || !strings.Contains(out.String(), "workload.kcp.io/v1alpha1") {
			t.Errorf("%v: want the typed object without managedFields, got:\n%s", args, out)
		}
	}
}

func TestStatusErrors(t *testing.T) {
	tests := []struct {
		name       string
		objects    []runtime.Object
		args       []string
		wantErr    string
		wantStderr string
	}{
		{name: "no targets", wantStderr: "No SyncTargets found in workspace root:locations.\n"},
		{name: "unknown target", objects: tableSyncTargets(), args: []string{"nope"}, wantErr: `SyncTarget "nope" not found in workspace root:locations`},
		{name: "bad output", args: []string{"-o", "wide"}, wantErr: `unsupported output format "wide"`},
		{name: "two names", args: []string{"a", "b"}, wantErr: "accepts at most 1 arg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			streams, out, errOut := newStreams()
			cmd := newStatusCommand(streams, statusUpstream(tmcfake.NewSimpleClientset(tt.objects...)), fixedNow)
			err := execute(t, cmd, streams, tt.args...)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
			if errOut.String() != tt.wantStderr {
				t.Errorf("stderr = %q, want %q", errOut.String(), tt.wantStderr)
			}
			if tt.wantErr != "" && out.Len() != 0 {
				t.Errorf("unexpected stdout: %q", out.String())
			}
		})
	}
}

func TestColumns(t *testing.T) {
	tests := []struct {
		name                               string
		st                                 workloadv1alpha1.SyncTarget
		ready, heartbeat, resources, sched string
		errors                             int64
	}{
		{
			name:  "empty",
			ready: "Unknown", heartbeat: "never", resources: "0/10", sched: "yes",
		},
		{
			name: "ready, errors",
			st: workloadv1alpha1.SyncTarget{Status: workloadv1alpha1.SyncTargetStatus{
				Conditions:              []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue}},
				LastSyncerHeartbeatTime: ago(12 * time.Second),
				SyncedResources:         accepted(workloadv1alpha1.ResourceToSync{Resource: "configmaps"}),
				Errors:                  &workloadv1alpha1.ErrorSummary{Counts: map[string]int64{"A": 3, "B": 4}},
			}},
			ready: "True", heartbeat: "12s", resources: "1/1", sched: "yes", errors: 7,
		},
		{
			name: "a type being released is not counted as requested",
			st: workloadv1alpha1.SyncTarget{Status: workloadv1alpha1.SyncTargetStatus{
				SyncedResources: append(accepted(workloadv1alpha1.ResourceToSync{Resource: "secrets"}), workloadv1alpha1.SyncedResource{
					ResourceToSync: workloadv1alpha1.ResourceToSync{Resource: "configmaps"}, State: workloadv1alpha1.ResourceStateReleasing,
				}),
			}},
			ready: "Unknown", heartbeat: "never", resources: "1/1 (1 releasing)", sched: "yes",
		},
		{
			name:  "cordoned, old heartbeat",
			st:    workloadv1alpha1.SyncTarget{Spec: workloadv1alpha1.SyncTargetSpec{Unschedulable: true}, Status: workloadv1alpha1.SyncTargetStatus{LastSyncerHeartbeatTime: ago(90 * time.Minute)}},
			ready: "Unknown", heartbeat: "90m", resources: "0/10", sched: "cordoned",
		},
		{
			name:  "drain due now",
			st:    workloadv1alpha1.SyncTarget{Spec: workloadv1alpha1.SyncTargetSpec{Unschedulable: true, EvictAfter: ago(0)}},
			ready: "Unknown", heartbeat: "never", resources: "0/10", sched: "draining",
		},
		{
			name:  "drain ahead without cordon",
			st:    workloadv1alpha1.SyncTarget{Spec: workloadv1alpha1.SyncTargetSpec{EvictAfter: ago(-30 * time.Second)}},
			ready: "Unknown", heartbeat: "never", resources: "0/10", sched: "yes (drain in 30s)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := []string{readyStatus(&tt.st), heartbeatAge(&tt.st, testNow), resourceCounts(&tt.st), schedulable(&tt.st, testNow)}
			want := []string{tt.ready, tt.heartbeat, tt.resources, tt.sched}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("column %d = %q, want %q", i, got[i], want[i])
				}
			}
			if n := errorTotal(&tt.st); n != tt.errors {
				t.Errorf("errors = %d, want %d", n, tt.errors)
			}
		})
	}
}
