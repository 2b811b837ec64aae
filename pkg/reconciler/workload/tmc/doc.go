// Package tmc is the shared infrastructure every TMC component builds on: categorized errors
// (errors.go: TMCError, Classify), Prometheus metrics on a per-component registry
// (metrics.go; with client-go's rest_client_* and leader_election_* series from
// component-base's legacyregistry, metrics_clientgo.go), health endpoints served by the
// apiserver's healthz library (health.go, health_http.go), and the one retry rule derived
// from the error classification — a recovery strategy per error type and the client-go rate
// limiters that turn it into a delay (recovery.go), applied by pkg/reconciler/queue, and the
// one way components record Events (events.go).
//
// Metric names: TMC's own series are syncer_* (the syncer's data path) and tmc_* (everything
// else); Kubernetes' standard series keep their names (workqueue_*, rest_client_*,
// leader_election_*). The TMCMetrics doc comment is the reference.
//
// It must not import controller packages (syncer, placement, ...): they import it. Nor may it
// import component-base's metrics/prometheus/clientgo aggregate or .../workqueue packages: they
// make component-base the default workqueue metrics provider, a second workqueue_* set beside
// TMCMetrics.WorkqueueMetricsProvider.
package tmc
