package tmc

import (
	"time"
)

// CircuitState is the state of a per-target circuit breaker. Its numeric value
// is exported as the tmc_circuit_breaker_state gauge.
type CircuitState int

const (
	// CircuitClosed lets every call through.
	CircuitClosed CircuitState = 0
	// CircuitHalfOpen lets a limited number of probe calls through.
	CircuitHalfOpen CircuitState = 1
	// CircuitOpen rejects calls until the open timeout has elapsed.
	CircuitOpen CircuitState = 2
)

// String returns "Closed", "HalfOpen" or "Open".
func (s CircuitState) String() string {
	switch s {
	case CircuitClosed:
		return "Closed"
	case CircuitHalfOpen:
		return "HalfOpen"
	case CircuitOpen:
		return "Open"
	default:
		return "Unknown"
	}
}

// CircuitBreakerConfig configures the per-target circuit breakers.
type CircuitBreakerConfig struct {
	// FailureThreshold is the number of consecutive connection failures
	// (ClusterUnreachable, Timeout) that opens a closed circuit. Default 5.
	FailureThreshold int
	// OpenTimeout is how long a circuit stays open before it admits probes.
	// Default 5s.
	OpenTimeout time.Duration
	// MaxOpenTimeout caps the open timeout, which doubles every time a probe
	// fails. Default 1m.
	MaxOpenTimeout time.Duration
	// HalfOpenProbes is the number of calls admitted at once while half-open.
	// Default 1.
	HalfOpenProbes int
}

// DefaultCircuitBreaker is used for unset CircuitBreakerConfig fields.
var DefaultCircuitBreaker = CircuitBreakerConfig{
	FailureThreshold: 5,
	OpenTimeout:      5 * time.Second,
	MaxOpenTimeout:   time.Minute,
	HalfOpenProbes:   1,
}

func (c CircuitBreakerConfig) withDefaults() CircuitBreakerConfig {
	if c.FailureThreshold <= 0 {
		c.FailureThreshold = DefaultCircuitBreaker.FailureThreshold
	}
	if c.OpenTimeout <= 0 {
		c.OpenTimeout = DefaultCircuitBreaker.OpenTimeout
	}
	if c.MaxOpenTimeout <= 0 {
		c.MaxOpenTimeout = DefaultCircuitBreaker.MaxOpenTimeout
	}
	if c.MaxOpenTimeout < c.OpenTimeout {
		c.MaxOpenTimeout = c.OpenTimeout
	}
	if c.HalfOpenProbes <= 0 {
		c.HalfOpenProbes = DefaultCircuitBreaker.HalfOpenProbes
	}
	return c
}

// circuitBreaker tracks the health of one target. It is not safe for
// concurrent use; RecoveryManager serialises access.
type circuitBreaker struct {
	config CircuitBreakerConfig
	// onTransition is called, under the caller's lock, for every state change.
	onTransition func(from, to CircuitState)

	state               CircuitState
	consecutiveFailures int
	openedAt            time.Time
	openTimeout         time.Duration
	probesInFlight      int
	lastProbeAt         time.Time

	lastFailureAt      time.Time
	lastErrorType      TMCErrorType
	lastError          string
	lastReconnectError string
}

func newCircuitBreaker(config CircuitBreakerConfig, onTransition func(from, to CircuitState)) *circuitBreaker {
	return &circuitBreaker{config: config, onTransition: onTransition, openTimeout: config.OpenTimeout}
}

// refresh moves an open circuit whose timeout has elapsed to half-open.
func (b *circuitBreaker) refresh(now time.Time) {
	if b.state == CircuitOpen && !now.Before(b.openedAt.Add(b.openTimeout)) {
		b.probesInFlight = 0
		b.setState(CircuitHalfOpen)
	}
}

// allow reports whether a call may go ahead. While half-open it hands out at
// most HalfOpenProbes probe slots; a slot whose outcome was never reported is
// reclaimed after the open timeout so that a lost probe cannot wedge the
// circuit.
func (b *circuitBreaker) allow(now time.Time) bool {
	b.refresh(now)
	switch b.state {
	case CircuitClosed:
		return true
	case CircuitHalfOpen:
		if b.probesInFlight >= b.config.HalfOpenProbes && !now.Before(b.lastProbeAt.Add(b.openTimeout)) {
			b.probesInFlight = 0
		}
		if b.probesInFlight < b.config.HalfOpenProbes {
			b.probesInFlight++
			b.lastProbeAt = now
			return true
		}
		return false
	default:
		return false
	}
}

// retryIn returns how long until an open circuit admits probes.
func (b *circuitBreaker) retryIn(now time.Time) time.Duration {
	if b.state != CircuitOpen {
		return 0
	}
	if d := b.openedAt.Add(b.openTimeout).Sub(now); d > 0 {
		return d
	}
	return 0
}

// recordFailure accounts for a failed call. Only connection failures count
// towards opening the circuit; any other failure only returns a half-open
// probe slot, because the target answered but the request itself was bad.
func (b *circuitBreaker) recordFailure(now time.Time, tmcErr *TMCError) {
	b.refresh(now)
	if !tmcErr.Type.IsConnectionFailure() {
		if b.state == CircuitHalfOpen && b.probesInFlight > 0 {
			b.probesInFlight--
		}
		return
	}

	b.lastFailureAt = now
	b.lastErrorType = tmcErr.Type
	b.lastError = tmcErr.Error()
	switch b.state {
	case CircuitClosed:
		b.consecutiveFailures++
		if b.consecutiveFailures >= b.config.FailureThreshold {
			b.openedAt = now
			b.openTimeout = b.config.OpenTimeout
			b.setState(CircuitOpen)
		}
	case CircuitHalfOpen:
		// The probe failed: the target is still down. Back off harder.
		b.consecutiveFailures++
		b.openedAt = now
		b.openTimeout = min(2*b.openTimeout, b.config.MaxOpenTimeout)
		b.probesInFlight = 0
		b.setState(CircuitOpen)
	case CircuitOpen:
		// Calls that were in flight when the circuit opened; the timer is
		// not extended so that probing starts on schedule.
		b.consecutiveFailures++
	}
}

// recordSuccess closes the circuit: any successful call proves the target is
// reachable again, whether it was a half-open probe or a call that was
// already in flight when the circuit opened.
func (b *circuitBreaker) recordSuccess(now time.Time) {
	b.refresh(now)
	b.consecutiveFailures = 0
	b.probesInFlight = 0
	if b.state == CircuitClosed {
		return
	}
	b.openedAt = time.Time{}
	b.openTimeout = b.config.OpenTimeout
	b.setState(CircuitClosed)
}

func (b *circuitBreaker) setState(to CircuitState) {
	from := b.state
	if from == to {
		return
	}
	b.state = to
	if b.onTransition != nil {
		b.onTransition(from, to)
	}
}
