package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/component-base/metrics/testutil"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
)

var gr = schema.GroupResource{Resource: "configmaps"}

type result struct {
	requeueAfter time.Duration
	err          error
}

// newTestQueue returns a queue on a fake clock whose reconcile answers from results (by
// key) and records every key it saw and every OnError call.
func newTestQueue(t *testing.T, results map[string]result) (*Queue[string], *testingclock.FakeClock, *[]string, *[]Decision) {
	t.Helper()
	clk := testingclock.NewFakeClock(time.Now())
	var seen []string
	var decisions []Decision
	q := New(func(_ context.Context, key string) (time.Duration, error) {
		seen = append(seen, key)
		r := results[key]
		return r.requeueAfter, r.err
	}, Options[string]{
		Name:     "test",
		Clock:    clk,
		Recovery: tmc.RecoveryOptions{Backoff: tmc.BackoffConfig{BaseDelay: time.Second, MaxDelay: 4 * time.Second}},
		OnError: func(_ context.Context, _ string, _ *tmc.TMCError, d Decision) {
			decisions = append(decisions, d)
		},
	})
	t.Cleanup(q.ShutDown)
	return q, clk, &seen, &decisions
}

// waitForLen waits until the queue holds want keys ready now. The fake clock's waiters fire
// asynchronously, and the delaying queue arms its timer from the clock reading it took before
// a concurrent Step, so a key may become due only after a further nudge of the clock: the
// clock moves on by nudge every few milliseconds until the keys are there. Callers check
// before that a key is not back too early; this only waits for it to come back.
func waitForLen(t *testing.T, q *Queue[string], clk *testingclock.FakeClock, want int, nudge time.Duration) {
	t.Helper()
	polls := 0
	err := wait.PollUntilContextTimeout(t.Context(), time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		if q.Len() == want {
			return true, nil
		}
		if polls++; polls%20 == 0 {
			clk.Step(nudge)
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("queue length is %d, want %d", q.Len(), want)
	}
}

func TestRetryRule(t *testing.T) {
	tests := []struct {
		name         string
		err          error
		wantStrategy tmc.RecoveryStrategy
		wantAfter    time.Duration
		wantRetry    bool
	}{
		{name: "conflict: fast backoff", err: apierrors.NewConflict(gr, "a", errors.New("modified")),
			wantStrategy: tmc.RecoveryStrategyRetryWithBackoff, wantAfter: time.Second, wantRetry: true},
		{name: "unreachable: reconnect", err: fmt.Errorf("dial: %w", errors.New("connection refused")),
			wantStrategy: tmc.RecoveryStrategyRetryWithBackoff, wantAfter: time.Second, wantRetry: true},
		{name: "forbidden: slow backoff", err: apierrors.NewForbidden(gr, "a", errors.New(`User "x" cannot get`)),
			wantStrategy: tmc.RecoveryStrategySlowRetry, wantAfter: tmc.DefaultSlowBackoff.BaseDelay, wantRetry: true},
		{name: "not found: dropped", err: apierrors.NewNotFound(gr, "a"),
			wantStrategy: tmc.RecoveryStrategyNoRetry},
		{name: "server asks for a later retry", err: apierrors.NewTooManyRequests("slow down", 7),
			wantStrategy: tmc.RecoveryStrategyRetryWithBackoff, wantAfter: 7 * time.Second, wantRetry: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, clk, _, decisions := newTestQueue(t, map[string]result{"a": {err: tc.err}})
			q.Add("a")
			q.ProcessNext(t.Context())
			if len(*decisions) != 1 {
				t.Fatalf("OnError called %d times, want 1", len(*decisions))
			}
			d := (*decisions)[0]
			if tc.wantStrategy == tmc.RecoveryStrategyRetryWithBackoff && d.Strategy == tmc.RecoveryStrategyReconnect {
				d.Strategy = tmc.RecoveryStrategyRetryWithBackoff // the same backoff
			}
			if d.Strategy != tc.wantStrategy || d.Retry != tc.wantRetry || d.After != tc.wantAfter {
				t.Fatalf("got decision %+v, want strategy %s retry %v after %s", d, tc.wantStrategy, tc.wantRetry, tc.wantAfter)
			}
			if !tc.wantRetry {
				if got := q.Failures("a"); got != 0 {
					t.Errorf("a dropped key remembers %d failures, want 0", got)
				}
				clk.Step(time.Hour)
				if q.Len() != 0 {
					t.Error("a dropped key came back")
				}
				return
			}
			if got := q.Failures("a"); got != 1 {
				t.Errorf("got %d failures remembered, want 1", got)
			}
			clk.Step(tc.wantAfter - time.Millisecond)
			if q.Len() != 0 {
				t.Fatal("the key came back before its backoff")
			}
			clk.Step(time.Millisecond)
			waitForLen(t, q, clk, 1, tc.wantAfter)
		})
	}
}

func TestBackoffGrowsAndSuccessForgets(t *testing.T) {
	results := map[string]result{"a": {err: errors.New("boom")}}
	q, clk, _, decisions := newTestQueue(t, results)
	q.Add("a")
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		q.ProcessNext(t.Context())
		if got := (*decisions)[i].After; got != want {
			t.Fatalf("failure %d backs off %s, want %s", i+1, got, want)
		}
		clk.Step(want)
		waitForLen(t, q, clk, 1, want)
	}
	results["a"] = result{}
	q.ProcessNext(t.Context())
	if got := q.Failures("a"); got != 0 {
		t.Errorf("%d failures remembered after a success, want 0", got)
	}
	results["a"] = result{err: errors.New("boom")}
	q.Add("a")
	q.ProcessNext(t.Context())
	if got := (*decisions)[4].After; got != time.Second {
		t.Errorf("after a success the backoff restarts at %s, want 1s", got)
	}
}

func TestRequeueAfterIsNotAFailure(t *testing.T) {
	q, clk, _, decisions := newTestQueue(t, map[string]result{"a": {requeueAfter: 3 * time.Second}})
	q.Add("a")
	q.ProcessNext(t.Context())
	if len(*decisions) != 0 || q.Failures("a") != 0 {
		t.Fatalf("a requeue counted as failure: %v, %d", *decisions, q.Failures("a"))
	}
	clk.Step(3 * time.Second)
	waitForLen(t, q, clk, 1, 3*time.Second)
}

func TestFailingKeyDoesNotBlockOthers(t *testing.T) {
	q, clk, seen, _ := newTestQueue(t, map[string]result{"bad": {err: errors.New("boom")}})
	q.Add("bad")
	q.Add("good")
	q.ProcessNext(t.Context())
	q.ProcessNext(t.Context())
	clk.Step(time.Second)
	waitForLen(t, q, clk, 1, time.Second)
	q.ProcessNext(t.Context())
	if got := fmt.Sprint(*seen); got != "[bad good bad]" {
		t.Errorf("processed %s, want [bad good bad]", got)
	}
}

func TestCanceledContextIsNotAFailure(t *testing.T) {
	q, _, _, decisions := newTestQueue(t, map[string]result{"a": {err: context.Canceled}})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	q.Add("a")
	q.ProcessNext(ctx)
	if len(*decisions) != 0 || q.Failures("a") != 0 || q.Len() != 0 {
		t.Errorf("shutting down counted as a failure or requeued the key")
	}
}

func TestRunStopsWithContext(t *testing.T) {
	done := make(chan string, 10)
	q := New(func(_ context.Context, key string) (time.Duration, error) {
		done <- key
		return 0, nil
	}, Options[string]{Name: "run"})
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() { q.Run(ctx, 2); close(stopped) }()
	q.Add("a")
	select {
	case got := <-done:
		if got != "a" {
			t.Fatalf("reconciled %q, want a", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the key was not reconciled")
	}
	cancel()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the context ended")
	}
}

func TestOverallBucketBoundsFastRetries(t *testing.T) {
	recovery := tmc.NewRecovery(tmc.RecoveryOptions{Backoff: tmc.BackoffConfig{BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}, QPS: 1, Burst: 1})
	limiter := tmc.NewFastRateLimiter[string](recovery)
	if d := limiter.When("a"); d > 10*time.Millisecond {
		t.Fatalf("first retry waits %s, want the per-key 1ms", d)
	}
	if d := limiter.When("b"); d < 500*time.Millisecond {
		t.Errorf("second retry within the bucket's second waits %s, want about 1s", d)
	}
}

// OnSuccess sees every successful key with the requeueAfter its reconcile asked for.
func TestOnSuccessSeesRequeueAfter(t *testing.T) {
	results := map[string]result{"a": {requeueAfter: 3 * time.Second}, "b": {}, "bad": {err: errors.New("boom")}}
	type success struct {
		key   string
		after time.Duration
	}
	var got []success
	q := New(func(_ context.Context, key string) (time.Duration, error) {
		return results[key].requeueAfter, results[key].err
	}, Options[string]{
		Name:  "success",
		Clock: testingclock.NewFakeClock(time.Now()),
		OnSuccess: func(_ context.Context, key string, requeueAfter time.Duration) {
			got = append(got, success{key, requeueAfter})
		},
	})
	t.Cleanup(q.ShutDown)
	for _, key := range []string{"a", "b", "bad"} {
		q.Add(key)
		q.ProcessNext(t.Context())
	}
	if want := []success{{"a", 3 * time.Second}, {"b", 0}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("OnSuccess calls %v, want %v", got, want)
	}
}

// Drain takes the keys ready now without reconciling them and forgets their failures;
// keys waiting for a delay stay.
func TestDrainTakesReadyKeysWithoutReconciling(t *testing.T) {
	q, clk, seen, _ := newTestQueue(t, map[string]result{"bad": {err: errors.New("boom")}})
	q.Add("bad")
	q.ProcessNext(t.Context())
	q.Add("a")
	q.Add("b")
	q.Add("a")
	q.AddAfter("later", time.Hour)
	if got := fmt.Sprint(q.Drain()); got != "[a b]" {
		t.Fatalf("drained %s, want [a b]", got)
	}
	if q.Len() != 0 || fmt.Sprint(*seen) != "[bad]" {
		t.Fatalf("after Drain: %d keys ready, reconciled %v; want 0 and only [bad]", q.Len(), *seen)
	}
	clk.Step(time.Second)
	waitForLen(t, q, clk, 1, time.Second)
	if got := fmt.Sprint(q.Drain()); got != "[bad]" {
		t.Fatalf("drained %s, want the retried [bad]", got)
	}
	if got := q.Failures("bad"); got != 0 {
		t.Errorf("a drained key remembers %d failures, want 0", got)
	}
}

func TestFailuresAreCountedByTypeAndStrategy(t *testing.T) {
	registry := prometheus.NewRegistry()
	q := New(func(context.Context, string) (time.Duration, error) {
		return 0, apierrors.NewForbidden(gr, "a", errors.New("no"))
	}, Options[string]{Name: "counted", Component: "test", Recovery: tmc.RecoveryOptions{Registerer: registry}})
	t.Cleanup(q.ShutDown)
	// A second queue on the same registry shares the counter instead of failing to register.
	other := New(func(context.Context, string) (time.Duration, error) { return 0, nil },
		Options[string]{Name: "other", Recovery: tmc.RecoveryOptions{Registerer: registry}})
	t.Cleanup(other.ShutDown)
	q.Add("a")
	q.ProcessNext(t.Context())
	want := `
# HELP tmc_recovery_attempts_total Number of failures handled by the retry rule, by error type and chosen strategy.
# TYPE tmc_recovery_attempts_total counter
tmc_recovery_attempts_total{component="test",error_type="Forbidden",strategy="SlowRetry"} 1
`
	if err := testutil.GatherAndCompare(registry, strings.NewReader(want), tmc.MetricRecoveryAttempts); err != nil {
		t.Error(err)
	}
}
