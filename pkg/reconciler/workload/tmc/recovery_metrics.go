package tmc

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"
)

// recoveryMetrics holds the recovery collectors. A nil *recoveryMetrics
// records nothing.
type recoveryMetrics struct {
	attempts     *prometheus.CounterVec
	circuitState *prometheus.GaugeVec
	transitions  *prometheus.CounterVec
}

func newRecoveryMetrics(registerer prometheus.Registerer) *recoveryMetrics {
	return &recoveryMetrics{
		attempts: registerRecoveryCollector(registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tmc_recovery_attempts_total",
			Help: "Number of failures handled by the recovery manager, by error type and chosen strategy.",
		}, []string{"component", "error_type", "strategy"})),
		circuitState: registerRecoveryCollector(registerer, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tmc_circuit_breaker_state",
			Help: "State of the circuit breaker of a target: 0 closed, 1 half-open, 2 open.",
		}, []string{"component", "target"})),
		transitions: registerRecoveryCollector(registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tmc_circuit_breaker_transitions_total",
			Help: "Number of circuit breaker state transitions of a target.",
		}, []string{"component", "target", "from", "to"})),
	}
}

// registerRecoveryCollector registers c, or returns the collector already
// registered under the same descriptor so that several managers can share a
// registry. Any other registration error is logged and c is used
// unregistered, because metrics must not stop the syncer from starting.
func registerRecoveryCollector[C prometheus.Collector](registerer prometheus.Registerer, c C) C {
	err := registerer.Register(c)
	if err == nil {
		return c
	}
	var alreadyRegistered prometheus.AlreadyRegisteredError
	if errors.As(err, &alreadyRegistered) {
		if existing, ok := alreadyRegistered.ExistingCollector.(C); ok {
			return existing
		}
	}
	klog.Background().Error(err, "Failed to register recovery metric")
	return c
}

func (r *recoveryMetrics) observeAttempt(component string, errType TMCErrorType, strategy RecoveryStrategy) {
	if r == nil {
		return
	}
	r.attempts.WithLabelValues(component, string(metricErrorType(errType)), string(strategy)).Inc()
}

// observeTransition records a state change; from == to only sets the gauge.
func (r *recoveryMetrics) observeTransition(component, target string, from, to CircuitState) {
	if r == nil {
		return
	}
	r.circuitState.WithLabelValues(component, target).Set(float64(to))
	if from != to {
		r.transitions.WithLabelValues(component, target, from.String(), to.String()).Inc()
	}
}

func (r *recoveryMetrics) forgetTarget(component, target string) {
	if r == nil {
		return
	}
	r.circuitState.DeleteLabelValues(component, target)
	r.transitions.DeletePartialMatch(prometheus.Labels{"component": component, "target": target})
}
