package syncer

import "context"

// plannedDeletion is one downstream deletion the syncer decided on its own (the upstream
// object carries no deletionTimestamp): unscheduled, SyncTarget deleted, namespace cleanup.
type plannedDeletion struct {
	workspace           string
	resource            string // e.g. "deployments.apps", "configmaps", "namespaces"
	downstreamNamespace string
	name                string
	reason              string // e.g. "unscheduled", "synctarget-deleted", "namespace-cleanup"
}

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
