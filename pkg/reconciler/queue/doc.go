// Package queue is the one queue runner of every TMC controller and of the syncer: a typed
// rate-limited workqueue, a number of workers, and a reconcile function returning
// (requeueAfter, error). Failures are classified by tmc.Classify and retried by the one
// rule of tmc.Recovery: retryable errors with the fast per-key backoff (bounded by a token
// bucket), errors that need somebody to act with the slow backoff, NotFound not at all.
// A failing key backs off on its own and never blocks the others.
//
// It owns no controller logic and must not import controller packages (syncer,
// placement, ...) or anything under test/.
package queue
