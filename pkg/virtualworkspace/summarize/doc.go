// Package summarize computes the .status of an upstream object from the statuses its
// syncers reported for each SyncTarget it is placed on: on one target that target's status
// exactly, on several an aggregate by the per-type rules of docs/status-aggregation.md
// (Deployments, StatefulSets, ReplicaSets, DaemonSets, Jobs; any other type has none).
//
// Layout: summarize.go (entry point, the rule table), rules.go (per-type rules),
// fields.go (field and condition helpers).
//
// It owns only the pure computation; it must not import clients, the virtual-workspace
// server or the syncer.
package summarize
