package syncer

import "context"

// plannedDeletion is one downstream deletion the syncer decided on its own (the upstream
// object carries no deletionTimestamp): unscheduled, SyncTarget deleted, namespace cleanup.
type plannedDeletion struct {
	workspace           string
	resource            string // e.g. "deployments.apps", "configmaps", "namespaces"
	downstreamNamespace string
	name                string
	reason              string // one of the deletionReason constants
	// objects is how many synced objects the deletion removes: 1 for an object, the
	// objects a namespace still holds for a namespace.
	objects int
}

// Why the syncer decided on its own to delete something downstream.
const (
	// deletionUnscheduled: the object is no longer placed on this target (state label
	// gone, or the per-target deletion annotation set).
	deletionUnscheduled = "unscheduled"
	// deletionTargetDeleted: the SyncTarget is being deleted.
	deletionTargetDeleted = "synctarget-deleted"
	// deletionNamespaceCleanup: a downstream namespace whose upstream namespace is gone or
	// no longer placed here.
	deletionNamespaceCleanup = "namespace-cleanup"
	// deletionUpstreamLost: the upstream object vanished while holding our finalizer and
	// without a deletionTimestamp (restored etcd, re-created workspace, misrouting proxy).
	// Such a deletion is never admitted until an operator resumes deletions.
	deletionUpstreamLost = "upstream-lost"
)

// deletionBudget admits the downstream deletions the syncer decides on its own. admit
// records one deletion about to be made and says whether it may go ahead now; false while
// the breaker has paused deletions (the caller keeps the copy and looks again later).
// Admitting the same deletion again within the window is not counted twice.
type deletionBudget interface {
	admit(ctx context.Context, d plannedDeletion) bool
}

// unlimitedBudget admits everything.
type unlimitedBudget struct{}

func (unlimitedBudget) admit(context.Context, plannedDeletion) bool { return true }
