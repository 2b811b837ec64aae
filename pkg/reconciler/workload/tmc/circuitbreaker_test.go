package tmc

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

var breakerTestConfig = CircuitBreakerConfig{
	FailureThreshold: 3,
	OpenTimeout:      10 * time.Second,
	MaxOpenTimeout:   40 * time.Second,
	HalfOpenProbes:   1,
}

// openCircuit makes target's circuit open with connection failures.
func openCircuit(t *testing.T, m *RecoveryManager, target string) {
	t.Helper()
	for i := range breakerTestConfig.FailureThreshold {
		m.HandleError(t.Context(), fmt.Sprintf("key-%d", i), target, refusedError())
	}
	if got := m.State(target); got != CircuitOpen {
		t.Fatalf("State = %v, want Open", got)
	}
}

func TestCircuitBreakerTransitions(t *testing.T) {
	m, fakeClock := newTestRecoveryManager(RecoveryOptions{Backoff: fastTestBackoff, CircuitBreaker: breakerTestConfig})
	ctx := t.Context()

	for range 2 {
		d := m.HandleError(ctx, "team-a/web", "east", refusedError())
		if d.Circuit != CircuitClosed || d.Strategy != RecoveryStrategyReconnect {
			t.Fatalf("below threshold: got %+v", d)
		}
	}
	if m.State("east") != CircuitClosed || !m.Allow("east") {
		t.Fatal("circuit must stay closed below the threshold")
	}

	d := m.HandleError(ctx, "team-a/web", "east", refusedError())
	if d.Circuit != CircuitOpen || m.State("east") != CircuitOpen {
		t.Fatalf("at threshold: decision %+v, state %v, want Open", d, m.State("east"))
	}
	if d.After != 10*time.Second {
		t.Errorf("After = %v, want the open timeout 10s", d.After)
	}
	if m.Allow("east") {
		t.Error("Allow must be false while open")
	}
	if !m.Allow("west") || !m.Allow("") {
		t.Error("other targets must be unaffected")
	}

	fakeClock.Step(5 * time.Second)
	if m.Allow("east") {
		t.Error("Allow must be false before the open timeout")
	}
	// A call that was in flight fails: it waits for the remaining open time
	// and does not extend it.
	if d := m.HandleError(ctx, "team-a/db", "east", refusedError()); d.After != 5*time.Second {
		t.Errorf("in-flight failure: After = %v, want 5s", d.After)
	}

	fakeClock.Step(5*time.Second - time.Nanosecond)
	if m.State("east") != CircuitOpen {
		t.Fatal("circuit must be open until the timeout has fully elapsed")
	}
	fakeClock.Step(time.Nanosecond)
	if got := m.State("east"); got != CircuitHalfOpen {
		t.Fatalf("State = %v, want HalfOpen", got)
	}
	if !m.Allow("east") {
		t.Fatal("half-open must admit a probe")
	}
	if m.Allow("east") {
		t.Fatal("half-open must admit only HalfOpenProbes probes")
	}

	m.RecordSuccess("team-a/web", "east")
	if got := m.State("east"); got != CircuitClosed {
		t.Fatalf("State = %v, want Closed", got)
	}
	for range 3 {
		if !m.Allow("east") {
			t.Fatal("closed circuit must admit every call")
		}
	}
	if s := m.Snapshot().Targets[0]; s.ConsecutiveFailures != 0 || !s.OpenedAt.IsZero() || s.OpenTimeout != 10*time.Second {
		t.Errorf("closed target status = %+v", s)
	}
}

func TestCircuitBreakerReopensOnFailedProbe(t *testing.T) {
	m, fakeClock := newTestRecoveryManager(RecoveryOptions{Backoff: fastTestBackoff, CircuitBreaker: breakerTestConfig})
	openCircuit(t, m, "east")

	fakeClock.Step(breakerTestConfig.OpenTimeout)
	// Every failed probe doubles the open timeout up to MaxOpenTimeout.
	for _, wantTimeout := range []time.Duration{20 * time.Second, 40 * time.Second, 40 * time.Second} {
		if !m.Allow("east") {
			t.Fatal("expected a probe to be admitted")
		}
		d := m.HandleError(t.Context(), "probe", "east", refusedError())
		if d.Circuit != CircuitOpen || d.After != wantTimeout {
			t.Fatalf("failed probe: got %+v, want Open and retry after %v", d, wantTimeout)
		}
		if got := m.Snapshot().Targets[0].OpenTimeout; got != wantTimeout {
			t.Fatalf("OpenTimeout = %v, want %v", got, wantTimeout)
		}
		fakeClock.Step(wantTimeout - time.Nanosecond)
		if m.Allow("east") {
			t.Fatal("Allow must be false until the grown timeout elapses")
		}
		fakeClock.Step(time.Nanosecond)
		if m.State("east") != CircuitHalfOpen {
			t.Fatal("expected HalfOpen after the grown timeout")
		}
	}

	m.RecordSuccess("probe", "east")
	openCircuit(t, m, "east")
	if got := m.Snapshot().Targets[0].OpenTimeout; got != 10*time.Second {
		t.Errorf("OpenTimeout after closing = %v, want reset to 10s", got)
	}
}

func TestCircuitBreakerIgnoresNonConnectionErrors(t *testing.T) {
	m, fakeClock := newTestRecoveryManager(RecoveryOptions{Backoff: fastTestBackoff, CircuitBreaker: breakerTestConfig})
	nonConnection := []error{
		conflictError(),
		apierrors.NewForbidden(deploymentsResource, "web", errors.New("RBAC")),
		apierrors.NewInternalError(errors.New("etcd hiccup")),
		apierrors.NewTooManyRequests("slow down", 0),
		errors.New("something odd"),
	}
	for range 10 {
		for _, err := range nonConnection {
			m.HandleError(t.Context(), "team-a/web", "east", err)
		}
	}
	if m.State("east") != CircuitClosed || !m.Allow("east") {
		t.Fatal("non-connection errors must not open the circuit")
	}

	// They neither count nor reset the consecutive connection failures.
	m.HandleError(t.Context(), "a", "east", refusedError())
	m.HandleError(t.Context(), "a", "east", conflictError())
	m.HandleError(t.Context(), "a", "east", refusedError())
	if got := m.Snapshot().Targets[0].ConsecutiveFailures; got != 2 {
		t.Fatalf("ConsecutiveFailures = %d, want 2", got)
	}
	m.HandleError(t.Context(), "a", "east", context.DeadlineExceeded)
	if m.State("east") != CircuitOpen {
		t.Fatal("a timeout is a connection failure and must open the circuit")
	}

	// A half-open probe answered with a non-connection error gives its slot
	// back without changing the state.
	fakeClock.Step(breakerTestConfig.OpenTimeout)
	if !m.Allow("east") || m.Allow("east") {
		t.Fatal("expected exactly one probe slot")
	}
	m.HandleError(t.Context(), "a", "east", conflictError())
	if m.State("east") != CircuitHalfOpen {
		t.Fatal("non-connection error must not change a half-open circuit")
	}
	if !m.Allow("east") {
		t.Fatal("probe slot was not returned")
	}
}

func TestCircuitBreakerReclaimsLostProbe(t *testing.T) {
	m, fakeClock := newTestRecoveryManager(RecoveryOptions{CircuitBreaker: breakerTestConfig})
	openCircuit(t, m, "east")
	fakeClock.Step(breakerTestConfig.OpenTimeout)
	if !m.Allow("east") || m.Allow("east") {
		t.Fatal("expected exactly one probe slot")
	}
	fakeClock.Step(breakerTestConfig.OpenTimeout)
	if !m.Allow("east") {
		t.Fatal("a probe that never reported must be reclaimed after the open timeout")
	}
}

func TestCircuitBreakerSuccessWhileOpenCloses(t *testing.T) {
	m, _ := newTestRecoveryManager(RecoveryOptions{CircuitBreaker: breakerTestConfig})
	openCircuit(t, m, "east")
	m.RecordSuccess("in-flight", "east")
	if m.State("east") != CircuitClosed {
		t.Fatal("a successful call proves the target is reachable and must close the circuit")
	}
}
