// Package summarize computes the .status of an upstream object from the statuses its
// syncers reported for each SyncTarget it is placed on: on one target that target's status
// exactly, on several an aggregate by documented per-type rules.
//
// It owns only the pure computation; it must not import clients, the virtual-workspace
// server or the syncer.
package summarize
