package syncer

import (
	"errors"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// errUpstreamModeChanged ends a run in auto mode whose SyncTarget gained or lost its syncer
// views: the syncer exits and is restarted in the other mode (its informers and clients
// differ entirely). Nothing downstream is touched.
var errUpstreamModeChanged = errors.New("the SyncTarget's status.virtualWorkspaces changed between none and some: restarting to switch between direct and virtual-workspace mode")

// resolveUpstreamMode returns how this run reaches the workload workspaces: a plain hub and
// a static workspace list are direct; auto follows the SyncTarget's syncer views.
func resolveUpstreamMode(cfg *Config, target syncTarget, st *workloadv1alpha1.SyncTarget) UpstreamMode {
	switch {
	case target.workspace == hubWorkspace, len(cfg.Workspaces) > 0:
		return UpstreamModeDirect
	case cfg.UpstreamMode == UpstreamModeDirect || cfg.UpstreamMode == UpstreamModeVirtualWorkspace:
		return cfg.UpstreamMode
	case st != nil && len(viewURLs(st)) > 0:
		return UpstreamModeVirtualWorkspace
	default:
		return UpstreamModeDirect
	}
}
