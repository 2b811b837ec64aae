package syncer

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// Waiting for a terminating downstream copy: looked at again after the time it has been
// waiting so far (2 s, 2 s, 4 s, 8 s … doubling, at most 5 min), so that a copy held by a
// foreign finalizer costs a few requests, not one every 2 s forever. The downstream delete
// event still re-queues the key at once.
const (
	stuckDeletionThreshold = 30 * time.Second
	terminatingMinPoll     = 2 * time.Second
	terminatingMaxPoll     = 5 * time.Minute
	stuckEventReason       = "DownstreamDeletionStuck"
)

// stuckDeletions follows the downstream copies the syncer waits for while they are
// terminating. Each wait is an episode, from the first time this syncer saw the copy (its
// UID) terminating until the copy is gone: past the threshold it is reported once — an
// Event on the upstream object naming the finalizers that hold the copy — and counted in
// the stuck-deletions gauge until it ends.
type stuckDeletions struct {
	threshold time.Duration
	now       func() time.Time
	metrics   *syncerMetrics

	mu       sync.Mutex
	episodes map[specKey]*terminatingEpisode
}

type terminatingEpisode struct {
	downstreamUID types.UID
	since         time.Time
	reported      bool
}

func newStuckDeletions(metrics *syncerMetrics) *stuckDeletions {
	return &stuckDeletions{threshold: stuckDeletionThreshold, now: time.Now, metrics: metrics, episodes: map[specKey]*terminatingEpisode{}}
}

// wait records that the syncer waits for downstreamObj (being deleted, or just deleted) to
// go, reports it once it is stuck, and returns when to look again. upstreamObj (nil when
// lost) receives the Event.
func (s *stuckDeletions) wait(ctx context.Context, req specRequest, upstreamObj, downstreamObj *unstructured.Unstructured, syncTargetName string) time.Duration {
	now := s.now()
	s.mu.Lock()
	ep, ok := s.episodes[req.key]
	if !ok || ep.downstreamUID != downstreamObj.GetUID() {
		// A new episode (a replaced copy ends the old one).
		ep = &terminatingEpisode{downstreamUID: downstreamObj.GetUID(), since: now}
		s.episodes[req.key] = ep
	}
	waited := now.Sub(ep.since)
	report := !ep.reported && waited >= s.threshold
	if report {
		ep.reported = true
	}
	s.setGaugeLocked()
	s.mu.Unlock()

	if report {
		finalizers := downstreamObj.GetFinalizers()
		klog.FromContext(ctx).Info("Downstream copy stuck in Terminating", "waited", waited.Round(time.Second), "finalizers", finalizers)
		if upstreamObj != nil {
			event(req.upstream, upstreamObj, corev1.EventTypeWarning, stuckEventReason, fmt.Sprintf(
				"The copy %s/%s in the physical cluster of SyncTarget %s has been terminating for more than %s, held by the finalizers [%s]; the upstream object is released once it is gone",
				req.downstreamNamespace, req.key.name, syncTargetName, s.threshold, strings.Join(finalizers, ", ")))
		}
	}
	return min(max(waited, terminatingMinPoll), terminatingMaxPoll)
}

// forget ends the episode of key: its copy is gone, not ours, or not terminating.
func (s *stuckDeletions) forget(key specKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.episodes[key]; !ok {
		return
	}
	delete(s.episodes, key)
	s.setGaugeLocked()
}

func (s *stuckDeletions) setGaugeLocked() {
	n := 0
	for _, ep := range s.episodes {
		if ep.reported {
			n++
		}
	}
	s.metrics.stuckDeletions.WithLabelValues(s.metrics.clusterName).Set(float64(n))
}
