package tmc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	clocktesting "k8s.io/utils/clock/testing"
)

var recoveryTestStart = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// newTestRecoveryManager returns a manager on a fake clock whose jitter source
// returns 0 unless opts sets one, so delays are exact.
func newTestRecoveryManager(opts RecoveryOptions) (*RecoveryManager, *clocktesting.FakeClock) {
	fakeClock := clocktesting.NewFakeClock(recoveryTestStart)
	opts.Clock = fakeClock
	if opts.Rand == nil {
		opts.Rand = func() float64 { return 0 }
	}
	if opts.Component == "" {
		opts.Component = "syncer"
	}
	return NewRecoveryManager(opts), fakeClock
}

func conflictError() error {
	return apierrors.NewConflict(deploymentsResource, "web", errors.New("the object has been modified"))
}

func refusedError() error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
}

var fastTestBackoff = BackoffConfig{BaseDelay: 100 * time.Millisecond, Factor: 2, MaxDelay: time.Second}

func TestRecoveryBackoffSequence(t *testing.T) {
	// A non-zero random source proves that Jitter 0 disables jitter.
	m, _ := newTestRecoveryManager(RecoveryOptions{Backoff: fastTestBackoff, Rand: func() float64 { return 0.9 }})
	ctx := t.Context()

	want := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	for i, w := range want {
		d := m.HandleError(ctx, "team-a/web", "", conflictError())
		if d.Strategy != RecoveryStrategyRetryWithBackoff || !d.Retry || d.After != w*time.Millisecond {
			t.Fatalf("failure %d: got %+v, want retry after %v", i, d, w*time.Millisecond)
		}
	}
	if got := m.Failures("team-a/web"); got != len(want) {
		t.Errorf("Failures = %d, want %d", got, len(want))
	}
	if d := m.HandleError(ctx, "team-a/db", "", conflictError()); d.After != 100*time.Millisecond {
		t.Errorf("other key: After = %v, want 100ms", d.After)
	}

	m.Forget("team-a/web")
	if d := m.HandleError(ctx, "team-a/web", "", conflictError()); d.After != 100*time.Millisecond {
		t.Errorf("after Forget: After = %v, want 100ms", d.After)
	}
	m.HandleError(ctx, "team-a/web", "", conflictError())
	m.RecordSuccess("team-a/web", "")
	if got := m.Failures("team-a/web"); got != 0 {
		t.Errorf("after RecordSuccess: Failures = %d, want 0", got)
	}
	if d := m.HandleError(ctx, "team-a/web", "", conflictError()); d.After != 100*time.Millisecond {
		t.Errorf("after RecordSuccess: After = %v, want 100ms", d.After)
	}
}

func TestRecoveryBackoffJitterBounds(t *testing.T) {
	random := rand.New(rand.NewPCG(1, 2))
	config := BackoffConfig{BaseDelay: time.Second, Factor: 2, MaxDelay: 8 * time.Second, Jitter: 0.25}
	m, _ := newTestRecoveryManager(RecoveryOptions{Backoff: config, Rand: random.Float64})

	jittered := false
	for i := range 50 {
		nominal := min(time.Second<<min(i, 10), 8*time.Second)
		d := m.HandleError(t.Context(), "team-a/web", "", conflictError())
		if d.After > nominal || d.After < nominal*3/4 {
			t.Fatalf("failure %d: After = %v, want within [%v, %v]", i, d.After, nominal*3/4, nominal)
		}
		if d.After < nominal {
			jittered = true
		}
	}
	if !jittered {
		t.Error("no delay was jittered")
	}
}

func TestRecoverySlowRetry(t *testing.T) {
	slow := BackoffConfig{BaseDelay: time.Minute, Factor: 2, MaxDelay: 5 * time.Minute}
	m, _ := newTestRecoveryManager(RecoveryOptions{Backoff: fastTestBackoff, SlowBackoff: slow})
	forbidden := apierrors.NewForbidden(deploymentsResource, "web", errors.New("RBAC: access denied"))

	for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute} {
		d := m.HandleError(t.Context(), "team-a/web", "", forbidden)
		if d.Strategy != RecoveryStrategySlowRetry || !d.Retry || d.After != want {
			t.Fatalf("failure %d: got %+v, want SlowRetry after %v", i, d, want)
		}
		if d.Err.Retryable {
			t.Fatal("Forbidden must not be Retryable")
		}
	}
	// Slow and fast backoff are counted separately.
	if d := m.HandleError(t.Context(), "team-a/web", "", conflictError()); d.After != 100*time.Millisecond {
		t.Errorf("fast backoff after slow retries: After = %v, want 100ms", d.After)
	}
}

func TestRecoveryStrategyPerErrorType(t *testing.T) {
	nonRetryableConflict := NewTMCError(TMCErrorTypeResourceConflict, nil, "", "")
	nonRetryableConflict.Retryable = false

	tests := []struct {
		name      string
		err       error
		policy    map[TMCErrorType]RecoveryStrategy
		wantStrat RecoveryStrategy
	}{
		{"cluster unreachable", NewTMCError(TMCErrorTypeClusterUnreachable, nil, "", ""), nil, RecoveryStrategyReconnect},
		{"timeout", NewTMCError(TMCErrorTypeTimeout, nil, "", ""), nil, RecoveryStrategyReconnect},
		{"resource conflict", NewTMCError(TMCErrorTypeResourceConflict, nil, "", ""), nil, RecoveryStrategyRetryWithBackoff},
		{"rate limited", NewTMCError(TMCErrorTypeRateLimited, nil, "", ""), nil, RecoveryStrategyRetryWithBackoff},
		{"quota exceeded", NewTMCError(TMCErrorTypeQuotaExceeded, nil, "", ""), nil, RecoveryStrategyRetryWithBackoff},
		{"unknown", NewTMCError(TMCErrorTypeUnknown, nil, "", ""), nil, RecoveryStrategyRetryWithBackoff},
		{"unrecognised type", NewTMCError("SomethingNew", nil, "", ""), nil, RecoveryStrategyRetryWithBackoff},
		{"forbidden", NewTMCError(TMCErrorTypeForbidden, nil, "", ""), nil, RecoveryStrategySlowRetry},
		{"unauthorized", NewTMCError(TMCErrorTypeUnauthorized, nil, "", ""), nil, RecoveryStrategySlowRetry},
		{"api not available", NewTMCError(TMCErrorTypeAPINotAvailable, nil, "", ""), nil, RecoveryStrategySlowRetry},
		{"admission denied", NewTMCError(TMCErrorTypeAdmissionDenied, nil, "", ""), nil, RecoveryStrategySlowRetry},
		{"invalid resource", NewTMCError(TMCErrorTypeInvalidResource, nil, "", ""), nil, RecoveryStrategySlowRetry},
		{"namespace collision", NewTMCError(TMCErrorTypeNamespaceCollision, nil, "", ""), nil, RecoveryStrategySlowRetry},
		{"not found", NewTMCError(TMCErrorTypeNotFound, nil, "", ""), nil, RecoveryStrategyNoRetry},
		{"classified api error", conflictError(), nil, RecoveryStrategyRetryWithBackoff},
		{"classified connection error", refusedError(), nil, RecoveryStrategyReconnect},
		{"canceled", fmt.Errorf("failed to list: %w", context.Canceled), nil, RecoveryStrategyNoRetry},
		{"explicitly non-retryable", nonRetryableConflict, nil, RecoveryStrategyNoRetry},
		{"policy override", NewTMCError(TMCErrorTypeNotFound, nil, "", ""),
			map[TMCErrorType]RecoveryStrategy{TMCErrorTypeNotFound: RecoveryStrategyRetryWithBackoff}, RecoveryStrategyRetryWithBackoff},
		{"empty override ignored", NewTMCError(TMCErrorTypeForbidden, nil, "", ""),
			map[TMCErrorType]RecoveryStrategy{TMCErrorTypeForbidden: ""}, RecoveryStrategySlowRetry},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := newTestRecoveryManager(RecoveryOptions{Backoff: fastTestBackoff, Policy: tc.policy})
			m.HandleError(t.Context(), "team-a/web", "", conflictError())

			d := m.HandleError(t.Context(), "team-a/web", "", tc.err)
			if d.Strategy != tc.wantStrat {
				t.Errorf("Strategy = %q, want %q", d.Strategy, tc.wantStrat)
			}
			wantRetry := tc.wantStrat != RecoveryStrategyNoRetry
			if d.Retry != wantRetry {
				t.Errorf("Retry = %v, want %v", d.Retry, wantRetry)
			}
			if d.Err == nil || !errors.Is(d.Err, tc.err) {
				t.Errorf("Err = %v, want the classified error", d.Err)
			}
			if !wantRetry && (d.After != 0 || m.Failures("team-a/web") != 0) {
				t.Errorf("NoRetry must not wait and must forget the key: After = %v, Failures = %d", d.After, m.Failures("team-a/web"))
			}
		})
	}
}

func TestRecoveryRetryAfter(t *testing.T) {
	m, _ := newTestRecoveryManager(RecoveryOptions{Backoff: fastTestBackoff})
	if d := m.HandleError(t.Context(), "a", "", apierrors.NewTooManyRequests("slow down", 3)); d.After != 3*time.Second {
		t.Errorf("TooManyRequests: After = %v, want 3s", d.After)
	}
	if d := m.HandleError(t.Context(), "b", "", apierrors.NewServerTimeout(deploymentsResource, "update", 2)); d.After != 2*time.Second {
		t.Errorf("ServerTimeout: After = %v, want 2s", d.After)
	}

	// A backoff longer than Retry-After wins.
	m, _ = newTestRecoveryManager(RecoveryOptions{Backoff: BackoffConfig{BaseDelay: 10 * time.Second, MaxDelay: time.Minute}})
	if d := m.HandleError(t.Context(), "a", "", apierrors.NewTooManyRequests("slow down", 3)); d.After != 10*time.Second {
		t.Errorf("After = %v, want 10s", d.After)
	}
}

func TestRecoveryReconnectHooks(t *testing.T) {
	m, fakeClock := newTestRecoveryManager(RecoveryOptions{CircuitBreaker: breakerTestConfig, HookTimeout: time.Minute})
	var eastCalls, anyCalls, westCalls int
	m.OnReconnect("east", func(ctx context.Context) error {
		eastCalls++
		if _, ok := ctx.Deadline(); !ok {
			t.Error("hook context has no deadline")
		}
		// Hooks run outside the lock, so they may use the manager.
		if got := m.State("east"); got != CircuitClosed {
			t.Errorf("State inside hook = %v, want Closed", got)
		}
		return nil
	})
	m.OnReconnect("", func(context.Context) error { anyCalls++; return nil })
	m.OnReconnect("west", func(context.Context) error { westCalls++; return nil })
	m.OnReconnect("east", nil)

	m.RecordSuccess("a", "east")
	if eastCalls != 0 || anyCalls != 0 {
		t.Fatal("hooks must not run without a reconnect")
	}

	openCircuit(t, m, "east")
	fakeClock.Step(breakerTestConfig.OpenTimeout)
	m.Allow("east")
	m.RecordSuccess("a", "east")
	if eastCalls != 1 || anyCalls != 1 || westCalls != 0 {
		t.Fatalf("calls east=%d any=%d west=%d, want 1 1 0", eastCalls, anyCalls, westCalls)
	}
	m.RecordSuccess("a", "east")
	if eastCalls != 1 || anyCalls != 1 {
		t.Fatal("hooks must run once per reconnect")
	}
	if got := m.Snapshot().Targets[0].LastReconnectError; got != "" {
		t.Errorf("LastReconnectError = %q, want empty", got)
	}

	m.OnReconnect("east", func(context.Context) error { return errors.New("failed to restart informers") })
	openCircuit(t, m, "east")
	m.RecordSuccess("a", "east")
	if eastCalls != 2 || anyCalls != 2 {
		t.Fatalf("calls east=%d any=%d, want 2 2", eastCalls, anyCalls)
	}
	if got := m.Snapshot().Targets[0].LastReconnectError; !strings.Contains(got, "failed to restart informers") {
		t.Errorf("LastReconnectError = %q", got)
	}
}

func TestRecoveryMetrics(t *testing.T) {
	registry := prometheus.NewRegistry()
	m, fakeClock := newTestRecoveryManager(RecoveryOptions{Registerer: registry, CircuitBreaker: breakerTestConfig})

	openCircuit(t, m, "east")
	m.HandleError(t.Context(), "a", "", conflictError())
	m.HandleError(t.Context(), "a", "", NewTMCError("Bogus", nil, "", ""))
	fakeClock.Step(breakerTestConfig.OpenTimeout)
	m.Allow("east")
	m.RecordSuccess("a", "east")

	attempts := func(errType TMCErrorType, strategy RecoveryStrategy) float64 {
		return testutil.ToFloat64(m.metrics.attempts.WithLabelValues("syncer", string(errType), string(strategy)))
	}
	if got := attempts(TMCErrorTypeClusterUnreachable, RecoveryStrategyReconnect); got != 3 {
		t.Errorf("ClusterUnreachable attempts = %v, want 3", got)
	}
	if got := attempts(TMCErrorTypeResourceConflict, RecoveryStrategyRetryWithBackoff); got != 1 {
		t.Errorf("ResourceConflict attempts = %v, want 1", got)
	}
	if got := attempts(TMCErrorTypeUnknown, RecoveryStrategyRetryWithBackoff); got != 1 {
		t.Errorf("unrecognised types must be counted as Unknown: got %v", got)
	}

	want := `
# HELP tmc_circuit_breaker_state State of the circuit breaker of a target: 0 closed, 1 half-open, 2 open.
# TYPE tmc_circuit_breaker_state gauge
tmc_circuit_breaker_state{component="syncer",target="east"} 0
# HELP tmc_circuit_breaker_transitions_total Number of circuit breaker state transitions of a target.
# TYPE tmc_circuit_breaker_transitions_total counter
tmc_circuit_breaker_transitions_total{component="syncer",from="Closed",target="east",to="Open"} 1
tmc_circuit_breaker_transitions_total{component="syncer",from="HalfOpen",target="east",to="Closed"} 1
tmc_circuit_breaker_transitions_total{component="syncer",from="Open",target="east",to="HalfOpen"} 1
`
	if err := testutil.GatherAndCompare(registry, strings.NewReader(want),
		"tmc_circuit_breaker_state", "tmc_circuit_breaker_transitions_total"); err != nil {
		t.Error(err)
	}

	openCircuit(t, m, "east")
	if got := testutil.ToFloat64(m.metrics.circuitState.WithLabelValues("syncer", "east")); got != 2 {
		t.Errorf("state gauge = %v, want 2 (open)", got)
	}
	fakeClock.Step(breakerTestConfig.OpenTimeout)
	m.State("east")
	if got := testutil.ToFloat64(m.metrics.circuitState.WithLabelValues("syncer", "east")); got != 1 {
		t.Errorf("state gauge = %v, want 1 (half-open)", got)
	}

	// A second manager on the same registry shares the collectors.
	other := NewRecoveryManager(RecoveryOptions{Component: "syncer", Registerer: registry})
	other.HandleError(t.Context(), "a", "", conflictError())
	if got := attempts(TMCErrorTypeResourceConflict, RecoveryStrategyRetryWithBackoff); got != 2 {
		t.Errorf("shared ResourceConflict attempts = %v, want 2", got)
	}

	problems, err := testutil.GatherAndLint(registry)
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", err, problems)
	}

	m.RemoveTarget("east")
	if n := testutil.CollectAndCount(m.metrics.circuitState) + testutil.CollectAndCount(m.metrics.transitions); n != 0 {
		t.Errorf("%d series left after RemoveTarget", n)
	}
	if m.State("east") != CircuitClosed || len(m.Snapshot().Targets) != 0 {
		t.Error("RemoveTarget must drop the breaker")
	}
}

func TestRecoverySnapshot(t *testing.T) {
	m, _ := newTestRecoveryManager(RecoveryOptions{CircuitBreaker: breakerTestConfig})
	openCircuit(t, m, "west")
	m.HandleError(t.Context(), "team-a/web", "east", conflictError())
	m.HandleError(t.Context(), "team-a/web", "east", apierrors.NewNotFound(deploymentsResource, "web"))
	m.HandleError(t.Context(), "team-b/web", "", context.DeadlineExceeded)

	s := m.Snapshot()
	if s.Component != "syncer" {
		t.Errorf("Component = %q", s.Component)
	}
	if len(s.Targets) != 2 || s.Targets[0].Target != "east" || s.Targets[1].Target != "west" {
		t.Fatalf("Targets = %+v, want east and west in order", s.Targets)
	}
	if east := s.Targets[0]; east.State != CircuitClosed || east.ConsecutiveFailures != 0 || east.LastErrorType != "" {
		t.Errorf("east = %+v", east)
	}
	west := s.Targets[1]
	if west.State != CircuitOpen || west.ConsecutiveFailures != 3 || !west.OpenedAt.Equal(recoveryTestStart) ||
		west.LastErrorType != TMCErrorTypeClusterUnreachable || !strings.Contains(west.LastError, "connection refused") ||
		!west.LastFailureTime.Equal(recoveryTestStart) {
		t.Errorf("west = %+v", west)
	}
	wantCounts := map[TMCErrorType]int64{
		TMCErrorTypeClusterUnreachable: 3,
		TMCErrorTypeResourceConflict:   1,
		TMCErrorTypeNotFound:           1,
		TMCErrorTypeTimeout:            1,
	}
	if fmt.Sprint(s.FailuresByType) != fmt.Sprint(wantCounts) {
		t.Errorf("FailuresByType = %v, want %v", s.FailuresByType, wantCounts)
	}
	// key-0..2 and team-b/web back off; team-a/web was forgotten by NotFound.
	if s.BackingOffKeys != 4 {
		t.Errorf("BackingOffKeys = %d, want 4", s.BackingOffKeys)
	}

	s.FailuresByType[TMCErrorTypeUnknown] = 99
	if m.Snapshot().FailuresByType[TMCErrorTypeUnknown] != 0 {
		t.Error("Snapshot must return a copy")
	}
}

func TestRecoveryManagerZeroValues(t *testing.T) {
	m := NewRecoveryManager(RecoveryOptions{})
	var nilCtx context.Context
	if d := m.HandleError(nilCtx, "", "", nil); d.Retry || d.Strategy != RecoveryStrategyNoRetry || d.Err != nil {
		t.Errorf("nil error: got %+v", d)
	}
	d := m.HandleError(nilCtx, "", "", conflictError())
	if !d.Retry || d.After > DefaultBackoff.BaseDelay || d.After < DefaultBackoff.BaseDelay*4/5 {
		t.Errorf("default backoff: got %+v", d)
	}
	for range DefaultCircuitBreaker.FailureThreshold - 1 {
		m.HandleError(t.Context(), "a", "east", refusedError())
	}
	if m.State("east") != CircuitClosed {
		t.Error("default threshold must be 5")
	}
	m.HandleError(t.Context(), "a", "east", refusedError())
	if m.State("east") != CircuitOpen {
		t.Error("default threshold must be 5")
	}
	m.RecordSuccess("", "")
	m.RecordSuccess("missing", "missing")
	m.Forget("missing")
	m.RemoveTarget("")
	m.OnReconnect("", nil)
	if !m.Allow("") || !m.Allow("missing") || m.State("missing") != CircuitClosed {
		t.Error("unknown targets must be allowed and closed")
	}
}

func TestRecoveryManagerConcurrency(t *testing.T) {
	registry := prometheus.NewRegistry()
	m, fakeClock := newTestRecoveryManager(RecoveryOptions{
		Registerer:     registry,
		CircuitBreaker: breakerTestConfig,
		Rand:           rand.Float64,
		Backoff:        BackoffConfig{BaseDelay: time.Millisecond, Factor: 2, MaxDelay: time.Second, Jitter: 0.5},
	})
	var hookCalls atomic.Int64
	errs := []error{refusedError(), conflictError(), context.DeadlineExceeded, apierrors.NewForbidden(deploymentsResource, "web", errors.New("RBAC"))}
	targets := []string{"east", "west", ""}

	const workers, iterations = 8, 300
	var handled atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range iterations {
				key := fmt.Sprintf("ns/obj-%d", (w+i)%10)
				target := targets[(w+i)%len(targets)]
				switch i % 6 {
				case 0, 1, 2:
					if d := m.HandleError(t.Context(), key, target, errs[(w*i)%len(errs)]); d.Err == nil {
						t.Error("decision without error")
					}
					handled.Add(1)
				case 3:
					m.Allow(target)
					m.State(target)
				case 4:
					m.RecordSuccess(key, target)
				case 5:
					if i%60 == 5 {
						m.OnReconnect(target, func(context.Context) error { hookCalls.Add(1); return nil })
					}
					m.Snapshot()
					m.Forget(key)
					fakeClock.Step(time.Second)
				}
			}
		})
	}
	wg.Wait()

	var total int64
	for _, count := range m.Snapshot().FailuresByType {
		total += count
	}
	if total != handled.Load() {
		t.Errorf("FailuresByType sums to %d, want %d", total, handled.Load())
	}
	var attempts float64
	for _, errType := range AllTMCErrorTypes() {
		for _, strategy := range []RecoveryStrategy{RecoveryStrategyRetryWithBackoff, RecoveryStrategySlowRetry, RecoveryStrategyReconnect, RecoveryStrategyNoRetry} {
			attempts += testutil.ToFloat64(m.metrics.attempts.WithLabelValues("syncer", string(errType), string(strategy)))
		}
	}
	if int64(attempts) != handled.Load() {
		t.Errorf("attempts metric sums to %v, want %d", attempts, handled.Load())
	}
}
