// Package syncer is the workload-syncer: one per physical cluster, it syncs the objects of
// the workload workspaces placed on its SyncTarget down to the cluster (server-side apply,
// cleaned metadata, per-target spec-diff, a transformation chain), copies their status back
// up, removes downstream copies before releasing the upstream finalizer, and reports
// heartbeats, synced resources and health on the SyncTarget.
//
// Layout (the PRD's): engine.go (lifecycle, discovery, informers), resource_controller.go
// (spec, status and deletion controllers), status_reporter.go (heartbeat and SyncTarget
// status), health.go, metrics.go, syncer.go (wiring). Object transformation lives in
// the transform subpackage so that others can extend it.
//
// It uses pkg/reconciler/workload/tmc for errors, metrics, health and recovery, and must not
// import the control-plane controllers.
package syncer
