// Package resource is the tmc-controller's label propagation: every object of the synced
// resource types in a workload workspace follows its namespace's placement.
//
//   - namespace label state.workload.kcp.io/<stKey>=Sync (and no deletion annotation for
//     that key): the object gets the same label;
//   - namespace annotation deletion.internal.workload.kcp.io/<stKey>: an object labelled for
//     that key gets the same annotation;
//   - object labelled Sync for a key the namespace has neither a label nor a deletion
//     annotation for: the object gets the deletion annotation (now).
//
// Objects the workload-syncer never syncs (transform.NotSyncedReason, the same rule as the
// syncer's built-in filters) are never labelled: the kube-root-ca.crt ConfigMap and the
// default ServiceAccount that kcp keeps in every namespace, service-account token Secrets,
// and objects controlled by a kind whose controller also runs on the physical cluster
// (the ReplicaSets of a Deployment, the Jobs of a CronJob, ...). One labelled by hand still
// gets the deletion annotation when its namespace is unplaced, so that it is released; and
// such objects never count in TypesInUse.
//
// Removal always goes through the deletion annotation, so that the workload-syncer deletes
// the downstream copy (honouring soft finalizers) and then releases the object itself; this
// controller never removes a label, annotation or finalizer. It writes with a JSON merge
// patch of metadata.labels / metadata.annotations, guarded by the resourceVersion it
// decided on, and never writes when the object is already right.
//
// Namespaces without any state label or deletion annotation are left alone entirely, so
// that objects labelled by hand in unplaced namespaces keep working.
//
// The controller also answers, from its caches, which synced types are in use in a
// namespace (TypesInUse, for placement), which workspaces still hold objects labelled
// for a SyncTarget (WorkspacesWithObjectsFor, for SyncTarget.status.workspaces) and which
// objects carry anything of a SyncTarget (ObjectsFor, for the release of gone SyncTargets).
//
// Workload workspaces can be added while it runs (AddWorkloadWorkspace, a
// workspaces.Binder): an object of such a workspace is processed only once the workspace's
// namespace informer and the informer of its type have synced.
//
// Failures are retried by the one TMC retry rule of pkg/reconciler/queue, which runs the
// workers: a conflict (stale cache) soon, Forbidden or an admission denial slowly until
// somebody fixes it, a NotFound (the object went away) not at all.
//
// Layout: controller.go (wiring, queue, discovery loop), handlers.go (event filters),
// types.go (synced types, discovery, indexes, TypesInUse and WorkspacesWithObjectsFor),
// targets.go (ObjectsFor), reconcile.go (per-object logic and patch).
//
// It uses pkg/workspaces, pkg/reconciler/queue, pkg/reconciler/workload/tmc and the pure
// pkg/reconciler/workload/syncer/transform (for its object rules), and must not import the
// other tmc-controller packages, the workload-syncer package itself or anything under test/.
package resource
