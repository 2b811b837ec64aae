package v1alpha1

import "strings"

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

// ConflictPolicy says what the syncer does with a pre-existing downstream object that does
// not carry its ownership label (see SyncTargetSpec.ConflictPolicy).
type ConflictPolicy string

// Conflict policies, and the upstream annotation that chooses one per object.
const (
	// ConflictPolicyAnnotation on an upstream object chooses the conflict policy for its
	// copy; it wins over SyncTarget.spec.conflictPolicy. A value that is not one of the
	// policies is taken as ConflictPolicyAbort (and reported): a typo must never adopt or
	// overwrite someone else's object.
	ConflictPolicyAnnotation = "workload.tmc.dev/conflict-policy"
	// ConflictPolicyAbort leaves the pre-existing object untouched and reports a
	// ResourceConflict (the default).
	ConflictPolicyAbort ConflictPolicy = "Abort"
	// ConflictPolicyAdoptIfEqual takes ownership of the pre-existing object (ownership label,
	// spec hash, field ownership through the apply) only when it already holds every field
	// the syncer would apply, with the same values; otherwise it acts as Abort.
	ConflictPolicyAdoptIfEqual ConflictPolicy = "AdoptIfEqual"
	// ConflictPolicyOverwrite takes ownership of the pre-existing object and applies the
	// upstream object over it. Fields only the pre-existing object has stay, owned by
	// their field managers, as with any server-side apply.
	ConflictPolicyOverwrite ConflictPolicy = "Overwrite"
)

// ParseConflictPolicy returns the policy value names (matched case-insensitively), or
// false for anything else, including "".
func ParseConflictPolicy(value string) (ConflictPolicy, bool) {
	for _, p := range []ConflictPolicy{ConflictPolicyAbort, ConflictPolicyAdoptIfEqual, ConflictPolicyOverwrite} {
		if strings.EqualFold(value, string(p)) {
			return p, true
		}
	}
	return "", false
}
