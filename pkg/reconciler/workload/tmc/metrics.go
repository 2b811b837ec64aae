/*
Copyright The TMC Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package tmc

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/util/workqueue"
)

// ComponentLabel is the constant label that TMCMetrics adds to every metric
// vector registered through it, carrying the component name given to
// NewTMCMetrics. It lets several TMC binaries (or several components in one
// binary, each with its own TMCMetrics) be told apart after their series are
// merged by Prometheus. Callers must not use it as one of their own labels.
const ComponentLabel = "component"

// DefaultLatencyBuckets returns the histogram buckets used when
// RegisterHistogramVec is called without explicit buckets. They span 1ms to
// 60s, which covers a single API round trip as well as a sync that waits for
// a slow or reconnecting cluster. A fresh slice is returned on every call so
// callers may modify it.
func DefaultLatencyBuckets() []float64 {
	return []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
}

// Workqueue metric names, identical to the ones Kubernetes controllers export
// through component-base so existing dashboards and alerts work unchanged.
const (
	WorkqueueDepthMetric                   = "workqueue_depth"
	WorkqueueAddsMetric                    = "workqueue_adds_total"
	WorkqueueQueueDurationMetric           = "workqueue_queue_duration_seconds"
	WorkqueueWorkDurationMetric            = "workqueue_work_duration_seconds"
	WorkqueueUnfinishedWorkMetric          = "workqueue_unfinished_work_seconds"
	WorkqueueLongestRunningProcessorMetric = "workqueue_longest_running_processor_seconds"
	WorkqueueRetriesMetric                 = "workqueue_retries_total"
)

// metricKind names the type of a registered vector, used to detect a name
// being reused for a different type.
type metricKind string

const (
	metricKindCounter   metricKind = "counter"
	metricKindGauge     metricKind = "gauge"
	metricKindHistogram metricKind = "histogram"
)

// seriesDeleter is the subset of *prometheus.MetricVec used to bound
// cardinality; every vector type embeds it.
type seriesDeleter interface {
	Delete(prometheus.Labels) bool
	DeletePartialMatch(prometheus.Labels) int
}

// registeredVec records how a metric was registered so a second registration
// under the same name can be recognised as identical or conflicting.
type registeredVec struct {
	kind    metricKind
	help    string
	labels  []string
	buckets []float64
	vec     prometheus.Collector
	deleter seriesDeleter
}

// TMCMetrics owns a private Prometheus registry for one TMC component and the
// metric vectors registered into it. Using a private registry (instead of
// prometheus.DefaultRegisterer) keeps tests and multiple components in one
// process independent: two TMCMetrics may register the same metric name.
//
// Every vector registered through the Register* methods carries the constant
// label ComponentLabel=<component>. Collectors registered directly through
// Registerer() are left untouched.
//
// # Metric names
//
// A TMC binary's /metrics holds two kinds of series, told apart by prefix.
//
// TMC's own series, always with a component label:
//   - syncer_* — the workload-syncer's data path (syncer_resources_synced_total,
//     syncer_sync_duration_seconds, ...). The names are the PRD's and
//     dashboards use them, so they keep the prefix of the binary.
//   - tmc_* — everything else TMC defines: the tmc-controller's controllers
//     (tmc_placement_decisions_total, tmc_synctarget_ready, ...) and the
//     infrastructure of this package shared by both binaries
//     (tmc_component_health and the recovery series).
//
// New metrics take tmc_, or syncer_ inside the syncer's data path; no other
// prefix is introduced.
//
// Kubernetes' standard series, under their upstream names, so the dashboards
// and alerts operators already have for Kubernetes controllers work
// unchanged:
//   - workqueue_* — from WorkqueueMetricsProvider, in this registry (so they
//     carry the component label too).
//   - rest_client_* and leader_election_* — recorded by client-go into
//     component-base's process-wide legacyregistry, served by Handler next
//     to this registry. They are the process's, not one component's, and
//     have no component label.
//   - go_*, process_* and promhttp_* — the Go runtime, the process and the
//     handler itself.
//
// All methods are safe for concurrent use.
type TMCMetrics struct {
	component string
	registry  *prometheus.Registry

	mu   sync.RWMutex
	vecs map[string]*registeredVec

	workqueueProvider *workqueueMetricsProvider

	handlerOnce sync.Once
	handler     http.Handler
}

// NewTMCMetrics returns a TMCMetrics for the named component whose registry
// already contains the Go runtime and process collectors and the workqueue
// metric vectors served by WorkqueueMetricsProvider.
func NewTMCMetrics(component string) *TMCMetrics {
	m := &TMCMetrics{
		component: component,
		registry:  prometheus.NewRegistry(),
		vecs:      map[string]*registeredVec{},
	}
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.workqueueProvider = newWorkqueueMetricsProvider(m)
	return m
}

// Component returns the component name given to NewTMCMetrics.
func (m *TMCMetrics) Component() string { return m.component }

// Registry returns the underlying registry, e.g. to gather metrics in tests.
// It does not hold the client-go families that Handler adds.
func (m *TMCMetrics) Registry() *prometheus.Registry { return m.registry }

// Registerer returns the registry as a prometheus.Registerer so other
// packages can register their own collectors next to the TMC metrics.
// Collectors registered this way do not get the ComponentLabel and are not
// visible to the getters or the Delete* methods.
func (m *TMCMetrics) Registerer() prometheus.Registerer { return m.registry }

// Handler returns an http.Handler serving, in the Prometheus exposition
// format, the registry together with client-go's rest_client_* and
// leader_election_* families (see the TMCMetrics doc). A collector that fails
// does not fail the whole scrape: the remaining metrics are still served and
// the failure is counted in promhttp_metric_handler_errors_total.
func (m *TMCMetrics) Handler() http.Handler {
	m.handlerOnce.Do(func() {
		m.handler = promhttp.HandlerFor(prometheus.Gatherers{m.registry, clientGoGatherer}, promhttp.HandlerOpts{
			ErrorHandling: promhttp.ContinueOnError,
			Registry:      m.registry,
		})
	})
	return m.handler
}

// RegisterCounterVec registers a counter vector with the given name, help and
// variable labels. Registering the same name again with the same help and
// labels returns the existing vector; a different type, help or label list
// (order matters) is an error.
func (m *TMCMetrics) RegisterCounterVec(name, help string, labels []string) (*prometheus.CounterVec, error) {
	entry, err := m.register(metricKindCounter, name, help, labels, nil, func(constLabels prometheus.Labels) (prometheus.Collector, seriesDeleter) {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: constLabels}, labels)
		return v, v
	})
	if err != nil {
		return nil, err
	}
	return entry.vec.(*prometheus.CounterVec), nil
}

// RegisterGaugeVec registers a gauge vector; see RegisterCounterVec for the
// idempotency rules.
func (m *TMCMetrics) RegisterGaugeVec(name, help string, labels []string) (*prometheus.GaugeVec, error) {
	entry, err := m.register(metricKindGauge, name, help, labels, nil, func(constLabels prometheus.Labels) (prometheus.Collector, seriesDeleter) {
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: constLabels}, labels)
		return v, v
	})
	if err != nil {
		return nil, err
	}
	return entry.vec.(*prometheus.GaugeVec), nil
}

// RegisterHistogramVec registers a histogram vector. Without buckets,
// DefaultLatencyBuckets is used; explicit buckets must be strictly
// increasing. See RegisterCounterVec for the idempotency rules; the buckets
// are part of the identity, so re-registering with other buckets is an error.
func (m *TMCMetrics) RegisterHistogramVec(name, help string, labels []string, buckets ...float64) (*prometheus.HistogramVec, error) {
	if len(buckets) == 0 {
		buckets = DefaultLatencyBuckets()
	} else {
		buckets = slices.Clone(buckets)
	}
	for i := 1; i < len(buckets); i++ {
		if !(buckets[i] > buckets[i-1]) {
			return nil, fmt.Errorf("failed to register metric %q: histogram buckets must be strictly increasing, got %v", name, buckets)
		}
	}
	if slices.Contains(labels, "le") {
		return nil, fmt.Errorf("failed to register metric %q: label \"le\" is reserved for histogram buckets", name)
	}
	entry, err := m.register(metricKindHistogram, name, help, labels, buckets, func(constLabels prometheus.Labels) (prometheus.Collector, seriesDeleter) {
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, ConstLabels: constLabels, Buckets: buckets}, labels)
		return v, v
	})
	if err != nil {
		return nil, err
	}
	return entry.vec.(*prometheus.HistogramVec), nil
}

// MustRegisterCounterVec is like RegisterCounterVec but panics on error. Use
// it only with constant arguments, where an error is a programming mistake.
func (m *TMCMetrics) MustRegisterCounterVec(name, help string, labels []string) *prometheus.CounterVec {
	v, err := m.RegisterCounterVec(name, help, labels)
	if err != nil {
		panic(err)
	}
	return v
}

// MustRegisterGaugeVec is like RegisterGaugeVec but panics on error.
func (m *TMCMetrics) MustRegisterGaugeVec(name, help string, labels []string) *prometheus.GaugeVec {
	v, err := m.RegisterGaugeVec(name, help, labels)
	if err != nil {
		panic(err)
	}
	return v
}

// MustRegisterHistogramVec is like RegisterHistogramVec but panics on error.
func (m *TMCMetrics) MustRegisterHistogramVec(name, help string, labels []string, buckets ...float64) *prometheus.HistogramVec {
	v, err := m.RegisterHistogramVec(name, help, labels, buckets...)
	if err != nil {
		panic(err)
	}
	return v
}

// register performs the shared bookkeeping of the Register* methods. The
// lock is held across the registry call so a concurrent registration of the
// same name cannot slip in between the lookup and the insert.
func (m *TMCMetrics) register(kind metricKind, name, help string, labels []string, buckets []float64,
	newVec func(constLabels prometheus.Labels) (prometheus.Collector, seriesDeleter)) (*registeredVec, error) {
	if name == "" {
		return nil, errors.New("failed to register metric: name must not be empty")
	}
	if slices.Contains(labels, ComponentLabel) {
		return nil, fmt.Errorf("failed to register metric %q: label %q is reserved for the component name", name, ComponentLabel)
	}

	m.mu.Lock()
	defer m.mu.Unlock()

	if existing, ok := m.vecs[name]; ok {
		switch {
		case existing.kind != kind:
			return nil, fmt.Errorf("failed to register metric %q as %s: already registered as %s", name, kind, existing.kind)
		case !slices.Equal(existing.labels, labels):
			return nil, fmt.Errorf("failed to register metric %q with labels %v: already registered with labels %v", name, labels, existing.labels)
		case existing.help != help:
			return nil, fmt.Errorf("failed to register metric %q: already registered with different help text %q", name, existing.help)
		case !slices.Equal(existing.buckets, buckets):
			return nil, fmt.Errorf("failed to register metric %q with buckets %v: already registered with buckets %v", name, buckets, existing.buckets)
		}
		return existing, nil
	}

	vec, deleter := newVec(prometheus.Labels{ComponentLabel: m.component})
	// The registry validates the name and labels and catches collisions with
	// collectors registered through Registerer().
	if err := m.registry.Register(vec); err != nil {
		return nil, fmt.Errorf("failed to register metric %q: %w", name, err)
	}
	entry := &registeredVec{
		kind:    kind,
		help:    help,
		labels:  slices.Clone(labels),
		buckets: buckets,
		vec:     vec,
		deleter: deleter,
	}
	m.vecs[name] = entry
	return entry, nil
}

// lookup returns the entry registered under name if it has the given kind.
func (m *TMCMetrics) lookup(name string, kind metricKind) *registeredVec {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if e, ok := m.vecs[name]; ok && e.kind == kind {
		return e
	}
	return nil
}

// CounterVec returns the counter vector registered under name, or nil if
// there is none (or name belongs to another type).
func (m *TMCMetrics) CounterVec(name string) *prometheus.CounterVec {
	if e := m.lookup(name, metricKindCounter); e != nil {
		return e.vec.(*prometheus.CounterVec)
	}
	return nil
}

// GaugeVec returns the gauge vector registered under name, or nil.
func (m *TMCMetrics) GaugeVec(name string) *prometheus.GaugeVec {
	if e := m.lookup(name, metricKindGauge); e != nil {
		return e.vec.(*prometheus.GaugeVec)
	}
	return nil
}

// HistogramVec returns the histogram vector registered under name, or nil.
func (m *TMCMetrics) HistogramVec(name string) *prometheus.HistogramVec {
	if e := m.lookup(name, metricKindHistogram); e != nil {
		return e.vec.(*prometheus.HistogramVec)
	}
	return nil
}

// DeleteSeries removes the single series of metric name whose variable
// labels equal labels exactly (ComponentLabel is not part of them). It
// reports whether a series was removed.
func (m *TMCMetrics) DeleteSeries(name string, labels prometheus.Labels) bool {
	m.mu.RLock()
	e, ok := m.vecs[name]
	m.mu.RUnlock()
	if !ok {
		return false
	}
	return e.deleter.Delete(labels)
}

// DeletePartialMatch removes every series of metric name whose labels
// include all of labels, e.g. {"workspace": "root:org"} once a workspace is
// gone, and returns how many were removed. Without it, series for deleted
// objects would be exported until the process restarts.
func (m *TMCMetrics) DeletePartialMatch(name string, labels prometheus.Labels) int {
	m.mu.RLock()
	e, ok := m.vecs[name]
	m.mu.RUnlock()
	if !ok {
		return 0
	}
	return e.deleter.DeletePartialMatch(labels)
}

// DeletePartialMatchAll applies DeletePartialMatch to every metric registered
// through this TMCMetrics (including the workqueue metrics) and returns the
// total number of series removed. Metrics that lack one of the given label
// names are not affected.
func (m *TMCMetrics) DeletePartialMatchAll(labels prometheus.Labels) int {
	m.mu.RLock()
	deleters := make([]seriesDeleter, 0, len(m.vecs))
	for _, e := range m.vecs {
		deleters = append(deleters, e.deleter)
	}
	m.mu.RUnlock()

	removed := 0
	for _, d := range deleters {
		removed += d.DeletePartialMatch(labels)
	}
	return removed
}

// WorkqueueMetricsProvider returns a workqueue.MetricsProvider that records
// the standard workqueue metrics (label "name", the queue name) into this
// registry. Pass it in TypedRateLimitingQueueConfig.MetricsProvider together
// with a Name; queues without a Name emit nothing. Several queues may share
// the provider; queues with the same name share their series.
func (m *TMCMetrics) WorkqueueMetricsProvider() workqueue.MetricsProvider {
	return m.workqueueProvider
}

// workqueueMetricsProvider implements workqueue.MetricsProvider with one
// vector per metric and one child per queue name.
type workqueueMetricsProvider struct {
	depth                   *prometheus.GaugeVec
	adds                    *prometheus.CounterVec
	queueDuration           *prometheus.HistogramVec
	workDuration            *prometheus.HistogramVec
	unfinishedWork          *prometheus.GaugeVec
	longestRunningProcessor *prometheus.GaugeVec
	retries                 *prometheus.CounterVec
}

var _ workqueue.MetricsProvider = &workqueueMetricsProvider{}

// newWorkqueueMetricsProvider registers the workqueue vectors eagerly, so a
// later attempt to register a conflicting metric under one of these names
// fails at registration instead of when the first queue is built.
func newWorkqueueMetricsProvider(m *TMCMetrics) *workqueueMetricsProvider {
	// The same buckets as Kubernetes' own workqueue metrics (10ns to ~1000s),
	// so histogram_quantile queries shared with upstream dashboards agree.
	buckets := prometheus.ExponentialBuckets(10e-9, 10, 12)
	labels := []string{"name"}
	return &workqueueMetricsProvider{
		depth: m.MustRegisterGaugeVec(WorkqueueDepthMetric,
			"Current depth of workqueue", labels),
		adds: m.MustRegisterCounterVec(WorkqueueAddsMetric,
			"Total number of adds handled by workqueue", labels),
		queueDuration: m.MustRegisterHistogramVec(WorkqueueQueueDurationMetric,
			"How long in seconds an item stays in workqueue before being requested", labels, buckets...),
		workDuration: m.MustRegisterHistogramVec(WorkqueueWorkDurationMetric,
			"How long in seconds processing an item from workqueue takes", labels, buckets...),
		unfinishedWork: m.MustRegisterGaugeVec(WorkqueueUnfinishedWorkMetric,
			"How many seconds of work has been done that is in progress and hasn't been observed by work_duration. "+
				"Large values indicate stuck threads. One can deduce the number of stuck threads by observing the rate at which this increases.",
			labels),
		longestRunningProcessor: m.MustRegisterGaugeVec(WorkqueueLongestRunningProcessorMetric,
			"How many seconds has the longest running processor for workqueue been running", labels),
		retries: m.MustRegisterCounterVec(WorkqueueRetriesMetric,
			"Total number of retries handled by workqueue", labels),
	}
}

// NewDepthMetric implements workqueue.MetricsProvider.
func (p *workqueueMetricsProvider) NewDepthMetric(name string) workqueue.GaugeMetric {
	return p.depth.WithLabelValues(name)
}

// NewAddsMetric implements workqueue.MetricsProvider.
func (p *workqueueMetricsProvider) NewAddsMetric(name string) workqueue.CounterMetric {
	return p.adds.WithLabelValues(name)
}

// NewLatencyMetric implements workqueue.MetricsProvider.
func (p *workqueueMetricsProvider) NewLatencyMetric(name string) workqueue.HistogramMetric {
	return p.queueDuration.WithLabelValues(name)
}

// NewWorkDurationMetric implements workqueue.MetricsProvider.
func (p *workqueueMetricsProvider) NewWorkDurationMetric(name string) workqueue.HistogramMetric {
	return p.workDuration.WithLabelValues(name)
}

// NewUnfinishedWorkSecondsMetric implements workqueue.MetricsProvider.
func (p *workqueueMetricsProvider) NewUnfinishedWorkSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return p.unfinishedWork.WithLabelValues(name)
}

// NewLongestRunningProcessorSecondsMetric implements workqueue.MetricsProvider.
func (p *workqueueMetricsProvider) NewLongestRunningProcessorSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return p.longestRunningProcessor.WithLabelValues(name)
}

// NewRetriesMetric implements workqueue.MetricsProvider.
func (p *workqueueMetricsProvider) NewRetriesMetric(name string) workqueue.CounterMetric {
	return p.retries.WithLabelValues(name)
}
