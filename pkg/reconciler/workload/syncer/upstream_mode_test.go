package syncer

import (
	"testing"

	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func TestResolveUpstreamMode(t *testing.T) {
	kcp := syncTarget{workspace: "root:org:loc", name: "east"}
	hub := syncTarget{workspace: hubWorkspace, name: "east"}
	withViews := &workloadv1alpha1.SyncTarget{Status: workloadv1alpha1.SyncTargetStatus{
		VirtualWorkspaces: []workloadv1alpha1.VirtualWorkspace{{SyncerURL: "https://vw/services/syncer/lc/east/uid"}},
	}}
	withoutViews := &workloadv1alpha1.SyncTarget{}
	tests := []struct {
		name   string
		cfg    Config
		target syncTarget
		st     *workloadv1alpha1.SyncTarget
		want   UpstreamMode
	}{
		{name: "auto with views", target: kcp, st: withViews, want: UpstreamModeVirtualWorkspace},
		{name: "auto without views", target: kcp, st: withoutViews, want: UpstreamModeDirect},
		{name: "auto, SyncTarget unknown", target: kcp, want: UpstreamModeDirect},
		{name: "explicit auto with views", cfg: Config{UpstreamMode: UpstreamModeAuto}, target: kcp, st: withViews, want: UpstreamModeVirtualWorkspace},
		{name: "direct despite views", cfg: Config{UpstreamMode: UpstreamModeDirect}, target: kcp, st: withViews, want: UpstreamModeDirect},
		{name: "virtual-workspace before the views exist", cfg: Config{UpstreamMode: UpstreamModeVirtualWorkspace}, target: kcp, st: withoutViews, want: UpstreamModeVirtualWorkspace},
		{name: "a hub is direct", target: hub, st: withViews, want: UpstreamModeDirect},
		{name: "a static workspace list is direct", cfg: Config{Workspaces: []logicalcluster.Path{logicalcluster.NewPath("root:a")}}, target: kcp, st: withViews, want: UpstreamModeDirect},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := resolveUpstreamMode(&tc.cfg, tc.target, tc.st); got != tc.want {
				t.Errorf("mode = %s, want %s", got, tc.want)
			}
		})
	}
}
