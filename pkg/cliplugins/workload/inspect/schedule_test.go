package inspect

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clienttesting "k8s.io/client-go/testing"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcfake "github.com/tmc-dev/tmc/sdk/client/clientset/versioned/fake"
)

func TestCordonUncordonDrain(t *testing.T) {
	at := func(d time.Duration) *metav1.Time { return ago(-d) }
	tests := []struct {
		name        string
		command     string
		target      string
		args        []string
		spec        workloadv1alpha1.SyncTargetSpec
		wantSpec    workloadv1alpha1.SyncTargetSpec
		wantOut     string
		wantPatches int
		wantErr     string
	}{
		{
			name: "cordon", command: "cordon",
			wantSpec: workloadv1alpha1.SyncTargetSpec{Unschedulable: true}, wantPatches: 1,
			wantOut: "synctarget/cluster-1 cordoned\n",
		},
		{
			name: "cordon twice", command: "cordon",
			spec:     workloadv1alpha1.SyncTargetSpec{Unschedulable: true},
			wantSpec: workloadv1alpha1.SyncTargetSpec{Unschedulable: true},
			wantOut:  "synctarget/cluster-1 already cordoned\n",
		},
		{
			name: "uncordon", command: "uncordon",
			spec:    workloadv1alpha1.SyncTargetSpec{Unschedulable: true},
			wantOut: "synctarget/cluster-1 uncordoned\n", wantPatches: 1,
		},
		{
			name: "uncordon cancels a drain", command: "uncordon",
			spec:    workloadv1alpha1.SyncTargetSpec{Unschedulable: true, EvictAfter: ago(time.Minute)},
			wantOut: "synctarget/cluster-1 uncordoned (drain cancelled)\n", wantPatches: 1,
		},
		{
			name: "uncordon twice", command: "uncordon",
			wantOut: "synctarget/cluster-1 already uncordoned\n",
		},
		{
			name: "drain now", command: "drain",
			wantSpec:    workloadv1alpha1.SyncTargetSpec{Unschedulable: true, EvictAfter: at(0)},
			wantOut:     "synctarget/cluster-1 drained: its workloads are moving to other SyncTargets\n",
			wantPatches: 1,
		},
		{
			name: "drain later", command: "drain", args: []string{"--after", "30m"},
			wantSpec:    workloadv1alpha1.SyncTargetSpec{Unschedulable: true, EvictAfter: at(30 * time.Minute)},
			wantOut:     "synctarget/cluster-1 cordoned: its workloads move to other SyncTargets at 2026-03-01T12:30:00Z (in 30m)\n",
			wantPatches: 1,
		},
		{
			name: "drain twice", command: "drain",
			spec:     workloadv1alpha1.SyncTargetSpec{Unschedulable: true, EvictAfter: ago(5 * time.Minute)},
			wantSpec: workloadv1alpha1.SyncTargetSpec{Unschedulable: true, EvictAfter: ago(5 * time.Minute)},
			wantOut:  "synctarget/cluster-1 already drained: workloads are moving away since 5m\n",
		},
		{
			name: "drain now brings a scheduled drain forward", command: "drain",
			spec:        workloadv1alpha1.SyncTargetSpec{Unschedulable: true, EvictAfter: at(time.Hour)},
			wantSpec:    workloadv1alpha1.SyncTargetSpec{Unschedulable: true, EvictAfter: at(0)},
			wantOut:     "synctarget/cluster-1 drained: its workloads are moving to other SyncTargets\n",
			wantPatches: 1,
		},
		{
			name: "a later drain never postpones an earlier one", command: "drain", args: []string{"--after", "2h"},
			spec:     workloadv1alpha1.SyncTargetSpec{Unschedulable: true, EvictAfter: at(time.Hour)},
			wantSpec: workloadv1alpha1.SyncTargetSpec{Unschedulable: true, EvictAfter: at(time.Hour)},
			wantOut:  "synctarget/cluster-1 already draining: workloads move away in 60m\n",
		},
		{
			name: "drain cordons a target with a drain set by hand", command: "drain",
			spec:        workloadv1alpha1.SyncTargetSpec{EvictAfter: ago(time.Minute)},
			wantSpec:    workloadv1alpha1.SyncTargetSpec{Unschedulable: true, EvictAfter: ago(time.Minute)},
			wantOut:     "synctarget/cluster-1 already drained: workloads are moving away since 60s\n",
			wantPatches: 1,
		},
		{
			name: "negative after", command: "drain", args: []string{"--after", "-1m"},
			wantErr: "--after must not be negative",
		},
		{
			name: "unknown target", command: "cordon", target: "nope",
			wantErr: `SyncTarget "nope" not found in workspace root:locations`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := tmcfake.NewSimpleClientset(&workloadv1alpha1.SyncTarget{
				ObjectMeta: metav1.ObjectMeta{Name: "cluster-1"},
				Spec:       tt.spec,
			})
			newCmd := map[string]func(genericiooptions.IOStreams, upstream, func() time.Time) *cobra.Command{
				"cordon": newCordonCommand, "uncordon": newUncordonCommand, "drain": newDrainCommand,
			}[tt.command]
			streams, out, _ := newStreams()
			cmd := newCmd(streams, statusUpstream(client), fixedNow)
			target := tt.target
			if target == "" {
				target = "cluster-1"
			}
			err := execute(t, cmd, streams, append([]string{target}, tt.args...)...)
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
			patches := 0
			for _, a := range client.Actions() {
				if a.GetVerb() == "patch" {
					patches++
					if pt := a.(clienttesting.PatchAction).GetPatchType(); pt != "application/merge-patch+json" {
						t.Errorf("patch type %s, want a merge patch", pt)
					}
				}
			}
			if patches != tt.wantPatches {
				t.Errorf("%d patches, want %d", patches, tt.wantPatches)
			}
			st, err := client.WorkloadV1alpha1().SyncTargets().Get(t.Context(), "cluster-1", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if st.Spec.Unschedulable != tt.wantSpec.Unschedulable {
				t.Errorf("unschedulable = %v, want %v", st.Spec.Unschedulable, tt.wantSpec.Unschedulable)
			}
			if got, want := st.Spec.EvictAfter, tt.wantSpec.EvictAfter; (got == nil) != (want == nil) || (got != nil && !got.Equal(want)) {
				t.Errorf("evictAfter = %v, want %v", got, want)
			}
		})
	}
}
