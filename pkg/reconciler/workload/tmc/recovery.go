package tmc

import (
	"context"
	"errors"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// RecoveryStrategy says how a controller should react to a failure.
type RecoveryStrategy string

const (
	// RecoveryStrategyRetryWithBackoff retries the key with exponential backoff.
	RecoveryStrategyRetryWithBackoff RecoveryStrategy = "RetryWithBackoff"
	// RecoveryStrategySlowRetry retries the key every few minutes: something
	// (RBAC, a CRD, a policy, the object) must be fixed by a human first, and a
	// slow retry picks the fix up without a restart.
	RecoveryStrategySlowRetry RecoveryStrategy = "SlowRetry"
	// RecoveryStrategyReconnect retries the key with exponential backoff and
	// feeds the target's circuit breaker: the connection itself is in
	// trouble. Reconnect hooks run when the circuit closes again.
	RecoveryStrategyReconnect RecoveryStrategy = "Reconnect"
	// RecoveryStrategyNoRetry drops the key: retrying cannot help.
	RecoveryStrategyNoRetry RecoveryStrategy = "NoRetry"
)

// DefaultRecoveryPolicy returns the strategy for every TMCErrorType. Types
// missing from a policy use the strategy of TMCErrorTypeUnknown.
func DefaultRecoveryPolicy() map[TMCErrorType]RecoveryStrategy {
	return map[TMCErrorType]RecoveryStrategy{
		TMCErrorTypeClusterUnreachable: RecoveryStrategyReconnect,
		TMCErrorTypeTimeout:            RecoveryStrategyReconnect,
		TMCErrorTypeResourceConflict:   RecoveryStrategyRetryWithBackoff,
		TMCErrorTypeRateLimited:        RecoveryStrategyRetryWithBackoff,
		TMCErrorTypeQuotaExceeded:      RecoveryStrategyRetryWithBackoff,
		TMCErrorTypeUnknown:            RecoveryStrategyRetryWithBackoff,
		TMCErrorTypeForbidden:          RecoveryStrategySlowRetry,
		TMCErrorTypeUnauthorized:       RecoveryStrategySlowRetry,
		TMCErrorTypeAPINotAvailable:    RecoveryStrategySlowRetry,
		TMCErrorTypeAdmissionDenied:    RecoveryStrategySlowRetry,
		TMCErrorTypeInvalidResource:    RecoveryStrategySlowRetry,
		TMCErrorTypeNamespaceCollision: RecoveryStrategySlowRetry,
		TMCErrorTypeNotFound:           RecoveryStrategyNoRetry,
	}
}

// RecoveryOptions configures a RecoveryManager. The zero value is usable.
type RecoveryOptions struct {
	// Component names the user of the manager, e.g. "syncer"; it is the
	// component label of the metrics.
	Component string
	// Policy overrides DefaultRecoveryPolicy for the types it contains. An
	// unrecognised strategy behaves like RetryWithBackoff.
	Policy map[TMCErrorType]RecoveryStrategy
	// Backoff is used by RetryWithBackoff and Reconnect. Default DefaultBackoff.
	Backoff BackoffConfig
	// SlowBackoff is used by SlowRetry. Default DefaultSlowBackoff.
	SlowBackoff BackoffConfig
	// CircuitBreaker configures the per-target breakers.
	CircuitBreaker CircuitBreakerConfig
	// HookTimeout bounds every reconnect hook call. Default 30s.
	HookTimeout time.Duration
	// Clock defaults to the real clock.
	Clock clock.PassiveClock
	// Rand returns a value in [0, 1) for jitter; it is called under a lock.
	// Default math/rand/v2.Float64.
	Rand func() float64
	// Registerer receives the recovery metrics; nil means no metrics.
	Registerer prometheus.Registerer
}

// RecoveryDecision is what a controller should do after a failure.
type RecoveryDecision struct {
	// Strategy is the strategy that applied.
	Strategy RecoveryStrategy
	// Retry reports whether the key should be requeued.
	Retry bool
	// After is how long to wait before the retry: the backoff for the key,
	// but at least the server's Retry-After and the time until the target's
	// open circuit admits probes.
	After time.Duration
	// Err is the classified error.
	Err *TMCError
	// Circuit is the state of the target's circuit breaker after the failure.
	Circuit CircuitState
}

// ReconnectFunc is run when the connection to a target has come back, e.g. to
// re-list or restart informers.
type ReconnectFunc func(ctx context.Context) error

// RecoveryManager decides how to recover from failures: it classifies errors,
// keeps a backoff per key and a circuit breaker per target, and runs reconnect
// hooks when a target becomes reachable again. It is safe for concurrent use.
//
// Keys are whatever the caller retries (usually workqueue keys); call
// RecordSuccess or Forget when a key succeeds or goes away, otherwise its
// backoff is remembered. Targets name what a connection goes to (a cluster
// name, "upstream", "downstream"); an empty target bypasses the breakers.
type RecoveryManager struct {
	component   string
	policy      map[TMCErrorType]RecoveryStrategy
	breakerCfg  CircuitBreakerConfig
	hookTimeout time.Duration
	clock       clock.PassiveClock
	rand        func() float64
	metrics     *recoveryMetrics

	mu             sync.Mutex
	fast           *keyedBackoff
	slow           *keyedBackoff
	breakers       map[string]*circuitBreaker
	failuresByType map[TMCErrorType]int64
	hooks          map[string][]ReconnectFunc
}

// NewRecoveryManager returns a RecoveryManager configured by opts.
func NewRecoveryManager(opts RecoveryOptions) *RecoveryManager {
	policy := DefaultRecoveryPolicy()
	for errType, strategy := range opts.Policy {
		if strategy != "" {
			policy[errType] = strategy
		}
	}
	m := &RecoveryManager{
		component:      opts.Component,
		policy:         policy,
		breakerCfg:     opts.CircuitBreaker.withDefaults(),
		hookTimeout:    opts.HookTimeout,
		clock:          opts.Clock,
		rand:           opts.Rand,
		fast:           newKeyedBackoff(opts.Backoff.withDefaults(DefaultBackoff)),
		slow:           newKeyedBackoff(opts.SlowBackoff.withDefaults(DefaultSlowBackoff)),
		breakers:       map[string]*circuitBreaker{},
		failuresByType: map[TMCErrorType]int64{},
		hooks:          map[string][]ReconnectFunc{},
	}
	if m.hookTimeout <= 0 {
		m.hookTimeout = 30 * time.Second
	}
	if m.clock == nil {
		m.clock = clock.RealClock{}
	}
	if m.rand == nil {
		m.rand = rand.Float64
	}
	if opts.Registerer != nil {
		m.metrics = newRecoveryMetrics(opts.Registerer)
	}
	return m
}

// StrategyFor returns the strategy the policy assigns to errType.
func (m *RecoveryManager) StrategyFor(errType TMCErrorType) RecoveryStrategy {
	if strategy, ok := m.policy[errType]; ok {
		return strategy
	}
	return m.policy[TMCErrorTypeUnknown]
}

// HandleError classifies err, records it against key and target and returns
// what to do. The strategy comes from the policy for the error's type, with
// one exception: an error marked not Retryable although its type normally is
// (context.Canceled, or a caller's explicit choice) gets NoRetry instead of
// RetryWithBackoff or Reconnect. A nil err yields a NoRetry decision and
// changes nothing.
func (m *RecoveryManager) HandleError(ctx context.Context, key, target string, err error) RecoveryDecision {
	tmcErr := Classify(err)
	if tmcErr == nil {
		return RecoveryDecision{Strategy: RecoveryStrategyNoRetry}
	}
	strategy := m.StrategyFor(tmcErr.Type)
	if !tmcErr.Retryable && tmcErr.Type.DefaultRetryable() &&
		(strategy == RecoveryStrategyRetryWithBackoff || strategy == RecoveryStrategyReconnect) {
		strategy = RecoveryStrategyNoRetry
	}

	m.mu.Lock()
	now := m.clock.Now()
	m.failuresByType[metricErrorType(tmcErr.Type)]++

	var delay time.Duration
	switch strategy {
	case RecoveryStrategyNoRetry:
		m.fast.forget(key)
		m.slow.forget(key)
	case RecoveryStrategySlowRetry:
		delay = m.slow.next(key, m.rand())
	default:
		delay = m.fast.next(key, m.rand())
	}

	circuit := CircuitClosed
	if target != "" {
		breaker := m.breakerLocked(target)
		breaker.recordFailure(now, tmcErr)
		circuit = breaker.state
		if strategy != RecoveryStrategyNoRetry {
			delay = max(delay, breaker.retryIn(now))
		}
	}
	m.mu.Unlock()

	retry := strategy != RecoveryStrategyNoRetry
	if retry {
		delay = max(delay, tmcErr.RetryAfter)
	} else {
		delay = 0
	}
	m.metrics.observeAttempt(m.component, tmcErr.Type, strategy)

	if ctx == nil {
		ctx = context.Background()
	}
	klog.FromContext(ctx).V(4).Info("Decided how to recover from error",
		"key", key, "target", target, "errorType", tmcErr.Type, "strategy", strategy,
		"retry", retry, "after", delay, "circuit", circuit.String())

	return RecoveryDecision{Strategy: strategy, Retry: retry, After: delay, Err: tmcErr, Circuit: circuit}
}

// RecordSuccess forgets the backoff of key and tells the breaker of target
// that a call succeeded. If that closes an open or half-open circuit, the
// reconnect hooks of target run synchronously on this goroutine, outside any
// lock, each bounded by HookTimeout; hooks that do long work should hand it
// off (e.g. enqueue keys).
func (m *RecoveryManager) RecordSuccess(key, target string) {
	m.mu.Lock()
	m.fast.forget(key)
	m.slow.forget(key)
	breaker, ok := m.breakers[target]
	if target == "" || !ok {
		m.mu.Unlock()
		return
	}
	before := breaker.state
	breaker.recordSuccess(m.clock.Now())
	var hooks []ReconnectFunc
	if before != CircuitClosed && breaker.state == CircuitClosed {
		hooks = append(hooks, m.hooks[target]...)
		hooks = append(hooks, m.hooks[""]...)
	}
	m.mu.Unlock()

	if len(hooks) > 0 {
		m.runReconnectHooks(target, hooks)
	}
}

// Forget drops the backoff state of key, e.g. when its object was deleted.
func (m *RecoveryManager) Forget(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fast.forget(key)
	m.slow.forget(key)
}

// Failures returns the number of consecutive failures recorded for key.
func (m *RecoveryManager) Failures(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fast.failures[key] + m.slow.failures[key]
}

// Allow reports whether a call to target may go ahead. It is false while the
// target's circuit is open, and while half-open once the probe slots are
// taken. Callers that get true must report the outcome with HandleError or
// RecordSuccess. An empty or never-failed target is always allowed.
func (m *RecoveryManager) Allow(target string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	breaker, ok := m.breakers[target]
	if target == "" || !ok {
		return true
	}
	return breaker.allow(m.clock.Now())
}

// State returns the circuit state of target.
func (m *RecoveryManager) State(target string) CircuitState {
	m.mu.Lock()
	defer m.mu.Unlock()
	breaker, ok := m.breakers[target]
	if !ok {
		return CircuitClosed
	}
	breaker.refresh(m.clock.Now())
	return breaker.state
}

// OnReconnect registers fn to run each time the circuit of target goes from
// open or half-open back to closed. An empty target registers fn for every
// target. A nil fn is ignored.
func (m *RecoveryManager) OnReconnect(target string, fn func(ctx context.Context) error) {
	if fn == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hooks[target] = append(m.hooks[target], fn)
}

// RemoveTarget drops the breaker, hooks and metric series of target, e.g.
// when its SyncTarget is deleted.
func (m *RecoveryManager) RemoveTarget(target string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.breakers, target)
	if target != "" {
		delete(m.hooks, target)
	}
	m.metrics.forgetTarget(m.component, target)
}

// TargetRecoveryStatus is the observable state of one target's breaker.
type TargetRecoveryStatus struct {
	Target              string
	State               CircuitState
	ConsecutiveFailures int
	// OpenedAt is when the circuit last opened; zero while closed.
	OpenedAt time.Time
	// OpenTimeout is how long the circuit stays open before probing.
	OpenTimeout        time.Duration
	LastFailureTime    time.Time
	LastErrorType      TMCErrorType
	LastError          string
	LastReconnectError string
}

// RecoverySnapshot is the observable state of a RecoveryManager, for status
// reporting and health checks.
type RecoverySnapshot struct {
	Component string
	// Targets is sorted by target name.
	Targets []TargetRecoveryStatus
	// FailuresByType counts every error handled, by type.
	FailuresByType map[TMCErrorType]int64
	// BackingOffKeys is the number of keys with a recorded failure.
	BackingOffKeys int
}

// Snapshot returns a copy of the current state.
func (m *RecoveryManager) Snapshot() RecoverySnapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	snapshot := RecoverySnapshot{
		Component:      m.component,
		Targets:        make([]TargetRecoveryStatus, 0, len(m.breakers)),
		FailuresByType: make(map[TMCErrorType]int64, len(m.failuresByType)),
	}
	for errType, count := range m.failuresByType {
		snapshot.FailuresByType[errType] = count
	}
	keys := map[string]struct{}{}
	for key := range m.fast.failures {
		keys[key] = struct{}{}
	}
	for key := range m.slow.failures {
		keys[key] = struct{}{}
	}
	snapshot.BackingOffKeys = len(keys)
	for target, breaker := range m.breakers {
		breaker.refresh(now)
		snapshot.Targets = append(snapshot.Targets, TargetRecoveryStatus{
			Target:              target,
			State:               breaker.state,
			ConsecutiveFailures: breaker.consecutiveFailures,
			OpenedAt:            breaker.openedAt,
			OpenTimeout:         breaker.openTimeout,
			LastFailureTime:     breaker.lastFailureAt,
			LastErrorType:       breaker.lastErrorType,
			LastError:           breaker.lastError,
			LastReconnectError:  breaker.lastReconnectError,
		})
	}
	sort.Slice(snapshot.Targets, func(i, j int) bool { return snapshot.Targets[i].Target < snapshot.Targets[j].Target })
	return snapshot
}

// breakerLocked returns the breaker of target, creating it. m.mu must be held.
func (m *RecoveryManager) breakerLocked(target string) *circuitBreaker {
	if breaker, ok := m.breakers[target]; ok {
		return breaker
	}
	breaker := newCircuitBreaker(m.breakerCfg, func(from, to CircuitState) {
		m.metrics.observeTransition(m.component, target, from, to)
	})
	m.breakers[target] = breaker
	m.metrics.observeTransition(m.component, target, CircuitClosed, CircuitClosed)
	return breaker
}

func (m *RecoveryManager) runReconnectHooks(target string, hooks []ReconnectFunc) {
	logger := klog.Background().WithValues("component", m.component, "target", target)
	var errs []error
	for _, hook := range hooks {
		ctx, cancel := context.WithTimeout(klog.NewContext(context.Background(), logger), m.hookTimeout)
		if err := hook(ctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}

	lastErr := ""
	if err := errors.Join(errs...); err != nil {
		// Nobody is waiting for the hooks, so logging is the only way to
		// surface the failure; it is also kept for Snapshot.
		logger.Error(err, "Failed to run reconnect hooks")
		lastErr = err.Error()
	} else {
		logger.V(2).Info("Ran reconnect hooks", "count", len(hooks))
	}
	m.mu.Lock()
	if breaker, ok := m.breakers[target]; ok {
		breaker.lastReconnectError = lastErr
	}
	m.mu.Unlock()
}

// metricErrorType keeps the error_type label bounded: unrecognised types
// count as Unknown.
func metricErrorType(t TMCErrorType) TMCErrorType {
	if t.IsKnown() {
		return t
	}
	return TMCErrorTypeUnknown
}
