// Command workload-syncer is TMC's per-physical-cluster syncer: it syncs the workloads of
// the workspaces placed on its SyncTarget down to the cluster, copies their status back up,
// and heartbeats the SyncTarget.
//
// It only wires pkg/reconciler/workload/syncer and pkg/cliutil; it must not import the control-plane controllers or anything under test/.
package main
