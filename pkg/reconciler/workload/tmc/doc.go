// Package tmc is the shared infrastructure every TMC component builds on: categorized errors
// (errors.go: TMCError, Classify), Prometheus metrics on a per-component registry
// (metrics.go), Kubernetes-style health endpoints (health.go), and the one retry rule
// derived from the error classification — a recovery strategy per error type and the
// client-go rate limiters that turn it into a delay (recovery.go), applied by
// pkg/reconciler/queue.
//
// It must not import controller packages (syncer, placement, ...): they import it.
package tmc
