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
// A selector that cannot be evaluated is not one that selects nothing (selection.go). The
// CRDs reject invalid operators, but a Placement stored before that validation, or with a
// key or value the CRD does not check, can still hold one. A namespace whose Placement
// might change because of such a namespaceSelector (one sorting before the Placement that
// would take it, or no other taking it) keeps every decision as it is: no patch, no
// unscheduling, no move to another Placement; a namespace not placed yet, or staying with
// its Placement, follows the first selecting Placement as usual. A Placement whose
// locationSelectors, or the instanceSelector of a Location they match, cannot be evaluated
// keeps its namespaces where they are and schedules nothing new. Such a Placement reports
// SelectorValid=False and Scheduled=False (reason InvalidSelector, with the parse error),
// keeps its status.selectedLocation, and each namespace held gets a Warning
// PlacementUnevaluable once.
//
// A namespace keeps its SyncTarget as long as the target is valid: it still exists, is an
// instance of a Location the Placement selects, is not evicting, and is Ready or has been
// not-Ready for less than Options.UnhealthyGracePeriod. Cordoning (spec.unschedulable) only
// stops new namespaces. Automatic failover never moves persistent data (persistent.go):
// past the grace period a namespace that holds PersistentVolumeClaims, or StatefulSets with
// volumeClaimTemplates, upstream stays on its target unless its Placement has
// spec.statefulFailover: Allowed, because its new claims would start empty and the old ones
// be deleted when the old target heals. It gets a Warning FailoverHeld once per episode and
// the Placement reports Scheduled=False FailoverHeld. Claims created on the physical cluster
// by anything else (an operator, say) hold a namespace too: the target's syncer reports the
// namespaces whose copies hold claims in status.workspaceHealth[].persistentNamespaces, and
// that last report stays readable when the syncer goes silent. A drain (evictAfter), a target being deleted or leaving the Location move it as before. When the target becomes invalid the namespace is rescheduled
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
// selected by any Placement are never touched. Unscheduling is announced: a Warning
// Unscheduled on the namespace names the Placement (changed or deleted), the targets and
// the deletion policy, and while the Placement exists its Unscheduling condition counts the
// namespaces being removed.
//
// Deletion policy: every patch that places a namespace also writes the Placement's
// spec.deletionPolicy (Delete or Orphan) to the namespace annotation
// workload.tmc.dev/deletion-policy, which the syncers read when they remove a copy; a
// policy change reaches every placed namespace, and a change made together with the
// selector that unschedules a namespace applies to that removal. The annotation stays after
// the namespace leaves its Placement (it governs the removal in progress). An absent
// annotation means Delete, so namespaces placed before it existed are not written for it
// while their Placement's policy is Delete. The Placement owns the annotation: a value set
// by hand is overwritten (per-object policies go on the objects).
//
// Availability is computed from the SyncTargets themselves (Ready condition, spec), not from
// Location.status, so this controller never lags behind the location controller.
//
// Events on namespaces: Scheduled, Rescheduling (new target added), Rescheduled (old target
// released), Unschedulable, FailoverHeld and PlacementUnevaluable (warnings, once per
// episode), Unscheduled (warning). Metric tmc_placement_decisions_total{workspace,result}
// with result scheduled, rescheduled, unschedulable (once per episode), unscheduled or
// failover_held (once per episode).
//
// Placement status (status.go): phase Pending (no Location), Bound (a namespace is placed
// through it) or Unbound; selectedLocation; selectedSyncTarget is the target of the
// namespace this controller scheduled most recently (after a restart: the previous value
// while it still hosts a namespace of the Placement, else the target of the first placed
// namespace by name); conditions Ready (Location), Scheduled (every selected namespace
// has a valid target; False NoValidTarget, FailoverHeld or InvalidSelector), SelectorValid
// and Unscheduling (namespaces no longer selected still being removed).
//
// Time is never polled: a namespace is requeued exactly when its target's evictAfter or
// unhealthy grace period expires. Decisions are serialised and the namespaces this
// controller just patched are overlaid on the informer cache until the cache catches up
// (assume.go), so concurrent workers and informer lag never double-place a namespace or
// skew the spread.
//
// Workload workspaces can be added while it runs (AddWorkloadWorkspace, a
// workspaces.Binder); the namespaces and Placements of one are processed only once all of
// its informers have synced, and its Events go into it from then on.
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
