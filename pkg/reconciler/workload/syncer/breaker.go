package syncer

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// plannedDeletion is one downstream deletion the syncer decided on its own (the upstream
// object carries no deletionTimestamp): unscheduled, SyncTarget deleted, namespace cleanup.
type plannedDeletion struct {
	workspace           string
	resource            string // e.g. "deployments.apps", "configmaps", "namespaces"
	downstreamNamespace string
	name                string
	reason              string // one of the deletionReason constants
	// objects is how many synced objects the deletion removes: 1 for an object, the
	// objects a namespace still holds for a namespace.
	objects int
}

// Why the syncer decided on its own to delete something downstream.
const (
	// deletionUnscheduled: the object is no longer placed on this target (state label
	// gone, or the per-target deletion annotation set).
	deletionUnscheduled = "unscheduled"
	// deletionTargetDeleted: the SyncTarget is being deleted.
	deletionTargetDeleted = "synctarget-deleted"
	// deletionNamespaceCleanup: a downstream namespace whose upstream namespace is gone or
	// no longer placed here.
	deletionNamespaceCleanup = "namespace-cleanup"
	// deletionUpstreamLost: the upstream object vanished while holding our finalizer and
	// without a deletionTimestamp (restored etcd, re-created workspace, misrouting proxy).
	// Such a deletion is never admitted until an operator resumes deletions.
	deletionUpstreamLost = "upstream-lost"
)

// deletionReasons are the reasons above, in the order messages and metrics list them.
var deletionReasons = []string{deletionUpstreamLost, deletionUnscheduled, deletionTargetDeleted, deletionNamespaceCleanup}

// deletionBudget admits the downstream deletions the syncer decides on its own. admit
// records one deletion about to be made and says whether it may go ahead now; false while
// the breaker has paused deletions (the caller keeps the copy and looks again later).
// Admitting the same deletion again within the window is not counted twice.
type deletionBudget interface {
	admit(ctx context.Context, d plannedDeletion) bool
}

// unlimitedBudget admits everything.
type unlimitedBudget struct{}

func (unlimitedBudget) admit(context.Context, plannedDeletion) bool { return true }

const (
	// maxHeldDeletions bounds the remembered held deletions; holds beyond it are still
	// held and counted, but admitted only once they are remembered.
	maxHeldDeletions = 10000
	// heldForgetAfter forgets a held deletion nobody asked for again this long (its
	// object came back, or the caller gave up on it).
	heldForgetAfter = 10 * time.Minute
)

// deletionKey names one downstream deletion.
type deletionKey struct {
	workspace, resource, downstreamNamespace, name string
}

func keyOf(d plannedDeletion) deletionKey {
	return deletionKey{workspace: d.workspace, resource: d.resource, downstreamNamespace: d.downstreamNamespace, name: d.name}
}

// countedDeletion is a deletion counted in the current window.
type countedDeletion struct {
	at       time.Time
	objects  int
	admitted bool // false: an upstream-lost deletion, counted but held
}

// heldDeletion is a deletion the breaker said no to.
type heldDeletion struct {
	reason    string
	since     time.Time // first held
	lastAsked time.Time
	// approved: an operator resumed after since; every further ask is admitted,
	// uncounted. admitted: it was.
	approved, admitted bool
}

// deletionBreaker is the mass-deletion breaker: a deletionBudget that counts the objects
// it admits in a sliding window and trips when they would exceed max(objects, percent % of
// the synced objects). Tripped, it holds every further deletion until an operator sets
// ResumeDeletionsAnnotation on the SyncTarget to a time after the trip. Upstream-lost
// deletions are counted too (so that many of them trip it), but held until a resume newer
// than their first hold, whatever the budget.
//
// It re-queues nothing: callers ask again later. It never writes the SyncTarget: the
// status reporter reads its state (condition) and reports it with the heartbeat; changed
// wakes the reporter on a trip or resume.
type deletionBreaker struct {
	budget        DeletionBudget
	syncTargetRef *corev1.ObjectReference
	metrics       *syncerMetrics
	now           func() time.Time
	// syncedObjects counts the target's synced objects (the downstream caches).
	syncedObjects func() int
	// syncTarget returns the cached SyncTarget (for the resume annotation), nil if unknown.
	// recorder records Events on the SyncTarget in the location workspace; nil: none.
	// Both are bound by runControllers before the queues run.
	syncTarget func() *workloadv1alpha1.SyncTarget
	recorder   record.EventRecorder
	changed    chan struct{}

	mu      sync.Mutex
	counted map[deletionKey]countedDeletion
	// countedObjects is the sum of objects over counted.
	countedObjects int
	held           map[deletionKey]*heldDeletion
	// waiting counts the held deletions not approved yet, by reason.
	waiting     map[string]int
	prunedAt    time.Time
	overflowed  bool // holds beyond maxHeldDeletions were not remembered
	trip        *breakerTrip
	resume      *breakerResume
	lostEpisode bool // upstream-lost deletions are held while not tripped
	resumeRaw   string
	restored    bool
	syncedCache int
	syncedAt    time.Time
}

// breakerTrip is when and at what budget the breaker tripped.
type breakerTrip struct {
	at            time.Time
	limit, synced int
}

// breakerResume is the last resume that released something.
type breakerResume struct {
	at       time.Time
	released int
}

func newDeletionBreaker(budget DeletionBudget, target syncTarget, syncedObjects func() int, metrics *syncerMetrics) *deletionBreaker {
	return &deletionBreaker{
		budget: budget,
		syncTargetRef: &corev1.ObjectReference{
			APIVersion: workloadv1alpha1.SchemeGroupVersion.String(), Kind: "SyncTarget", Name: target.name, UID: target.uid,
		},
		metrics:       metrics,
		now:           time.Now,
		syncedObjects: syncedObjects,
		syncTarget:    func() *workloadv1alpha1.SyncTarget { return nil },
		changed:       make(chan struct{}, 1),
		counted:       map[deletionKey]countedDeletion{},
		held:          map[deletionKey]*heldDeletion{},
		waiting:       map[string]int{},
	}
}

// lockCurrent takes the breaker's lock and brings its state up to now (a new resume
// annotation seen, the window and old holds pruned); unlock publishes the metrics and
// releases the lock.
func (b *deletionBreaker) lockCurrent(ctx context.Context) (now time.Time, unlock func()) {
	b.mu.Lock()
	now = b.now()
	b.observeLocked(ctx, now)
	b.pruneLocked(now)
	return now, func() {
		b.updateMetricsLocked()
		b.mu.Unlock()
	}
}

func (b *deletionBreaker) admit(ctx context.Context, d plannedDeletion) bool {
	if d.objects <= 0 && d.resource != "namespaces" {
		d.objects = 1 // an object is one object, whatever the caller says
	}
	now, unlock := b.lockCurrent(ctx)
	defer unlock()
	k := keyOf(d)
	logger := klog.FromContext(ctx).WithValues("deletionReason", d.reason, "objects", d.objects)

	if h, ok := b.held[k]; ok && h.approved {
		// Remembered until nobody asks any more: the caller asks again while the copy
		// is going, and must not be held then.
		h.lastAsked = now
		if !h.admitted {
			h.admitted = true
			b.metrics.deletionAdmitted(d.reason)
			logger.V(2).Info("Deletion admitted: an operator resumed deletions")
		}
		return true
	}
	if c, ok := b.counted[k]; ok && c.admitted {
		return true // asked again for a deletion already admitted in this window
	}
	if d.reason == deletionUpstreamLost {
		trips := false
		if _, ok := b.held[k]; !ok {
			// Counted once, so that many lost objects trip the breaker.
			b.countLocked(k, countedDeletion{at: now, objects: d.objects})
			trips = b.trip == nil && b.overBudgetLocked(0)
		}
		b.holdLocked(ctx, k, d, now, trips)
		logger.V(2).Info("Keeping downstream copy: its upstream object vanished without a deletion; deletions of lost objects wait for an operator")
		return false
	}
	if trips := b.trip == nil && b.overBudgetLocked(d.objects); trips || b.trip != nil {
		b.holdLocked(ctx, k, d, now, trips)
		logger.V(2).Info("Deletion held: the deletion budget is exhausted")
		return false
	}
	b.countLocked(k, countedDeletion{at: now, objects: d.objects, admitted: true})
	b.forgetLocked(k) // held after a resume's time but before it was seen
	b.metrics.deletionAdmitted(d.reason)
	return true
}

// limitLocked returns the budget in objects and the synced objects it is computed from.
func (b *deletionBreaker) limitLocked(now time.Time) (int, int) {
	if b.syncedAt.IsZero() || now.Sub(b.syncedAt) >= time.Second {
		b.syncedCache, b.syncedAt = b.syncedObjects(), now
	}
	return max(b.budget.Objects, b.syncedCache*b.budget.Percent/100), b.syncedCache
}

// overBudgetLocked reports whether the counted objects plus more exceed the budget.
func (b *deletionBreaker) overBudgetLocked(more int) bool {
	if b.budget.Objects < 0 {
		return false
	}
	limit, _ := b.limitLocked(b.now())
	return b.countedObjects+more > limit
}

// holdLocked remembers a held deletion and, when it trips the breaker, trips it.
func (b *deletionBreaker) holdLocked(ctx context.Context, k deletionKey, d plannedDeletion, now time.Time, trips bool) {
	if h, ok := b.held[k]; ok {
		h.lastAsked = now
	} else if len(b.held) >= maxHeldDeletions {
		b.overflowed = true
	} else {
		b.held[k] = &heldDeletion{reason: d.reason, since: now, lastAsked: now}
		b.waiting[d.reason]++
	}
	if trips {
		b.tripLocked(ctx, now)
		return
	}
	if d.reason == deletionUpstreamLost && b.trip == nil && !b.lostEpisode {
		b.lostEpisode = true
		klog.FromContext(ctx).Info("Keeping downstream copies whose upstream objects vanished without a deletion until an operator resumes deletions")
		b.event(corev1.EventTypeWarning, "UpstreamObjectsLost", b.lostMessageLocked())
		b.signal()
	}
}

func (b *deletionBreaker) tripLocked(ctx context.Context, now time.Time) {
	limit, synced := b.limitLocked(now)
	b.trip = &breakerTrip{at: now, limit: limit, synced: synced}
	b.resume = nil
	klog.FromContext(ctx).Info("Mass-deletion breaker tripped: deletions the syncer decides on its own are paused until an operator resumes them",
		"limit", limit, "syncedObjects", synced, "window", b.budget.Window)
	b.event(corev1.EventTypeWarning, "DeletionsPaused", b.tripMessageLocked())
	b.signal()
}

func (b *deletionBreaker) countLocked(k deletionKey, c countedDeletion) {
	b.countedObjects += c.objects - b.counted[k].objects
	b.counted[k] = c
}

// forgetLocked drops a held deletion.
func (b *deletionBreaker) forgetLocked(k deletionKey) {
	if h, ok := b.held[k]; ok {
		if !h.approved {
			b.waiting[h.reason]--
		}
		delete(b.held, k)
	}
}

// pruneLocked, at most once a second, ends the window of old counted deletions and
// forgets stale holds.
func (b *deletionBreaker) pruneLocked(now time.Time) {
	if now.Sub(b.prunedAt) >= time.Second {
		b.prunedAt = now
		for k, c := range b.counted {
			if now.Sub(c.at) >= b.budget.Window {
				b.countedObjects -= c.objects
				delete(b.counted, k)
			}
		}
		for k, h := range b.held {
			if now.Sub(h.lastAsked) >= heldForgetAfter {
				b.forgetLocked(k)
			}
		}
	}
	if b.lostEpisode && b.waiting[deletionUpstreamLost] == 0 {
		b.lostEpisode = false
	}
}

// observeLocked reads the SyncTarget: on the first read a trip recorded in its condition
// (by an earlier run of the syncer) is restored; a new resume annotation releases what was
// paused before it.
func (b *deletionBreaker) observeLocked(ctx context.Context, now time.Time) {
	st := b.syncTarget()
	if st == nil {
		return
	}
	if !b.restored {
		b.restored = true
		if c := meta.FindStatusCondition(st.Status.Conditions, workloadv1alpha1.SyncTargetDeletionsPaused); c != nil &&
			c.Status == metav1.ConditionTrue && c.Reason == workloadv1alpha1.ReasonDeletionBudgetExceeded {
			limit, synced := b.limitLocked(now)
			b.trip = &breakerTrip{at: c.LastTransitionTime.Time, limit: limit, synced: synced}
			klog.FromContext(ctx).Info("Deletions were paused by the syncer's previous run; they stay paused until an operator resumes them", "pausedSince", c.LastTransitionTime.Time)
		}
	}
	raw := st.Annotations[workloadv1alpha1.ResumeDeletionsAnnotation]
	if raw == "" || raw == b.resumeRaw {
		return
	}
	b.resumeRaw = raw
	at, err := time.Parse(time.RFC3339, raw)
	if err != nil {
		klog.FromContext(ctx).Info("Ignoring an invalid resume annotation on the SyncTarget: it must be an RFC3339 time", "annotation", workloadv1alpha1.ResumeDeletionsAnnotation, "value", raw)
		return
	}
	// A resume dated in the future (a skewed clock) must not pre-approve what has not
	// happened yet.
	if at.After(now) {
		at = now
	}
	b.resumeLocked(ctx, at)
}

// resumeLocked releases the trip and the holds older than at.
func (b *deletionBreaker) resumeLocked(ctx context.Context, at time.Time) {
	released := 0
	for _, h := range b.held {
		if !h.approved && h.since.Before(at) {
			h.approved = true
			b.waiting[h.reason]--
			released++
		}
	}
	tripped := b.trip != nil && b.trip.at.Before(at)
	if tripped {
		b.trip = nil
		clear(b.counted)
		b.countedObjects = 0
		b.overflowed = false
	}
	if !tripped && released == 0 {
		return
	}
	b.resume = &breakerResume{at: at, released: released}
	klog.FromContext(ctx).Info("Deletions resumed by an operator", "resumedAt", at, "releasedDeletions", released)
	b.event(corev1.EventTypeNormal, "DeletionsResumed", b.resumeMessageLocked())
	b.signal()
}

func (b *deletionBreaker) event(eventType, reason, msg string) {
	if b.recorder != nil {
		b.recorder.Event(b.syncTargetRef, eventType, reason, msg)
	}
}

// signal wakes the status reporter; a pending wake-up is enough.
func (b *deletionBreaker) signal() {
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

func (b *deletionBreaker) updateMetricsLocked() {
	for _, r := range deletionReasons {
		b.metrics.deletionsHeld.WithLabelValues(b.metrics.clusterName, r).Set(float64(b.waiting[r]))
	}
	paused := 0.0
	if b.trip != nil || b.waiting[deletionUpstreamLost] > 0 {
		paused = 1
	}
	b.metrics.deletionsPaused.WithLabelValues(b.metrics.clusterName).Set(paused)
}
