// Package synctarget keeps SyncTarget.status.workspaces (and status.workspaceCount) of
// every SyncTarget in the location workspaces equal to the sorted set of workload
// workspaces that have, for the target's key, at least one namespace with the state label
// (any value) or the deletion annotation, or at least one object still carrying the state
// label. The workload-syncer watches exactly these workspaces, so a workspace stays listed
// until the syncer has released every object in it.
//
// Workload workspaces can be added while it runs (AddWorkloadWorkspace, a
// workspaces.Binder). Until the namespaces of such a workspace have synced, it may be added
// to status.workspaces but is never removed from it: a partial cache must not make the
// syncer stop watching a workspace with placed namespaces.
//
// It writes with server-side apply on the status subresource under its own field manager
// (WorkspacesFieldManager), with only those two fields, so that it never overwrites the
// syncer's or the other controllers' status fields; it writes only when they differ.
//
// Failures are retried by the one TMC retry rule of pkg/reconciler/queue, which runs the
// workers; a SyncTarget that is gone is dropped.
//
// Layout: controller.go (wiring: informers, handlers, queue), workspaces.go (per-SyncTarget
// logic and the apply).
//
// VirtualWorkspacesController (virtualworkspaces.go) owns status.virtualWorkspaces: one
// entry {syncerURL, upsyncerURL} per virtual-workspace server (tmc-controller
// --virtual-workspace-url, one per shard, in flag order), the syncer and upsyncer views of
// the SyncTarget (workloadv1alpha1.SyncerVirtualWorkspaceURL, UpsyncerVirtualWorkspaceURL);
// no server removes the field. It replaces
// the whole list with a JSON merge patch on the status subresource under
// VirtualWorkspacesFieldManager, only when it differs. It does not run on a plain hub.
//
// It uses pkg/workspaces, pkg/reconciler/queue and the resource (label propagation)
// controller's caches, and must not import the other tmc-controller packages, the
// workload-syncer or anything under test/.
package synctarget
