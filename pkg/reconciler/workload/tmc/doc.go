// Package tmc is the shared infrastructure every TMC component builds on: categorized errors
// (errors.go: TMCError, Classify), Prometheus metrics on a per-component registry
// (metrics.go), Kubernetes-style health endpoints (health.go), and recovery strategies —
// backoff with jitter, per-target circuit breakers and reconnect hooks (recovery.go).
//
// It must not import controller packages (syncer, placement, ...): they import it.
package tmc
