package syncer

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// fakeNow is a settable clock for the stuck-deletion tracker.
type fakeNow struct{ t time.Time }

func (c *fakeNow) now() time.Time          { return c.t }
func (c *fakeNow) advance(d time.Duration) { c.t = c.t.Add(d) }

// newFakeNow makes env's stuck-deletion tracker run on a fake clock.
func newFakeNow(env *testEnv) *fakeNow {
	c := &fakeNow{t: time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)}
	env.spec.remover.stuck.now = c.now
	return c
}

func stuckGauge(env *testEnv) float64 {
	return testutil.ToFloat64(env.metrics.stuckDeletions.WithLabelValues(testSyncTargetName))
}

// terminatingCopy is the synced copy of up, deleted but held by two foreign finalizers.
func terminatingCopy(t *testing.T, up *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	return syncedCopy(t, up, deleting, withFinalizers("example.com/backup", "example.com/drain"))
}

// TestStuckDownstreamDeletion: a copy that stays in Terminating is looked at with a
// doubling delay (not every 2 s), reported once per episode past the threshold — an Event
// naming its finalizers and the gauge — and forgotten when it is gone.
func TestStuckDownstreamDeletion(t *testing.T) {
	for _, tc := range []struct {
		name     string
		upstream *unstructured.Unstructured
		// cached: the copy is also in the downstream cache (the wait-before-re-create
		// branch reads it there).
		cached bool
	}{
		{name: "removal waiting for the copy to go", upstream: upstreamConfigMap("web", deleting)},
		{name: "synced object waiting before re-creating its copy", upstream: upstreamConfigMap("web"), cached: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := testObjects{upstream: []*unstructured.Unstructured{tc.upstream}, namespaces: []*corev1.Namespace{ownedNamespace(t)}}
			if tc.cached {
				objs.downstream = []*unstructured.Unstructured{terminatingCopy(t, tc.upstream)}
			} else {
				objs.downstreamLiveOnly = []*unstructured.Unstructured{terminatingCopy(t, tc.upstream)}
			}
			env := newTestEnv(t, objs)
			clock := newFakeNow(env)
			reconcile := func() time.Duration {
				t.Helper()
				requeue, err := env.spec.reconcile(t.Context(), webKey)
				if err != nil {
					t.Fatal(err)
				}
				return requeue
			}

			var delays []time.Duration
			for range 6 {
				delay := reconcile()
				delays = append(delays, delay)
				clock.advance(delay)
			}
			want := []time.Duration{2 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second}
			if !slices.Equal(delays, want) {
				t.Errorf("got delays %v, want doubling %v", delays, want)
			}
			events := env.events()
			expectEvents(t, events, []string{"Warning DownstreamDeletionStuck"})
			for _, f := range []string{"example.com/backup", "example.com/drain", "SyncTarget " + testSyncTargetName} {
				if !strings.Contains(events[0], f) {
					t.Errorf("the Event must name %q: %s", f, events[0])
				}
			}
			if got := stuckGauge(env); got != 1 {
				t.Errorf("stuck gauge is %v, want 1", got)
			}

			// Still stuck: no second Event, the delay keeps growing up to its cap.
			for range 5 {
				clock.advance(reconcile())
			}
			if got := env.events(); len(got) != 0 {
				t.Errorf("the stuck copy must be reported once per episode, got more events %q", got)
			}
			if got := reconcile(); got != terminatingMaxPoll {
				t.Errorf("got delay %s, want it capped at %s", got, terminatingMaxPoll)
			}

			// The foreign finalizers are gone: so is the copy, and the episode ends.
			if err := env.downstreamDynamic.Resource(configMapsGVR).Namespace(downstreamNamespaceFor(t, testWorkspace, testNamespace)).Delete(t.Context(), "web", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			if tc.cached {
				if err := env.downstreamCaches[configMapsGVR].Delete(terminatingCopy(t, tc.upstream)); err != nil {
					t.Fatal(err)
				}
			}
			reconcile()
			if got := stuckGauge(env); got != 0 {
				t.Errorf("stuck gauge is %v after the copy went, want 0", got)
			}
		})
	}
}

// TestStuckDeletionNewEpisode: a copy that went and came back terminating is a new episode,
// reported again.
func TestStuckDeletionNewEpisode(t *testing.T) {
	up := upstreamConfigMap("web", deleting)
	env := newTestEnv(t, testObjects{upstream: []*unstructured.Unstructured{up}, downstreamLiveOnly: []*unstructured.Unstructured{terminatingCopy(t, up)}})
	clock := newFakeNow(env)
	for range 2 {
		if _, err := env.spec.reconcile(t.Context(), webKey); err != nil {
			t.Fatal(err)
		}
		clock.advance(stuckDeletionThreshold)
	}
	expectEvents(t, env.events(), []string{"Warning DownstreamDeletionStuck"})

	replaced := terminatingCopy(t, up)
	replaced.SetUID("downstream-uid-web-2")
	if err := env.downstreamDynamic.Tracker().Update(configMapsGVR, replaced, replaced.GetNamespace()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := env.spec.reconcile(t.Context(), webKey); err != nil {
			t.Fatal(err)
		}
		clock.advance(stuckDeletionThreshold)
	}
	expectEvents(t, env.events(), []string{"Warning DownstreamDeletionStuck"})
}
