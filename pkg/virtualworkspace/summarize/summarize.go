package summarize

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TargetStatus is the status one SyncTarget's syncer reported for an object.
type TargetStatus struct {
	// Key is the SyncTarget key.
	Key string
	// Status is the downstream object's .status, as the syncer reported it.
	Status map[string]any
}

// aggregator computes the .status of an object placed on several targets.
type aggregator func(targets []TargetStatus) map[string]any

// aggregators are the per-type rules, documented in docs/status-aggregation.md.
var aggregators = map[schema.GroupResource]aggregator{
	{Group: "apps", Resource: "deployments"}:  aggregateDeployment,
	{Group: "apps", Resource: "statefulsets"}: aggregateStatefulSet,
	{Group: "apps", Resource: "replicasets"}:  aggregateReplicaSet,
	{Group: "apps", Resource: "daemonsets"}:   aggregateDaemonSet,
	{Group: "batch", Resource: "jobs"}:        aggregateJob,
}

// Summarize returns the .status to write for an object of resource gr placed on targets
// (sorted by Key, at least one). On exactly one target it is that target's status. ok is
// false when no .status can be computed (no target, or several targets of a type without
// aggregation rules): the caller leaves .status as it is and the per-target statuses stay
// in their annotations.
//
// The result never aliases the inputs, and holds integers as int64.
func Summarize(gr schema.GroupResource, targets []TargetStatus) (status map[string]any, ok bool) {
	switch len(targets) {
	case 0:
		return nil, false
	case 1:
		return runtime.DeepCopyJSON(targets[0].Status), true
	}
	aggregate, found := aggregators[gr]
	if !found {
		return nil, false
	}
	return aggregate(targets), true
}

// HasRules reports whether objects of resource gr placed on several targets get an
// aggregated .status.
func HasRules(gr schema.GroupResource) bool {
	_, found := aggregators[gr]
	return found
}
