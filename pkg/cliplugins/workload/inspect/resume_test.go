package inspect

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clienttesting "k8s.io/client-go/testing"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcfake "github.com/tmc-dev/tmc/sdk/client/clientset/versioned/fake"
)

func TestResumeDeletions(t *testing.T) {
	pausedMessage := "Deletions paused since 2026-03-01T11:59:00Z: more than 40 objects to delete within 1m0s. Held: 200 upstream-lost"
	tests := []struct {
		name       string
		target     string
		conditions []metav1.Condition
		wantOut    string
		wantErr    string
	}{
		{
			name: "paused",
			conditions: []metav1.Condition{condition(workloadv1alpha1.SyncTargetDeletionsPaused, metav1.ConditionTrue,
				workloadv1alpha1.ReasonDeletionBudgetExceeded, pausedMessage, time.Minute)},
			wantOut: "synctarget/cluster-1 deletions resumed at 2026-03-01T12:00:00Z; the syncer goes ahead with what it held.\n" +
				"Was paused (DeletionBudgetExceeded): " + pausedMessage + "\n",
		},
		{
			name: "not paused",
			conditions: []metav1.Condition{condition(workloadv1alpha1.SyncTargetDeletionsPaused, metav1.ConditionFalse,
				workloadv1alpha1.ReasonDeletionsWithinBudget, "", time.Hour)},
			wantOut: "synctarget/cluster-1 deletions resumed at 2026-03-01T12:00:00Z; they were not paused (DeletionsPaused False (DeletionsWithinBudget))\n",
		},
		{
			name:    "no condition yet",
			wantOut: "synctarget/cluster-1 deletions resumed at 2026-03-01T12:00:00Z; they were not paused (DeletionsPaused not reported)\n",
		},
		{
			name: "unknown target", target: "nope",
			wantErr: `SyncTarget "nope" not found in workspace root:locations`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := tmcfake.NewSimpleClientset(&workloadv1alpha1.SyncTarget{
				ObjectMeta: metav1.ObjectMeta{Name: "cluster-1", Annotations: map[string]string{"keep": "me"}},
				Status:     workloadv1alpha1.SyncTargetStatus{Conditions: tt.conditions},
			})
			streams, out, _ := newStreams()
			// Half a second past the full second: the annotation keeps it.
			now := func() time.Time { return testNow.Add(500 * time.Millisecond) }
			cmd := newResumeDeletionsCommand(streams, statusUpstream(client), now)
			target := tt.target
			if target == "" {
				target = "cluster-1"
			}
			err := execute(t, cmd, streams, target)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.wantOut {
				t.Errorf("output = %q, want %q", out.String(), tt.wantOut)
			}
			var patches []clienttesting.PatchAction
			for _, a := range client.Actions() {
				if p, ok := a.(clienttesting.PatchAction); ok {
					patches = append(patches, p)
				}
			}
			if len(patches) != 1 || patches[0].GetPatchType() != "application/merge-patch+json" || patches[0].GetSubresource() != "" {
				t.Fatalf("got patches %+v, want one merge patch of the SyncTarget itself", patches)
			}
			st, err := client.WorkloadV1alpha1().SyncTargets().Get(t.Context(), "cluster-1", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := st.Annotations[workloadv1alpha1.ResumeDeletionsAnnotation]
			if at, err := time.Parse(time.RFC3339, got); err != nil || !at.Equal(now()) {
				t.Errorf("resume annotation %q, want %s (RFC3339 with sub-second precision)", got, now().Format(time.RFC3339Nano))
			}
			if st.Annotations["keep"] != "me" {
				t.Errorf("other annotations were lost: %v", st.Annotations)
			}
		})
	}
}
