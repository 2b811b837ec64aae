package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	"github.com/tmc-dev/tmc/pkg/version"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	workloadlisters "github.com/tmc-dev/tmc/sdk/client/listers/workload/v1alpha1"
)

// statusFieldManager owns the SyncTarget status fields the syncer reports. The
// tmc-controller owns HeartbeatHealthy, Ready and workspaces through its own manager, so
// server-side apply keeps the two from overwriting each other.
const statusFieldManager = "tmc-workload-syncer-status"

// errorLog keeps error counts by TMC type and the latest errors for the SyncTarget status.
// It also tracks which queue keys are failing right now, for the ResourcesSynced condition.
type errorLog struct {
	mu      sync.Mutex
	counts  map[string]int64
	recent  []workloadv1alpha1.SyncerError
	failing map[string]tmc.TMCErrorType
}

func newErrorLog() *errorLog {
	return &errorLog{counts: map[string]int64{}, failing: map[string]tmc.TMCErrorType{}}
}

// setFailing marks queue key id as failing with error type t.
func (l *errorLog) setFailing(id string, t tmc.TMCErrorType) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failing[id] = t
}

// clearFailing marks queue key id as succeeding.
func (l *errorLog) clearFailing(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.failing, id)
}

// failingCounts returns the number of keys currently failing, by error type.
func (l *errorLog) failingCounts() map[tmc.TMCErrorType]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[tmc.TMCErrorType]int{}
	for _, t := range l.failing {
		out[t]++
	}
	return out
}

func (l *errorLog) record(e *tmc.TMCError) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts[string(e.Type)]++
	msg := e.Error()
	if len(msg) > 512 {
		msg = msg[:512] + "..."
	}
	entry := workloadv1alpha1.SyncerError{Type: string(e.Type), Message: msg, Workspace: e.Workspace, Resource: e.Resource, Time: metav1.NewTime(time.Now().Truncate(time.Second))}
	// One entry per (type, resource): the newest replaces older ones, so one bad object
	// cannot push everything else out.
	out := []workloadv1alpha1.SyncerError{entry}
	for _, r := range l.recent {
		if r.Type == entry.Type && r.Resource == entry.Resource && r.Workspace == entry.Workspace {
			continue
		}
		out = append(out, r)
	}
	if len(out) > 10 {
		out = out[:10]
	}
	l.recent = out
}

func (l *errorLog) summary() *workloadv1alpha1.ErrorSummary {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.counts) == 0 {
		return nil
	}
	s := &workloadv1alpha1.ErrorSummary{Counts: map[string]int64{}}
	for k, v := range l.counts {
		s.Counts[k] = v
	}
	s.Recent = append(s.Recent, l.recent...)
	return s
}

// reporterCaches is what the status reporter reads of the informer caches.
type reporterCaches interface {
	// syncedResources are the discovered states of the requested types (the conditions
	// read them); reportedResources add the types being released, for
	// status.syncedResources.
	syncedResources() []workloadv1alpha1.SyncedResource
	reportedResources() []workloadv1alpha1.SyncedResource
	downstreamSynced() (bool, string)
	workspaceSyncStates() []workspaceSyncState
}

// statusReporter sends heartbeats and the syncer's part of the SyncTarget status: synced
// resources, conditions (SyncerReady, SyncerAuthorized, ResourcesSynced, DeletionsPaused,
// SyncerConfined),
// per-workspace health, node capacity, the syncer's identity and its error summary. Each
// report is one server-side apply of the status subresource, guarded by the SyncTarget's
// UID. A trip or resume of the deletion breaker brings the next report forward; nothing
// else adds writes.
type statusReporter struct {
	target           syncTarget
	interval         time.Duration
	podName          string
	syncTargetLister workloadlisters.SyncTargetLister       // nil: no cached SyncTarget
	syncTargets      dynamic.NamespaceableResourceInterface // in the location workspace
	downstreamNodes  typedcorev1.NodeInterface
	caches           reporterCaches
	started          func() bool
	errors           *errorLog
	metrics          *syncerMetrics
	startTime        metav1.Time
	// breaker is the mass-deletion breaker whose DeletionsPaused condition is reported;
	// nil: none. workspaceHealth reports status.workspaceHealth; nil: not reported.
	breaker         *deletionBreaker
	workspaceHealth *workspaceHealthChecker
	// confinement reports SyncerConfined; nil: not reported.
	confinement *confinementChecker

	mu             sync.Mutex
	lastSuccess    time.Time
	failures       int
	nodesForbidden bool
}

// run reports every heartbeat interval (with ±10 % jitter, so that many syncers restarted
// together spread out) and backs off exponentially from 1s after a failure, capped at the
// interval.
func (r *statusReporter) run(ctx context.Context) {
	interval := r.interval
	var breakerChanged <-chan struct{}
	if r.breaker != nil {
		breakerChanged = r.breaker.changed
	}
	for {
		err := r.report(ctx)
		var wait time.Duration
		r.mu.Lock()
		if err != nil {
			r.failures++
			wait = min(time.Second<<min(r.failures-1, 10), interval)
		} else {
			r.failures = 0
			wait = time.Duration(float64(interval) * (0.9 + 0.2*rand.Float64()))
		}
		r.mu.Unlock()
		if err != nil {
			klog.FromContext(ctx).V(1).Info("Heartbeat failed", "retryIn", wait, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-breakerChanged:
		}
	}
}

func (r *statusReporter) report(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var current *workloadv1alpha1.SyncTarget
	if r.syncTargetLister != nil {
		current, _ = r.syncTargetLister.Get(r.target.name)
	}
	status := r.buildStatus(ctx, current)
	raw, err := json.Marshal(status)
	if err != nil {
		return fmt.Errorf("failed to marshal status: %w", err)
	}
	statusMap := map[string]any{}
	if err := json.Unmarshal(raw, &statusMap); err != nil {
		return fmt.Errorf("failed to convert status: %w", err)
	}
	apply := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": workloadv1alpha1.SchemeGroupVersion.String(),
		"kind":       "SyncTarget",
		"metadata":   map[string]any{"name": r.target.name, "uid": string(r.target.uid)},
		"status":     statusMap,
	}}
	_, err = r.syncTargets.Apply(ctx, r.target.name, apply, metav1.ApplyOptions{FieldManager: statusFieldManager, Force: true}, "status")
	if err != nil {
		r.metrics.heartbeats.WithLabelValues(r.metrics.clusterName, heartbeatResultFailure).Inc()
		return fmt.Errorf("failed to report SyncTarget status: %w", err)
	}
	now := time.Now()
	r.metrics.heartbeats.WithLabelValues(r.metrics.clusterName, heartbeatResultSuccess).Inc()
	r.metrics.lastHeartbeat.WithLabelValues(r.metrics.clusterName).Set(float64(now.Unix()))
	r.mu.Lock()
	r.lastSuccess = now
	r.mu.Unlock()
	return nil
}

// buildStatus computes the fields the syncer owns. Only these appear in the apply, so the
// controller's fields are untouched.
func (r *statusReporter) buildStatus(ctx context.Context, current *workloadv1alpha1.SyncTarget) map[string]any {
	now := metav1.NewTime(time.Now())
	var existing []metav1.Condition
	if current != nil {
		existing = current.Status.Conditions
	}
	accepted := int32(0)
	var unauthorized []string
	for _, st := range r.caches.syncedResources() {
		switch st.State {
		case workloadv1alpha1.ResourceStateAccepted:
			accepted++
		case workloadv1alpha1.ResourceStateUnauthorized:
			unauthorized = append(unauthorized, st.String())
		}
	}
	var conds []metav1.Condition
	addCond := func(c metav1.Condition) {
		c.LastTransitionTime = now
		if prev := meta.FindStatusCondition(existing, c.Type); prev != nil && prev.Status == c.Status {
			c.LastTransitionTime = prev.LastTransitionTime
		}
		conds = append(conds, c)
	}
	setCond := func(t string, ok bool, reasonOK, reasonBad, msg string) {
		c := metav1.Condition{Type: t, Status: metav1.ConditionTrue, Reason: reasonOK, Message: msg}
		if !ok {
			c.Status, c.Reason = metav1.ConditionFalse, reasonBad
		}
		addCond(c)
	}
	synced, what := r.caches.downstreamSynced()
	readyMsg := "The syncer is running and its caches are synced"
	if !synced {
		readyMsg = "Waiting for caches to sync: " + what
	}
	setCond(workloadv1alpha1.SyncTargetSyncerReady, synced && r.started(), workloadv1alpha1.ReasonSyncerStarted, workloadv1alpha1.ReasonSyncerStarting, readyMsg)
	authMsg := "The syncer may sync every accepted resource type"
	if len(unauthorized) > 0 {
		authMsg = "The syncer lacks permissions in the physical cluster for: " + strings.Join(unauthorized, ", ")
	}
	setCond(workloadv1alpha1.SyncTargetSyncerAuthorized, len(unauthorized) == 0, workloadv1alpha1.ReasonSyncerAuthorized, workloadv1alpha1.ReasonSyncerUnauthorized, authMsg)
	failing := r.errors.failingCounts()
	syncMsg := "Every object is in sync"
	if len(failing) > 0 {
		parts := make([]string, 0, len(failing))
		for t, n := range failing {
			parts = append(parts, fmt.Sprintf("%d %s", n, t))
		}
		sort.Strings(parts)
		syncMsg = "Objects failing to sync: " + strings.Join(parts, ", ")
	}
	setCond(workloadv1alpha1.SyncTargetResourcesSynced, len(failing) == 0, workloadv1alpha1.ReasonAllResourcesSynced, workloadv1alpha1.ReasonResourceSyncErrors, syncMsg)
	if r.breaker != nil {
		addCond(r.breaker.condition(ctx))
	}
	if r.confinement != nil {
		if c, ok := r.confinement.condition(ctx); ok {
			addCond(c)
		}
	}

	status := map[string]any{
		"lastSyncerHeartbeatTime": now.Rfc3339Copy().UTC().Format(time.RFC3339),
		"conditions":              conds,
		"syncedResources":         r.caches.reportedResources(),
		"acceptedResourceCount":   accepted,
		"syncer": workloadv1alpha1.SyncerInfo{
			Version:   version.Get().GitVersion,
			Pod:       r.podName,
			StartTime: &r.startTime,
		},
	}
	if allocatable, capacity, ok := r.nodeSummary(ctx); ok {
		status["allocatable"] = allocatable
		status["capacity"] = capacity
	}
	if e := r.errors.summary(); e != nil {
		status["errors"] = e
	}
	if r.workspaceHealth != nil {
		status["workspaceHealth"] = r.workspaceHealth.check(ctx, r.caches.workspaceSyncStates())
	}
	return status
}

// nodeSummary sums the allocatable and capacity of the downstream nodes.
func (r *statusReporter) nodeSummary(ctx context.Context) (corev1.ResourceList, corev1.ResourceList, bool) {
	r.mu.Lock()
	forbidden := r.nodesForbidden
	r.mu.Unlock()
	if forbidden {
		return nil, nil, false
	}
	nodes, err := r.downstreamNodes.List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		if tmc.TypeOf(err) == tmc.TMCErrorTypeForbidden {
			klog.FromContext(ctx).Info("The syncer may not list nodes; SyncTarget capacity is not reported")
			r.mu.Lock()
			r.nodesForbidden = true
			r.mu.Unlock()
		}
		return nil, nil, false
	}
	allocatable, capacity := corev1.ResourceList{}, corev1.ResourceList{}
	for _, n := range nodes.Items {
		addResources(allocatable, n.Status.Allocatable)
		addResources(capacity, n.Status.Capacity)
	}
	return allocatable, capacity, true
}

func addResources(sum, add corev1.ResourceList) {
	for name, q := range add {
		cur, ok := sum[name]
		if !ok {
			cur = resource.Quantity{}
		}
		cur.Add(q)
		sum[name] = cur
	}
}
