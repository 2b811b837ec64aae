// Command tmc-controller runs TMC's control-plane controllers: placement of namespaces onto
// SyncTargets, Location status, SyncTarget heartbeat health, label propagation from
// namespaces to their objects, SyncTarget.status.workspaces and status.virtualWorkspaces,
// and the release of deleted or silent SyncTargets' upstream objects. Without --workspaces
// (and without --hub) it finds the workload workspaces itself: every workspace with a
// Placement, through the upstream's wildcard endpoint, bound at start and while running
// (workspaces.Discovery).
//
// It only wires the controllers of pkg/reconciler/workload and pkg/cliutil; it must not import the syncer or anything under test/.
package main
