package v1alpha1

// Keys of TMC's deletion safety: the deletion policy, the downstream namespaces that hold
// orphaned copies, the mass-deletion breaker and the controller's SyncTarget finalizer.
const (
	// DeletionPolicyAnnotation on an upstream object, or on its upstream namespace (set
	// there from Placement.spec.deletionPolicy), says what happens to the downstream copy
	// when the object is removed from a target: DeletionPolicyDelete (the default) or
	// DeletionPolicyOrphan. The object's own annotation wins over the namespace's.
	DeletionPolicyAnnotation = "workload.tmc.dev/deletion-policy"
	// DeletionPolicyDelete deletes the downstream copy, then releases the upstream object.
	DeletionPolicyDelete = "Delete"
	// DeletionPolicyOrphan leaves the downstream copy running without the ownership label
	// and releases the upstream object.
	DeletionPolicyOrphan = "Orphan"

	// DownstreamOrphansAnnotation on a downstream namespace records that the syncer left
	// orphaned copies in it (value: RFC3339 time of the first). Namespace cleanup never
	// deletes such a namespace; it releases it (drops the ownership label) instead.
	DownstreamOrphansAnnotation = "workload.tmc.dev/orphans"

	// PlacedNamespaceAnnotation on a downstream namespace ("true") records that its upstream
	// namespace was placed on the target by the namespace's state label. Only then does the
	// upstream namespace losing that label remove the downstream namespace; a downstream
	// namespace of objects labelled by hand stays until its upstream namespace is deleted.
	PlacedNamespaceAnnotation = "workload.tmc.dev/placed-namespace"

	// ResumeDeletionsAnnotation on a SyncTarget (RFC3339 time) resumes the downstream
	// deletions the syncer's breaker paused before that time (kubectl tmc workload
	// resume-deletions sets it).
	ResumeDeletionsAnnotation = "workload.tmc.dev/resume-deletions"

	// SyncTargetCleanupFinalizer is the tmc-controller's finalizer on a SyncTarget: it is
	// removed once no upstream object or namespace carries the target's finalizer or state
	// label any more (released by the syncer, or by the controller after a grace period).
	SyncTargetCleanupFinalizer = "workload.tmc.dev/release-workloads"
)

// Condition type and reasons of the mass-deletion breaker on a SyncTarget.
const (
	// SyncTargetDeletionsPaused is True while the syncer's deletion budget is exhausted and
	// the deletions it decides on its own wait for an operator.
	SyncTargetDeletionsPaused = "DeletionsPaused"

	ReasonDeletionBudgetExceeded = "DeletionBudgetExceeded"
	ReasonDeletionsWithinBudget  = "DeletionsWithinBudget"
	ReasonDeletionsResumed       = "DeletionsResumed"
	// ReasonUpstreamObjectsLost: the budget is not exhausted, but downstream copies whose
	// upstream objects vanished without a deletion are kept until an operator resumes.
	ReasonUpstreamObjectsLost = "UpstreamObjectsLost"
)
