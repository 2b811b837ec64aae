package tmc

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// MetricRecoveryAttempts counts the failures a queue handled, by component, error type and
// the strategy the retry rule chose.
const MetricRecoveryAttempts = "tmc_recovery_attempts_total"

// RecoveryStrategy says how a controller reacts to a failure of one key.
type RecoveryStrategy string

const (
	// RecoveryStrategyRetryWithBackoff retries the key with the fast per-key exponential
	// backoff, bounded overall by a token bucket.
	RecoveryStrategyRetryWithBackoff RecoveryStrategy = "RetryWithBackoff"
	// RecoveryStrategyReconnect is RetryWithBackoff for errors of the connection itself
	// (unreachable, timeout). client-go's reflectors re-list and re-watch on their own once
	// the server answers again, so retrying the key is all a controller has to do.
	RecoveryStrategyReconnect RecoveryStrategy = "Reconnect"
	// RecoveryStrategySlowRetry retries the key with the slow backoff: somebody (RBAC, a
	// CRD, a policy, the object) has to fix something first, and a slow retry picks the fix
	// up without a restart and without a hot loop.
	RecoveryStrategySlowRetry RecoveryStrategy = "SlowRetry"
	// RecoveryStrategyNoRetry drops the key until its object changes: retrying cannot help.
	RecoveryStrategyNoRetry RecoveryStrategy = "NoRetry"
)

// DefaultRecoveryPolicy returns the strategy for every TMCErrorType. Types missing from a
// policy use the strategy of TMCErrorTypeUnknown.
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

// BackoffConfig is a per-key exponential backoff: the delay doubles from BaseDelay after
// every consecutive failure of a key, up to MaxDelay.
type BackoffConfig struct {
	BaseDelay time.Duration
	MaxDelay  time.Duration
}

// The retry budget every TMC controller shares.
var (
	// DefaultBackoff serves RetryWithBackoff and Reconnect. Its cap keeps a key that failed
	// during an outage from waiting much longer than the outage: 250ms, 500ms, ... 30s.
	DefaultBackoff = BackoffConfig{BaseDelay: 250 * time.Millisecond, MaxDelay: 30 * time.Second}
	// DefaultSlowBackoff serves SlowRetry. It starts short because some of these errors
	// are transient — a kube-apiserver answers 403 for a moment after a restart, before its
	// RBAC caches are filled — and grows to one retry every five minutes.
	DefaultSlowBackoff = BackoffConfig{BaseDelay: 5 * time.Second, MaxDelay: 5 * time.Minute}
	// DefaultRetryQPS and DefaultRetryBurst bound the fast retries of one queue overall, so
	// that many keys failing together (a cluster gone) cannot flood the servers.
	DefaultRetryQPS   = 100.0
	DefaultRetryBurst = 1000
)

// RecoveryOptions configures the retry rule of a queue. The zero value is the default.
type RecoveryOptions struct {
	// Policy overrides DefaultRecoveryPolicy for the types it contains.
	Policy map[TMCErrorType]RecoveryStrategy
	// Backoff serves RetryWithBackoff and Reconnect; default DefaultBackoff.
	Backoff BackoffConfig
	// SlowBackoff serves SlowRetry; default DefaultSlowBackoff.
	SlowBackoff BackoffConfig
	// QPS and Burst bound the fast retries overall; default DefaultRetryQPS and
	// DefaultRetryBurst.
	QPS   float64
	Burst int
	// Registerer receives MetricRecoveryAttempts; nil means no metric.
	Registerer prometheus.Registerer
}

// Recovery is the retry rule derived from the TMC error classification: which strategy an
// error gets, and the rate limiters that turn a strategy into a delay.
type Recovery struct {
	policy   map[TMCErrorType]RecoveryStrategy
	opts     RecoveryOptions
	attempts *prometheus.CounterVec
}

// NewRecovery returns the retry rule configured by opts.
func NewRecovery(opts RecoveryOptions) *Recovery {
	policy := DefaultRecoveryPolicy()
	for errType, strategy := range opts.Policy {
		if strategy != "" {
			policy[errType] = strategy
		}
	}
	if opts.Backoff == (BackoffConfig{}) {
		opts.Backoff = DefaultBackoff
	}
	if opts.SlowBackoff == (BackoffConfig{}) {
		opts.SlowBackoff = DefaultSlowBackoff
	}
	if opts.QPS <= 0 {
		opts.QPS = DefaultRetryQPS
	}
	if opts.Burst <= 0 {
		opts.Burst = DefaultRetryBurst
	}
	r := &Recovery{policy: policy, opts: opts}
	if opts.Registerer != nil {
		r.attempts = registerAttempts(opts.Registerer)
	}
	return r
}

// registerAttempts registers the attempts counter, or returns the one already registered
// so that several queues share it. Any other error is logged and the counter is used
// unregistered: metrics must not stop a component from starting.
func registerAttempts(registerer prometheus.Registerer) *prometheus.CounterVec {
	attempts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricRecoveryAttempts,
		Help: "Number of failures handled by the retry rule, by error type and chosen strategy.",
	}, []string{"component", "error_type", "strategy"})
	err := registerer.Register(attempts)
	var alreadyRegistered prometheus.AlreadyRegisteredError
	switch {
	case err == nil:
	case errors.As(err, &alreadyRegistered):
		if existing, ok := alreadyRegistered.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing
		}
	default:
		klog.Background().Error(err, "Failed to register the recovery metric")
	}
	return attempts
}

// Observe counts one handled failure of component.
func (r *Recovery) Observe(component string, errType TMCErrorType, strategy RecoveryStrategy) {
	if r.attempts == nil {
		return
	}
	if !errType.IsKnown() {
		errType = TMCErrorTypeUnknown
	}
	r.attempts.WithLabelValues(component, string(errType), string(strategy)).Inc()
}

// StrategyFor returns the strategy for a classified error. An error marked not Retryable
// although its type normally is (context.Canceled, or a caller's explicit choice) is not
// retried.
func (r *Recovery) StrategyFor(err *TMCError) RecoveryStrategy {
	if err == nil {
		return RecoveryStrategyNoRetry
	}
	strategy, ok := r.policy[err.Type]
	if !ok {
		strategy = r.policy[TMCErrorTypeUnknown]
	}
	if !err.Retryable && err.Type.DefaultRetryable() &&
		(strategy == RecoveryStrategyRetryWithBackoff || strategy == RecoveryStrategyReconnect) {
		return RecoveryStrategyNoRetry
	}
	return strategy
}

// NewFastRateLimiter returns the limiter of RetryWithBackoff and Reconnect: the larger of
// the per-key exponential backoff and the overall token bucket.
func NewFastRateLimiter[K comparable](r *Recovery) workqueue.TypedRateLimiter[K] {
	return workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[K](r.opts.Backoff.BaseDelay, r.opts.Backoff.MaxDelay),
		&workqueue.TypedBucketRateLimiter[K]{Limiter: rate.NewLimiter(rate.Limit(r.opts.QPS), r.opts.Burst)},
	)
}

// NewSlowRateLimiter returns the limiter of SlowRetry.
func NewSlowRateLimiter[K comparable](r *Recovery) workqueue.TypedRateLimiter[K] {
	return workqueue.NewTypedItemExponentialFailureRateLimiter[K](r.opts.SlowBackoff.BaseDelay, r.opts.SlowBackoff.MaxDelay)
}
