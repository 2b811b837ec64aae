// Package release is the tmc-controller's release of gone and dead SyncTargets: nothing
// upstream ever stays Terminating, or stuck half-removed, because a physical cluster is
// gone.
//
//   - Every SyncTarget of the location workspaces gets the finalizer
//     workloadv1alpha1.SyncTargetCleanupFinalizer.
//   - A SyncTarget being deleted: every upstream namespace labelled for it gets the
//     per-target deletion annotation (the deletionTimestamp), so that label propagation
//     (package resource) moves the namespace's objects towards removal instead of labelling
//     them again. The live syncer removes its copies and releases its objects; once no
//     object of a namespace carries the target's state label or syncer finalizer any more,
//     this controller removes the namespace's state label and per-target annotations (the
//     syncer may not write upstream namespaces). If the syncer has not finished within the
//     grace period, counted from the deletionTimestamp, the controller releases every object
//     itself — syncer finalizer, state label and per-target annotations — then the
//     namespaces, records a Warning Event (EventReasonReleased) on each affected upstream
//     namespace and on the SyncTarget saying that copies may remain on that physical
//     cluster, and counts it (ReleasedMetric). Then it removes its finalizer.
//   - A SyncTarget whose syncer has been silent for longer than the heartbeat threshold
//     plus the same grace period (HeartbeatHealthy not True): objects whose removal from it
//     was asked for (per-target deletion annotation on the object or on its namespace,
//     without soft finalizers, or a deletionTimestamp) are released the same way, and then
//     the namespaces with the deletion annotation, so that a drain or an unscheduling from
//     a cluster that never comes back completes. A syncer that comes back in time does its
//     own removal.
//
// Upsynced objects (state label Upsync: pods, volumes, endpoints the syncer copied up from
// its physical cluster) have one source and nothing to release: where the controller
// releases without the syncer, it deletes them instead — syncer finalizer removed, then
// the object deleted with its uid as precondition — counted as kind "upsynced" in
// ReleasedMetric and in the SyncTarget's Event. A silent syncer's upsynced objects stay
// unless their namespace was removed from the target or they are being deleted. Objects
// labelled Sync are only ever released.
//
// Types the SyncTarget lists (status.syncedResources, spec.resources) that the object
// caches do not cover — the tmc-controller's --resources does not name them — are found
// by live lists with the target's state label in every workload workspace (so are the
// upsync types pods, endpoints, endpointslices and persistentvolumes; paginated; a
// type a workspace does not serve holds nothing there): before the finalizer may go, and
// when the controller releases without the syncer, which releases them the same way.
//
// Every write is a JSON merge patch of metadata guarded by the resourceVersion the decision
// was taken on, or the deletion of an upsynced object guarded by its uid; nothing is written when there is nothing to change, so reconciling again
// is harmless. The object caches are those of the resource (label propagation) controller.
// Time is never polled for the deadlines: a SyncTarget is requeued for the moment its grace
// period ends; caches the controller is not notified about are looked at again every
// recheckPeriod while a target is being released.
//
// Workload workspaces can be added while it runs (AddWorkloadWorkspace, a
// workspaces.Binder); while the namespace informer of any workload workspace (or the
// object caches) has not synced, no SyncTarget is reconciled: nothing is released on a
// partial view.
//
// Failures are retried by the one TMC retry rule of pkg/reconciler/queue, which runs the
// workers: a conflict (stale cache) soon, a NotFound (the object went away) not at all.
//
// Layout: controller.go (wiring: informers, handlers, queue, metrics), reconcile.go (the
// per-SyncTarget phases and deadlines), release.go (what is held, the patches, Events),
// uncached.go (the live lists of the types the caches do not cover), upsynced.go (the
// deletion of upsynced objects).
//
// It uses pkg/workspaces, pkg/reconciler/queue, pkg/reconciler/workload/tmc and the
// resource controller's caches, and must not import the other tmc-controller packages, the
// workload-syncer or anything under test/.
package release
