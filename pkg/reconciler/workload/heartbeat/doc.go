// Package heartbeat is the tmc-controller's SyncTarget health controller. For every
// SyncTarget of one location workspace it owns two status conditions:
//
//   - HeartbeatHealthy: True (HeartbeatReceived) while now - status.lastSyncerHeartbeatTime
//     is at most the threshold, False (ErrorHeartbeat) after that, False
//     (HeartbeatNeverSeen) before the first heartbeat.
//   - Ready: the summary the scheduler reads, True (Ready) iff HeartbeatHealthy and the
//     syncer's own SyncerReady are both True; otherwise False with a reason naming what is
//     missing. Unschedulable and evictAfter are deliberately not part of it: they are
//     scheduling inputs, not health.
//
// Expiry is detected without polling: after each reconcile of a healthy target the key is
// requeued for exactly the moment its heartbeat expires; the syncer's next heartbeat is an
// update event that brings it back.
//
// The conditions are written with server-side apply on the status subresource under the
// field manager FieldManager, containing only these two conditions, so the syncer's own
// apply of the other status fields (manager "tmc-workload-syncer-status") and this
// controller never overwrite each other. Nothing is written when the conditions are
// unchanged.
//
// Failures are retried by the one TMC retry rule of pkg/reconciler/queue, which runs the
// workers on the controller's clock: a Forbidden slowly until the RBAC is fixed, a
// SyncTarget that is gone not at all.
//
// Layout: controller.go (wiring: informer, handler, queue), reconcile.go (per-SyncTarget
// logic and the apply), conditions.go (pure condition computation), metrics.go.
//
// It depends on pkg/workspaces, pkg/reconciler/queue and pkg/reconciler/workload/tmc only,
// and must not import the other tmc-controller controllers, the syncer or anything under
// test/.
package heartbeat
