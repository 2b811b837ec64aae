package tmc

import (
	"math"
	"time"
)

// BackoffConfig describes a capped exponential backoff with jitter.
//
// The delay before retry n (n = 0 for the first retry) is
//
//	d = min(BaseDelay * Factor^n, MaxDelay)
//	delay = d * (1 - Jitter*r), r uniformly drawn from [0, 1)
//
// Jitter only ever shortens a delay, so MaxDelay is a hard cap and retries
// that have reached the cap are still spread out instead of arriving at the
// recovered apiserver together.
type BackoffConfig struct {
	// BaseDelay is the delay before the first retry.
	BaseDelay time.Duration
	// Factor multiplies the delay after every failure. Values below 1 are
	// treated as 1 (a constant delay).
	Factor float64
	// MaxDelay caps the delay.
	MaxDelay time.Duration
	// Jitter is the fraction of the delay that is randomised, in [0, 1].
	// Zero disables jitter.
	Jitter float64
}

// DefaultBackoff is used for the RetryWithBackoff and Reconnect strategies.
// Its cap keeps a key that failed during an outage from waiting much longer
// than the outage itself.
var DefaultBackoff = BackoffConfig{
	BaseDelay: 250 * time.Millisecond,
	Factor:    2,
	MaxDelay:  30 * time.Second,
	Jitter:    0.2,
}

// DefaultSlowBackoff is used for the SlowRetry strategy: errors that usually
// need a human to fix RBAC, a CRD, a policy or the object. It starts short
// because some of them are transient — a kube-apiserver answers 403 for a
// fraction of a second after a restart, before its RBAC caches are filled —
// and then grows quickly to a retry every few minutes, which picks a fix up
// without a restart and without hammering the server: 5s, 15s, 45s, 2m15s, 5m.
var DefaultSlowBackoff = BackoffConfig{
	BaseDelay: 5 * time.Second,
	Factor:    3,
	MaxDelay:  5 * time.Minute,
	Jitter:    0.2,
}

// withDefaults returns c with its unset fields taken from def. A zero-value
// config is replaced by def entirely; otherwise a zero Jitter is kept, since
// it is how jitter is disabled.
func (c BackoffConfig) withDefaults(def BackoffConfig) BackoffConfig {
	if c == (BackoffConfig{}) {
		return def
	}
	if c.BaseDelay <= 0 {
		c.BaseDelay = def.BaseDelay
	}
	if c.Factor == 0 {
		c.Factor = def.Factor
	}
	if c.Factor < 1 {
		c.Factor = 1
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = def.MaxDelay
	}
	if c.MaxDelay < c.BaseDelay {
		c.MaxDelay = c.BaseDelay
	}
	c.Jitter = math.Min(math.Max(c.Jitter, 0), 1)
	return c
}

// Delay returns the delay before retry number attempt (0-based) for a random
// value r in [0, 1). Out-of-range inputs are clamped.
func (c BackoffConfig) Delay(attempt int, r float64) time.Duration {
	if attempt < 0 {
		attempt = 0
	}
	factor := math.Max(c.Factor, 1)
	d := float64(c.BaseDelay) * math.Pow(factor, float64(attempt))
	if c.MaxDelay > 0 && (math.IsInf(d, 0) || math.IsNaN(d) || d > float64(c.MaxDelay)) {
		d = float64(c.MaxDelay)
	}
	jitter := math.Min(math.Max(c.Jitter, 0), 1)
	r = math.Min(math.Max(r, 0), 1)
	d *= 1 - jitter*r
	if d < 0 || math.IsNaN(d) {
		return 0
	}
	if d >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}

// keyedBackoff counts consecutive failures per key. It is not safe for
// concurrent use; RecoveryManager serialises access.
type keyedBackoff struct {
	config   BackoffConfig
	failures map[string]int
}

func newKeyedBackoff(config BackoffConfig) *keyedBackoff {
	return &keyedBackoff{config: config, failures: map[string]int{}}
}

// next records a failure of key and returns the delay before its retry.
func (b *keyedBackoff) next(key string, r float64) time.Duration {
	attempt := b.failures[key]
	if attempt < math.MaxInt32 {
		b.failures[key] = attempt + 1
	}
	return b.config.Delay(attempt, r)
}

func (b *keyedBackoff) forget(key string) {
	delete(b.failures, key)
}
