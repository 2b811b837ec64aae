package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
)

// ReconcileFunc reconciles one key. A nil error with requeueAfter > 0 asks for the key
// again after that delay without counting as a failure (e.g. at an expiry time).
type ReconcileFunc[K comparable] func(ctx context.Context, key K) (requeueAfter time.Duration, err error)

// Decision is what the queue did with a failed key.
type Decision struct {
	// Strategy is the recovery strategy of the error's type.
	Strategy tmc.RecoveryStrategy
	// Retry reports whether the key was requeued, After after how long.
	Retry bool
	After time.Duration
}

// Options configures a Queue. Name is required.
type Options[K comparable] struct {
	// Name names the queue in workqueue metrics and, as "queue", in the log lines of its
	// keys. The controller's own name belongs in the logger of the ctx given to Run.
	Name string
	// Component is the TMC error component (default Name).
	Component string
	// MetricsProvider records the workqueue metrics (nil: none).
	MetricsProvider workqueue.MetricsProvider
	// Clock drives the queue's delays (nil: the real clock).
	Clock clock.WithTicker
	// Recovery configures the retry rule (zero value: the defaults).
	Recovery tmc.RecoveryOptions
	// LogValues returns the key/value pairs naming a key in logs (default "key", key).
	LogValues func(K) []any
	// OnError is called with every classified failure and the decision taken, e.g. to
	// count it, record an Event or report it in a status.
	OnError func(ctx context.Context, key K, err *tmc.TMCError, decision Decision)
	// OnSuccess is called when a key reconciled without error, with the requeueAfter the
	// reconcile asked for (0: none).
	OnSuccess func(ctx context.Context, key K, requeueAfter time.Duration)
}

// Queue runs a ReconcileFunc over the keys added to it.
type Queue[K comparable] struct {
	name      string
	component string
	reconcile ReconcileFunc[K]
	recovery  *tmc.Recovery
	queue     workqueue.TypedRateLimitingInterface[K]
	// fast is the queue's own rate limiter; slow serves SlowRetry beside it.
	fast      workqueue.TypedRateLimiter[K]
	slow      workqueue.TypedRateLimiter[K]
	logValues func(K) []any
	onError   func(context.Context, K, *tmc.TMCError, Decision)
	onSuccess func(context.Context, K, time.Duration)
}

// New returns a Queue that reconciles keys with reconcile.
func New[K comparable](reconcile ReconcileFunc[K], opts Options[K]) *Queue[K] {
	recovery := tmc.NewRecovery(opts.Recovery)
	q := &Queue[K]{
		name:      opts.Name,
		component: opts.Component,
		reconcile: reconcile,
		recovery:  recovery,
		fast:      tmc.NewFastRateLimiter[K](recovery),
		slow:      tmc.NewSlowRateLimiter[K](recovery),
		logValues: opts.LogValues,
		onError:   opts.OnError,
		onSuccess: opts.OnSuccess,
	}
	if q.component == "" {
		q.component = opts.Name
	}
	if q.logValues == nil {
		q.logValues = func(k K) []any { return []any{"key", fmt.Sprint(k)} }
	}
	config := workqueue.TypedRateLimitingQueueConfig[K]{Name: opts.Name, MetricsProvider: opts.MetricsProvider}
	if opts.Clock != nil {
		config.Clock = opts.Clock
	}
	q.queue = workqueue.NewTypedRateLimitingQueueWithConfig(q.fast, config)
	return q
}

// Add queues key now.
func (q *Queue[K]) Add(key K) { q.queue.Add(key) }

// AddAfter queues key after d.
func (q *Queue[K]) AddAfter(key K, d time.Duration) { q.queue.AddAfter(key, d) }

// Len returns the number of keys waiting to be processed now.
func (q *Queue[K]) Len() int { return q.queue.Len() }

// Failures returns the consecutive failures remembered for key.
func (q *Queue[K]) Failures(key K) int { return q.queue.NumRequeues(key) + q.slow.NumRequeues(key) }

// Drain removes every key that is ready now, without reconciling it, forgets its failures
// and returns the keys in queue order. Tests of event handlers use it to see what was
// queued; keys waiting for a delay stay.
func (q *Queue[K]) Drain() []K {
	var keys []K
	for q.queue.Len() > 0 {
		key, quit := q.queue.Get()
		if quit {
			break
		}
		q.forget(key)
		q.queue.Done(key)
		keys = append(keys, key)
	}
	return keys
}

// ShutDown stops the queue; workers return once their current key is done.
func (q *Queue[K]) ShutDown() { q.queue.ShutDown() }

// Run processes keys with the given number of workers (at least one) until ctx ends, then
// shuts the queue down and waits for the workers.
func (q *Queue[K]) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer q.queue.ShutDown()
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			wait.UntilWithContext(ctx, func(ctx context.Context) {
				for q.ProcessNext(ctx) {
				}
			}, time.Second)
		})
	}
	<-ctx.Done()
	q.queue.ShutDown()
	wg.Wait()
}

// ProcessNext reconciles the next key; it returns false once the queue is shut down.
func (q *Queue[K]) ProcessNext(ctx context.Context) bool {
	key, quit := q.queue.Get()
	if quit {
		return false
	}
	defer q.queue.Done(key)
	logger := klog.FromContext(ctx).WithValues("queue", q.name).WithValues(q.logValues(key)...)
	ctx = klog.NewContext(ctx, logger)

	requeueAfter, err := q.reconcile(ctx, key)
	switch {
	case err == nil:
		q.forget(key)
		if requeueAfter > 0 {
			logger.V(4).Info("Reconciling again later", "after", requeueAfter)
			q.queue.AddAfter(key, requeueAfter)
		}
		if q.onSuccess != nil {
			q.onSuccess(ctx, key, requeueAfter)
		}
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		// Shutting down: nothing failed.
		q.forget(key)
	default:
		q.handleError(ctx, key, err)
	}
	return true
}

// handleError applies the retry rule to a failure of key.
func (q *Queue[K]) handleError(ctx context.Context, key K, err error) {
	logger := klog.FromContext(ctx)
	tmcErr := tmc.Classify(err).WithComponent(q.component)
	decision := Decision{Strategy: q.recovery.StrategyFor(tmcErr), Retry: true}
	switch decision.Strategy {
	case tmc.RecoveryStrategyNoRetry:
		decision.Retry = false
		q.forget(key)
		logger.V(2).Info("Reconcile failed; not retrying until the object changes", "errorType", tmcErr.Type, "err", err)
	case tmc.RecoveryStrategySlowRetry:
		decision.After = max(q.slow.When(key), tmcErr.RetryAfter)
		q.queue.AddAfter(key, decision.After)
		logger.Error(err, "Reconcile failed and needs action; retrying slowly", "errorType", tmcErr.Type, "retryAfter", decision.After)
	default:
		decision.After = max(q.fast.When(key), tmcErr.RetryAfter)
		q.queue.AddAfter(key, decision.After)
		logger.V(2).Info("Reconcile failed; retrying", "errorType", tmcErr.Type, "retryAfter", decision.After, "err", err)
	}
	q.recovery.Observe(q.component, tmcErr.Type, decision.Strategy)
	if q.onError != nil {
		q.onError(ctx, key, tmcErr, decision)
	}
}

func (q *Queue[K]) forget(key K) {
	q.queue.Forget(key)
	q.slow.Forget(key)
}
