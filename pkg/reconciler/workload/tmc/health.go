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
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"
)

// DefaultHealthCheckTimeout bounds a single check unless overridden with
// WithCheckTimeout or WithDefaultCheckTimeout, so a hanging dependency is
// reported as failed instead of hanging the probe. Probes of a pod should
// set timeoutSeconds above the longest check timeout.
const DefaultHealthCheckTimeout = 5 * time.Second

// HealthComponentMetric is the gauge exported when the manager is given a
// registerer with WithHealthRegisterer: 1 while a check passes, 0 otherwise.
const HealthComponentMetric = "tmc_component_health"

// HealthCheck reports whether a component works. It must return promptly once
// ctx is done; a check that ignores ctx is reported as timed out but keeps
// running in the background until it returns.
type HealthCheck func(ctx context.Context) error

// healthEndpoint is a bit set of the endpoints a check is served on.
type healthEndpoint uint8

const (
	healthzEndpoint healthEndpoint = 1 << iota
	livezEndpoint
	readyzEndpoint
)

// healthEndpoints lists the endpoints in the order they are installed.
var healthEndpoints = []healthEndpoint{healthzEndpoint, livezEndpoint, readyzEndpoint}

func (e healthEndpoint) String() string {
	return map[healthEndpoint]string{healthzEndpoint: "healthz", livezEndpoint: "livez", readyzEndpoint: "readyz"}[e]
}

// healthCheckConfig holds the per-check settings set by CheckOptions.
type healthCheckConfig struct {
	endpoints healthEndpoint
	timeout   time.Duration
}

// CheckOption configures one component registered with RegisterComponent.
type CheckOption func(*healthCheckConfig)

// ForLiveness makes the check part of /livez in addition to /readyz and
// /healthz. Use it only for failures a restart can fix (a deadlocked loop, a
// corrupted cache). A component that is merely disconnected from kcp or from
// the downstream cluster must not use it: restarting the syncer does not
// bring a remote back, and failing liveness would turn a remote outage into
// a crash loop. Liveness checks are always readiness checks too, because a
// process that should be restarted is not ready either.
func ForLiveness() CheckOption {
	return func(c *healthCheckConfig) { c.endpoints = healthzEndpoint | livezEndpoint | readyzEndpoint }
}

// ReadinessOnly serves the check on /readyz only, leaving it out of the
// legacy /healthz aggregate (and of /livez, like every check by default).
func ReadinessOnly() CheckOption {
	return func(c *healthCheckConfig) { c.endpoints = readyzEndpoint }
}

// WithCheckTimeout overrides the timeout of a single check. Non-positive
// values are ignored.
func WithCheckTimeout(d time.Duration) CheckOption {
	return func(c *healthCheckConfig) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// HealthManagerOption configures a ComponentHealthManager.
type HealthManagerOption func(*ComponentHealthManager)

// WithDefaultCheckTimeout sets the timeout for checks registered without
// WithCheckTimeout. Non-positive values are ignored.
func WithDefaultCheckTimeout(d time.Duration) HealthManagerOption {
	return func(m *ComponentHealthManager) {
		if d > 0 {
			m.defaultTimeout = d
		}
	}
}

// WithHealthRegisterer exports HealthComponentMetric{component,check} into
// reg, updated whenever a check is evaluated or a status is pushed. Several
// managers may share one registerer; they are told apart by "component".
func WithHealthRegisterer(reg prometheus.Registerer) HealthManagerOption {
	return func(m *ComponentHealthManager) { m.registerer = reg }
}

// ComponentHealth is the latest known health of one component.
type ComponentHealth struct {
	// Name is the name the component was registered with.
	Name string
	// Healthy is true when the last evaluation passed.
	Healthy bool
	// Message is "ok" when healthy and the failure reason otherwise.
	Message string
	// Duration is how long the last check took (zero for pushed statuses).
	Duration time.Duration
	// LastChecked is when the status was last evaluated or pushed.
	LastChecked time.Time
	// LastTransition is when Healthy last changed (or was first recorded).
	LastTransition time.Time
	// Liveness and Readiness tell whether the component is served on
	// /livez and /readyz respectively.
	Liveness, Readiness bool
}

// HealthReport is the aggregated health of every component of a manager.
type HealthReport struct {
	// Name is the manager name given to NewComponentHealthManager.
	Name string
	// Healthy is true when every component is healthy.
	Healthy bool
	// Components holds one entry per component, sorted by name.
	Components []ComponentHealth
}

// healthComponent is the registration and mutable state of one component.
type healthComponent struct {
	name      string
	check     HealthCheck // nil for push-style components
	endpoints healthEndpoint
	timeout   time.Duration

	mu        sync.Mutex
	pushed    error
	hasPushed bool
	last      ComponentHealth
	hasLast   bool
}

// ComponentHealthManager aggregates the health of the components of one TMC
// binary and serves it on /healthz, /livez and /readyz through the
// apiserver's healthz library (see InstallHandlers). Components are either
// polled (a HealthCheck run on every request, concurrently, each under its
// own timeout) or push-style (their status set with SetComponentStatus). All
// methods are safe for concurrent use.
type ComponentHealthManager struct {
	name           string
	defaultTimeout time.Duration
	registerer     prometheus.Registerer
	gauge          *prometheus.GaugeVec

	mu         sync.RWMutex
	components map[string]*healthComponent
	// generation counts changes of the set of components, so the HTTP
	// handler knows when to install the checks on the healthz library again.
	generation uint64
}

// NewComponentHealthManager returns a manager for the named binary or
// component, e.g. "syncer".
func NewComponentHealthManager(name string, opts ...HealthManagerOption) *ComponentHealthManager {
	m := &ComponentHealthManager{
		name:           name,
		defaultTimeout: DefaultHealthCheckTimeout,
		components:     map[string]*healthComponent{},
	}
	for _, opt := range opts {
		opt(m)
	}
	if m.registerer != nil {
		m.gauge = registerHealthGauge(m.registerer)
	}
	return m
}

// registerHealthGauge registers HealthComponentMetric, reusing the vector
// another manager already registered into the same registerer.
func registerHealthGauge(reg prometheus.Registerer) *prometheus.GaugeVec {
	gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: HealthComponentMetric,
		Help: "Whether a TMC component health check passes (1) or fails (0).",
	}, []string{"component", "check"})
	err := reg.Register(gauge)
	if err == nil {
		return gauge
	}
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(*prometheus.GaugeVec); ok {
			return existing
		}
	}
	// Health must keep working without its metric, so only log.
	klog.Background().Error(err, "Failed to register health metric", "metric", HealthComponentMetric)
	return nil
}

// RegisterComponent adds a component whose health is polled with check. By
// default the check is served on /readyz and /healthz; see ForLiveness,
// ReadinessOnly and WithCheckTimeout. A nil check registers a push-style
// component that fails with "no status reported yet" until the first
// SetComponentStatus, which lets readiness wait for it. Names must be unique
// and consist of letters, digits, '-', '_', '.' or ':' because they appear
// in URL paths and metric labels.
func (m *ComponentHealthManager) RegisterComponent(name string, check HealthCheck, opts ...CheckOption) error {
	if err := validateHealthComponentName(name); err != nil {
		return err
	}
	cfg := healthCheckConfig{endpoints: healthzEndpoint | readyzEndpoint, timeout: m.defaultTimeout}
	for _, opt := range opts {
		opt(&cfg)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if _, exists := m.components[name]; exists {
		return fmt.Errorf("failed to register health component %q: already registered", name)
	}
	m.components[name] = &healthComponent{name: name, check: check, endpoints: cfg.endpoints, timeout: cfg.timeout}
	m.generation++
	return nil
}

// UnregisterComponent removes a component and its metric series, e.g. when a
// per-cluster component goes away. It reports whether the component existed.
func (m *ComponentHealthManager) UnregisterComponent(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.components[name]
	delete(m.components, name)
	if ok {
		m.generation++
	}
	if ok && m.gauge != nil {
		m.gauge.DeleteLabelValues(m.name, name)
	}
	return ok
}

// SetComponentStatus records the health of a component from the code that
// observes it (nil means healthy), e.g. a watch loop reporting that it lost
// its connection. An unknown name registers a push-style component with the
// default options. For a polled component the pushed error is combined with
// the check: the component is healthy only if both are.
func (m *ComponentHealthManager) SetComponentStatus(name string, err error) {
	if verr := validateHealthComponentName(name); verr != nil {
		klog.Background().Error(verr, "Ignoring health status", "manager", m.name)
		return
	}
	m.mu.Lock()
	c, ok := m.components[name]
	if !ok {
		c = &healthComponent{name: name, endpoints: healthzEndpoint | readyzEndpoint, timeout: m.defaultTimeout}
		m.components[name] = c
		m.generation++
	}
	m.mu.Unlock()

	c.mu.Lock()
	c.pushed, c.hasPushed = err, true
	c.mu.Unlock()
	if c.check == nil {
		// Push-style status is final as soon as it is set, so record it now
		// and keep LastTransition and the metric in step with the code.
		m.record(c, nil, 0)
	}
}

// Status evaluates every component concurrently and returns the aggregated
// report. Because liveness checks are a subset of readiness checks, Healthy
// equals the result /readyz would give.
func (m *ComponentHealthManager) Status(ctx context.Context) HealthReport {
	results := m.evaluate(ctx, m.componentsFor(healthzEndpoint|livezEndpoint|readyzEndpoint))
	report := HealthReport{Name: m.name, Healthy: true, Components: results}
	for _, r := range results {
		report.Healthy = report.Healthy && r.Healthy
	}
	return report
}

// componentsFor returns the components served on any of the given
// endpoints, sorted by name so output is stable.
func (m *ComponentHealthManager) componentsFor(eps healthEndpoint) []*healthComponent {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*healthComponent, 0, len(m.components))
	for _, c := range m.components {
		if c.endpoints&eps != 0 {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, compareHealthComponents)
	return out
}

func compareHealthComponents(a, b *healthComponent) int { return strings.Compare(a.name, b.name) }

// snapshot returns the generation of the component set and, taken at that
// generation, the components of every endpoint sorted by name.
func (m *ComponentHealthManager) snapshot() (uint64, map[healthEndpoint][]*healthComponent) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	byEndpoint := make(map[healthEndpoint][]*healthComponent, len(healthEndpoints))
	for _, c := range m.components {
		for _, ep := range healthEndpoints {
			if c.endpoints&ep != 0 {
				byEndpoint[ep] = append(byEndpoint[ep], c)
			}
		}
	}
	for _, comps := range byEndpoint {
		slices.SortFunc(comps, compareHealthComponents)
	}
	return m.generation, byEndpoint
}

// evaluate runs the given components concurrently; the result order matches
// the input order.
func (m *ComponentHealthManager) evaluate(ctx context.Context, comps []*healthComponent) []ComponentHealth {
	results := make([]ComponentHealth, len(comps))
	var wg sync.WaitGroup
	for i, c := range comps {
		wg.Go(func() { results[i] = m.evaluateOne(ctx, c) })
	}
	wg.Wait()
	return results
}

// evaluateOne runs the check of a polled component, or reads the pushed
// status of a push-style one, and records the outcome.
func (m *ComponentHealthManager) evaluateOne(ctx context.Context, c *healthComponent) ComponentHealth {
	if c.check == nil {
		c.mu.Lock()
		hasLast, last := c.hasLast, c.last
		c.mu.Unlock()
		if hasLast {
			return last
		}
		return m.record(c, nil, 0)
	}
	start := time.Now()
	err := runHealthCheck(ctx, c.check, c.timeout)
	return m.record(c, err, time.Since(start))
}

// record combines a check result with the pushed status, updates the
// transition time and the metric, and returns the new status.
func (m *ComponentHealthManager) record(c *healthComponent, checkErr error, took time.Duration) ComponentHealth {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()

	err := checkErr
	switch {
	case c.hasPushed && c.pushed != nil:
		err = c.pushed
	case c.check == nil && !c.hasPushed:
		err = errors.New("no status reported yet")
	}
	status := ComponentHealth{
		Name:           c.name,
		Healthy:        err == nil,
		Message:        "ok",
		Duration:       took,
		LastChecked:    now,
		LastTransition: now,
		Liveness:       c.endpoints&livezEndpoint != 0,
		Readiness:      c.endpoints&readyzEndpoint != 0,
	}
	if err != nil {
		// Keep each check on one line of the plain-text output.
		status.Message = strings.ReplaceAll(err.Error(), "\n", " ")
	}
	if c.hasLast && c.last.Healthy == status.Healthy {
		status.LastTransition = c.last.LastTransition
	}
	c.last, c.hasLast = status, true

	if m.gauge != nil {
		value := 0.0
		if status.Healthy {
			value = 1
		}
		// Lock order is component then manager. The check keeps an
		// evaluation racing with UnregisterComponent from resurrecting the
		// deleted series.
		m.mu.RLock()
		if m.components[c.name] == c {
			m.gauge.WithLabelValues(m.name, c.name).Set(value)
		}
		m.mu.RUnlock()
	}
	return status
}

// runHealthCheck runs check under timeout. The check runs in its own
// goroutine so that one which ignores its context still cannot block the
// probe, and a panicking check fails instead of crashing the process.
func runHealthCheck(ctx context.Context, check HealthCheck, timeout time.Duration) error {
	checkCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	done := make(chan error, 1) // buffered: an abandoned check must not block forever
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("check panicked: %v", r)
			}
		}()
		done <- check(checkCtx)
	}()

	var err error
	select {
	case err = <-done:
		if err == nil {
			return nil
		}
	case <-checkCtx.Done():
	}
	if checkCtx.Err() == nil {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("check aborted: %w", context.Cause(ctx))
	}
	return fmt.Errorf("check timed out after %v", timeout)
}

// validateHealthComponentName keeps names safe to use as a URL path segment
// and in the line-oriented probe output.
func validateHealthComponentName(name string) error {
	if name == "" {
		return errors.New("health component name must not be empty")
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '-' || r == '_' || r == '.' || r == ':'
		if !ok {
			return fmt.Errorf("health component name %q contains %q; only letters, digits, '-', '_', '.' and ':' are allowed", name, r)
		}
	}
	return nil
}
