// Package inspect holds the read-mostly `kubectl tmc workload` commands that look at what TMC
// is doing: `status` (SyncTargets, one table or one detailed view), `cordon`, `uncordon` and
// `drain` (the scheduling switches of a SyncTarget), `resume-deletions` (lets the downstream
// deletions the syncer's breaker paused go ahead), and `preview` (the object exactly as the
// syncer would apply it downstream, and its diff against the live object).
//
// It reuses the syncer's own transformation chain (pkg/reconciler/workload/syncer/transform)
// so that a preview can never disagree with what the syncer does. It must not import the
// syncer or controller packages themselves, nor anything that starts servers.
package inspect
