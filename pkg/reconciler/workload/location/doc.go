// Package location is the tmc-controller's Location status controller. For every Location
// of one location workspace it keeps status.instances (the SyncTargets of the same
// workspace that spec.instanceSelector selects; nil or empty selects all) and
// status.availableInstances (those of them that are Ready, not unschedulable and not
// evicting, i.e. spec.evictAfter unset or still in the future).
//
// A SyncTarget is selected by its labels together with its spec.cells (labels win where
// both set a key); see SelectionLabels and IsAvailable, which the placement controller
// should use for the same answer.
//
// Every relevant SyncTarget change requeues all Locations of the workspace; a future
// evictAfter requeues the Location for exactly that moment, so no polling is needed. The
// status is written with UpdateStatus, only when a count changed.
//
// Failures are retried by the one TMC retry rule of pkg/reconciler/queue, which runs the
// workers.
//
// Layout: controller.go (wiring: informers, handlers, queue), reconcile.go (per-Location
// logic), instances.go (pure selection and counting), metrics.go.
//
// It depends on pkg/workspaces, pkg/reconciler/queue and pkg/reconciler/workload/tmc only,
// and must not import the other tmc-controller controllers, the syncer or anything under
// test/.
package location
