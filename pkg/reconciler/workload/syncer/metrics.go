package syncer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmc-dev/tmc/pkg/reconciler/queue"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
)

// Metric names. The first two are the PRD's.
const (
	MetricResourcesSynced    = "syncer_resources_synced_total"
	MetricSyncDuration       = "syncer_sync_duration_seconds"
	MetricEndToEndLatency    = "syncer_end_to_end_latency_seconds"
	MetricErrors             = "syncer_errors_total"
	MetricResourceConflicts  = "syncer_resource_conflicts_total"
	MetricAdoptions          = "syncer_adoptions_total"
	MetricHeartbeats         = "syncer_heartbeats_total"
	MetricLastHeartbeat      = "syncer_last_heartbeat_timestamp_seconds"
	MetricInformers          = "syncer_informers"
	MetricDownstreamWrites   = "syncer_downstream_writes_total"
	MetricUpstreamWrites     = "syncer_upstream_writes_total"
	MetricSkippedWrites      = "syncer_skipped_writes_total"
	MetricDeletionsPaused    = "syncer_deletions_paused"
	MetricDeletionsHeld      = "syncer_deletions_held"
	MetricDeletionsAdmitted  = "syncer_deletions_admitted_total"
	MetricUpstreamLost       = "syncer_upstream_lost_objects"
	MetricStuckDeletions     = "syncer_stuck_downstream_deletions"
	MetricForgedNamespaces   = "syncer_forged_namespace_locators_total"
	MetricConfined           = "syncer_confined"
	directionDown            = "down"
	directionUp              = "up"
	heartbeatResultSuccess   = "success"
	heartbeatResultFailure   = "failure"
	sideUpstream             = "upstream"
	sideDownstream           = "downstream"
	operationApply           = "apply"
	operationDelete          = "delete"
	operationUpdateStatus    = "update_status"
	operationPatchFinalizer  = "patch_finalizer"
	operationCreateNamespace = "create_namespace"
	operationDeleteNamespace = "delete_namespace"
)

// syncerMetrics holds the syncer's collectors. Labels are bounded: cluster is the SyncTarget
// name, workspace the watched workspaces (series are removed when a workspace is dropped),
// gvk the accepted resource types, direction up/down, type the fixed TMC error types.
type syncerMetrics struct {
	tmc *tmc.TMCMetrics

	resourcesSynced   *prometheus.CounterVec
	syncDuration      *prometheus.HistogramVec
	endToEnd          *prometheus.HistogramVec
	errors            *prometheus.CounterVec
	conflicts         *prometheus.CounterVec
	adoptions         *prometheus.CounterVec
	heartbeats        *prometheus.CounterVec
	lastHeartbeat     *prometheus.GaugeVec
	informers         *prometheus.GaugeVec
	downstreamWrites  *prometheus.CounterVec
	upstreamWrites    *prometheus.CounterVec
	skippedWrites     *prometheus.CounterVec
	deletionsPaused   *prometheus.GaugeVec
	deletionsHeld     *prometheus.GaugeVec
	deletionsAdmitted *prometheus.CounterVec
	upstreamLost      *prometheus.GaugeVec
	stuckDeletions    *prometheus.GaugeVec
	forgedNamespaces  *prometheus.CounterVec
	confined          *prometheus.GaugeVec
	clusterName       string
}

func newSyncerMetrics(clusterName string) *syncerMetrics {
	m := tmc.NewTMCMetrics("syncer")
	sm := &syncerMetrics{tmc: m, clusterName: clusterName}
	sm.resourcesSynced = m.MustRegisterCounterVec(MetricResourcesSynced,
		"Total number of resources synced, by direction (down: spec applied downstream, up: status written upstream).",
		[]string{"cluster", "workspace", "gvk", "direction"})
	sm.syncDuration = m.MustRegisterHistogramVec(MetricSyncDuration,
		"Time taken to process one object in the spec or status controller, including its API calls.",
		[]string{"cluster", "workspace", "gvk"})
	sm.endToEnd = m.MustRegisterHistogramVec(MetricEndToEndLatency,
		"Time from the syncer receiving a change (upstream spec or downstream status) until it is written to the other side.",
		[]string{"cluster", "direction"})
	sm.errors = m.MustRegisterCounterVec(MetricErrors,
		"Sync errors by TMC error type.",
		[]string{"cluster", "type"})
	sm.conflicts = m.MustRegisterCounterVec(MetricResourceConflicts,
		"Downstream objects left alone because they exist without the syncer's ownership label.",
		[]string{"cluster", "workspace", "gvk"})
	sm.adoptions = m.MustRegisterCounterVec(MetricAdoptions,
		"Pre-existing downstream objects without the syncer's ownership label that it took ownership of, by conflict policy.",
		[]string{"cluster", "policy"})
	sm.heartbeats = m.MustRegisterCounterVec(MetricHeartbeats,
		"Heartbeats sent to the SyncTarget, by result.",
		[]string{"cluster", "result"})
	sm.lastHeartbeat = m.MustRegisterGaugeVec(MetricLastHeartbeat,
		"Unix time of the last successful heartbeat.",
		[]string{"cluster"})
	sm.informers = m.MustRegisterGaugeVec(MetricInformers,
		"Running informers by side.",
		[]string{"cluster", "side"})
	sm.downstreamWrites = m.MustRegisterCounterVec(MetricDownstreamWrites,
		"Write requests the syncer sent to the physical cluster, by operation.",
		[]string{"cluster", "operation"})
	sm.upstreamWrites = m.MustRegisterCounterVec(MetricUpstreamWrites,
		"Write requests the syncer sent to the control plane, by operation (heartbeats excluded).",
		[]string{"cluster", "operation"})
	sm.skippedWrites = m.MustRegisterCounterVec(MetricSkippedWrites,
		"Objects processed without a write because nothing had changed.",
		[]string{"cluster", "direction"})
	sm.deletionsPaused = m.MustRegisterGaugeVec(MetricDeletionsPaused,
		"1 while the mass-deletion breaker holds downstream deletions for an operator (DeletionsPaused=True), else 0.",
		[]string{"cluster"})
	sm.deletionsHeld = m.MustRegisterGaugeVec(MetricDeletionsHeld,
		"Downstream deletions the syncer decided on its own that wait for an operator, by reason.",
		[]string{"cluster", "reason"})
	sm.deletionsAdmitted = m.MustRegisterCounterVec(MetricDeletionsAdmitted,
		"Downstream deletions the syncer decided on its own that the deletion budget admitted, by reason.",
		[]string{"cluster", "reason"})
	sm.upstreamLost = m.MustRegisterGaugeVec(MetricUpstreamLost,
		"Downstream copies kept although their upstream object vanished without a deletion (upstream lost), until an operator resumes deletions.",
		[]string{"cluster"})
	sm.stuckDeletions = m.MustRegisterGaugeVec(MetricStuckDeletions,
		"Downstream copies the syncer waits for that have stayed in Terminating for longer than the stuck threshold.",
		[]string{"cluster"})
	sm.forgedNamespaces = m.MustRegisterCounterVec(MetricForgedNamespaces,
		"Downstream namespaces ignored because their locator names this SyncTarget but not their own name (each counted once).",
		[]string{"cluster"})
	sm.confined = m.MustRegisterGaugeVec(MetricConfined,
		"1 while the admission policy and binding that confine the syncer downstream are in place as generated (SyncerConfined=True), else 0; absent until first checked.",
		[]string{"cluster"})
	// Both gauges are exported from the start, so that zero is a reading, not a gap.
	sm.upstreamLost.WithLabelValues(clusterName).Set(0)
	sm.stuckDeletions.WithLabelValues(clusterName).Set(0)
	return sm
}

func (m *syncerMetrics) synced(workspace, gvk, direction string) {
	m.resourcesSynced.WithLabelValues(m.clusterName, workspace, gvk, direction).Inc()
}

func (m *syncerMetrics) observeSync(workspace, gvk string, d time.Duration) {
	m.syncDuration.WithLabelValues(m.clusterName, workspace, gvk).Observe(d.Seconds())
}

func (m *syncerMetrics) observeEndToEnd(direction string, since time.Time) {
	if since.IsZero() {
		return
	}
	m.endToEnd.WithLabelValues(m.clusterName, direction).Observe(time.Since(since).Seconds())
}

func (m *syncerMetrics) error(t tmc.TMCErrorType) {
	if !t.IsKnown() {
		t = tmc.TMCErrorTypeUnknown
	}
	m.errors.WithLabelValues(m.clusterName, string(t)).Inc()
}

func (m *syncerMetrics) downstreamWrite(op string) {
	m.downstreamWrites.WithLabelValues(m.clusterName, op).Inc()
}

func (m *syncerMetrics) upstreamWrite(op string) {
	m.upstreamWrites.WithLabelValues(m.clusterName, op).Inc()
}

func (m *syncerMetrics) deletionAdmitted(reason string) {
	m.deletionsAdmitted.WithLabelValues(m.clusterName, reason).Inc()
}

func (m *syncerMetrics) forgedNamespace() {
	m.forgedNamespaces.WithLabelValues(m.clusterName).Inc()
}

func (m *syncerMetrics) skipped(direction string) {
	m.skippedWrites.WithLabelValues(m.clusterName, direction).Inc()
}

// forgetWorkspace drops the series of a workspace that is no longer watched.
func (m *syncerMetrics) forgetWorkspace(workspace string) {
	m.tmc.DeletePartialMatchAll(prometheus.Labels{"workspace": workspace})
}

// latencyTracker remembers when the change that queued a key was seen, for the end-to-end
// latency of the write it leads to.
type latencyTracker struct {
	mu        sync.Mutex
	firstSeen map[string]time.Time
}

func newLatencyTracker() *latencyTracker { return &latencyTracker{firstSeen: map[string]time.Time{}} }

// seen records the first time a change of id was seen since its last write.
func (l *latencyTracker) seen(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.firstSeen[id]; !ok {
		l.firstSeen[id] = time.Now()
	}
}

// take returns and forgets when a change of id was first seen (zero if never).
func (l *latencyTracker) take(id string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.firstSeen[id]
	delete(l.firstSeen, id)
	return t
}

// newSyncerQueue returns a queue of the syncer whose failures are counted in the error
// metric and in errs (the SyncTarget's error summary and ResourcesSynced condition).
func newSyncerQueue[K comparable](name string, reconcile queue.ReconcileFunc[K], metrics *syncerMetrics, errs *errorLog, recovery tmc.RecoveryOptions) *queue.Queue[K] {
	return queue.New(reconcile, queue.Options[K]{
		Name:            name,
		Component:       "syncer",
		MetricsProvider: metrics.tmc.WorkqueueMetricsProvider(),
		Recovery:        recovery,
		LogValues:       func(k K) []any { return []any{"key", fmt.Sprint(k)} },
		OnError: func(_ context.Context, key K, err *tmc.TMCError, _ queue.Decision) {
			err = err.WithOperation(name)
			metrics.error(err.Type)
			errs.record(err)
			errs.setFailing(name+"|"+fmt.Sprint(key), err.Type)
		},
		OnSuccess: func(_ context.Context, key K, _ time.Duration) { errs.clearFailing(name + "|" + fmt.Sprint(key)) },
	})
}
