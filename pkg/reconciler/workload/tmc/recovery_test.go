package tmc

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRecoveryStrategyFor(t *testing.T) {
	r := NewRecovery(RecoveryOptions{Policy: map[TMCErrorType]RecoveryStrategy{TMCErrorTypeAdmissionDenied: RecoveryStrategyNoRetry}})
	tests := []struct {
		name string
		err  *TMCError
		want RecoveryStrategy
	}{
		{"nil", nil, RecoveryStrategyNoRetry},
		{"unreachable", NewTMCError(TMCErrorTypeClusterUnreachable, errors.New("x"), "", TMCErrorSeverityHigh), RecoveryStrategyReconnect},
		{"conflict", NewTMCError(TMCErrorTypeResourceConflict, errors.New("x"), "", TMCErrorSeverityLow), RecoveryStrategyRetryWithBackoff},
		{"forbidden", NewTMCError(TMCErrorTypeForbidden, errors.New("x"), "", TMCErrorSeverityHigh), RecoveryStrategySlowRetry},
		{"not found", NewTMCError(TMCErrorTypeNotFound, errors.New("x"), "", TMCErrorSeverityLow), RecoveryStrategyNoRetry},
		{"policy override", NewTMCError(TMCErrorTypeAdmissionDenied, errors.New("x"), "", TMCErrorSeverityMedium), RecoveryStrategyNoRetry},
		{"unknown type falls back to Unknown", NewTMCError(TMCErrorType("Strange"), errors.New("x"), "", TMCErrorSeverityLow), RecoveryStrategyRetryWithBackoff},
		{"canceled is not retried", Classify(context.Canceled), RecoveryStrategyNoRetry},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.StrategyFor(tc.err); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestRecoveryRateLimiters(t *testing.T) {
	r := NewRecovery(RecoveryOptions{})
	fast, slow := NewFastRateLimiter[string](r), NewSlowRateLimiter[string](r)
	for i, want := range []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second} {
		if got := fast.When("k"); got != want {
			t.Errorf("fast retry %d: %s, want %s", i+1, got, want)
		}
	}
	for range 20 {
		fast.When("k")
	}
	if got := fast.When("k"); got != DefaultBackoff.MaxDelay {
		t.Errorf("fast backoff capped at %s, want %s", got, DefaultBackoff.MaxDelay)
	}
	if got := slow.When("k"); got != 5*time.Second {
		t.Errorf("first slow retry %s, want 5s", got)
	}
	fast.Forget("k")
	if got := fast.NumRequeues("k"); got != 0 {
		t.Errorf("after Forget %d requeues remembered, want 0", got)
	}
}
