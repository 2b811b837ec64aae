// Package placement is the placement controller of the tmc-controller: it schedules the
// namespaces of workload workspaces onto SyncTargets and reports the decision on the
// Placements.
//
// For every Placement it picks a Location in spec.locationWorkspace (location.go): among the
// Locations matching any of spec.locationSelectors (none → all), sorted by name, the first
// with an available instance (a SyncTarget matching its instanceSelector that is Ready=True,
// not unschedulable and not evicting). Once chosen, status.selectedLocation is kept while
// it still matches and still has an available instance, so a Location becoming available
// later never moves the Placement.
//
// For every namespace (namespace.go) the Placement that selects it through
// spec.namespaceSelector (nil selects nothing, empty selects all) and sorts first by name
// wins. The namespace gets one SyncTarget: among the available instances of the selected
// Location that accept every resource type the namespace uses (Options.TypesInUse), the one
// with the fewest namespaces placed on it across all workload workspaces, ties broken by
// fnv64a("<workspace>/<namespace>/<target>") — deterministic, spread, and the same after a
// restart. Placing sets the label state.workload.kcp.io/<stKey>=Sync and the annotation
// scheduling.kcp.io/placement on the namespace (JSON merge patch of metadata only); the
// resource controller makes the namespace's objects follow.
//
// A namespace keeps its SyncTarget as long as the target is valid: it still exists, is an
// instance of a Location the Placement selects, is not evicting, and is Ready or has been
// not-Ready for less than Options.UnhealthyGracePeriod. Cordoning (spec.unschedulable) only
// stops new namespaces. When the target becomes invalid the namespace is rescheduled
// make-before-break: the new target is labelled first, and the old target gets the deletion
// annotation deletion.internal.workload.kcp.io/<oldKey> only when every Deployment and
// StatefulSet of the namespace reports readyReplicas >= spec.replicas for the new target
// (annotation experimental.status.workload.kcp.io/<newKey>). If no other target is valid the
// namespace stays where it is (it is never left without a copy) and the Placement reports
// Scheduled=False NoValidTarget. When a namespace has several valid targets (for example an
// old target recovered during a move) the one kept is, among those whose workloads are
// ready, the one with the smallest hash above; the others are removed once it is ready.
//
// Removal from a target, in every case (rescheduling or unscheduling because no Placement
// selects the namespace any more), goes through the namespace deletion annotation; the
// state label and the deletion annotation are removed from the namespace once no object in
// it still carries that target's label (Options.ObjectsLabelledFor, or this controller's
// own caches of the default synced types; with ObjectsLabelledFor a waiting namespace is
// also looked at every 30s, as types beyond the default ones do not wake it). The placement
// annotation goes last. Namespaces labelled by hand (no placement annotation) and not
// selected by any Placement are never touched.
//
// Availability is computed from the SyncTargets themselves (Ready condition, spec), not from
// Location.status, so this controller never lags behind the location controller.
//
// Events on namespaces: Scheduled, Rescheduling (new target added), Rescheduled (old target
// released), Unschedulable (warning, once per episode), Unscheduled. Metric
// tmc_placement_decisions_total{workspace,result} with result scheduled, rescheduled,
// unschedulable (once per episode) or unscheduled.
//
// Placement status (status.go): phase Pending (no Location), Bound (a namespace is placed
// through it) or Unbound; selectedLocation; selectedSyncTarget is the target of the
// namespace this controller scheduled most recently (after a restart: the previous value
// while it still hosts a namespace of the Placement, else the target of the first placed
// namespace by name); conditions Ready (Location) and Scheduled (every selected namespace
// has a valid target).
//
// Time is never polled: a namespace is requeued exactly when its target's evictAfter or
// unhealthy grace period expires. Decisions are serialised and the namespaces this
// controller just patched are overlaid on the informer cache until the cache catches up
// (assume.go), so concurrent workers and informer lag never double-place a namespace or
// skew the spread.
//
// Namespaces and Placements have one queue each (workqueues placement-namespaces and
// placement-placements), run by pkg/reconciler/queue with the one TMC retry rule: a
// conflict soon, Forbidden and the like slowly until somebody fixes them, a NotFound not at
// all. controller.go holds the wiring and the queues, handlers.go the event filters.
//
// It uses pkg/workspaces, pkg/reconciler/queue, pkg/reconciler/workload/tmc and the sdk; it
// must not import the syncer, the other tmc-controller controllers (it receives what it
// needs from them as functions in Options) or anything under test/.
package placement
