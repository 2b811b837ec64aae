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
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/tmc-dev/tmc/pkg/localenv"
	"k8s.io/client-go/util/workqueue"
)

// scrapeMetrics fetches m.Handler() over HTTP and parses the text exposition
// format, so the tests check what Prometheus would actually see.
func scrapeMetrics(t *testing.T, m *TMCMetrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatalf("failed to build request: %v", err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("failed to scrape metrics: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape returned status %d", resp.StatusCode)
	}
	families, err := localenv.ParseMetrics(resp.Body)
	if err != nil {
		t.Fatalf("failed to parse exposition format: %v", err)
	}
	return families
}

// findSeries returns the series of family name whose labels include want, or
// nil if the family or the series is missing.
func findSeries(families map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	mf, ok := families[name]
	if !ok {
		return nil
	}
	for _, metric := range mf.GetMetric() {
		got := map[string]string{}
		for _, lp := range metric.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		matches := true
		for k, v := range want {
			if got[k] != v {
				matches = false
				break
			}
		}
		if matches {
			return metric
		}
	}
	return nil
}

func mustFindSeries(t *testing.T, families map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	metric := findSeries(families, name, want)
	if metric == nil {
		t.Fatalf("series %s%v not found in scrape", name, want)
	}
	return metric
}

func TestMetricsRegisterAndScrape(t *testing.T) {
	m := NewTMCMetrics("syncer")

	synced, err := m.RegisterCounterVec("syncer_resources_synced_total", "Total number of resources synced",
		[]string{"cluster", "workspace", "gvk", "direction"})
	if err != nil {
		t.Fatalf("RegisterCounterVec: %v", err)
	}
	duration, err := m.RegisterHistogramVec("syncer_sync_duration_seconds", "Time taken to sync resources",
		[]string{"cluster", "workspace", "gvk"})
	if err != nil {
		t.Fatalf("RegisterHistogramVec: %v", err)
	}
	heartbeat, err := m.RegisterGaugeVec("syncer_heartbeat_timestamp_seconds", "Last heartbeat", []string{"cluster"})
	if err != nil {
		t.Fatalf("RegisterGaugeVec: %v", err)
	}

	for range 3 {
		synced.WithLabelValues("east", "root:org", "apps/v1.Deployment", "downstream").Inc()
	}
	synced.WithLabelValues("east", "root:org", "v1.ConfigMap", "upstream").Inc()
	duration.WithLabelValues("east", "root:org", "apps/v1.Deployment").Observe(0.2)
	heartbeat.WithLabelValues("east").Set(1700000000)

	families := scrapeMetrics(t, m)

	counter := mustFindSeries(t, families, "syncer_resources_synced_total", map[string]string{
		"component": "syncer", "cluster": "east", "workspace": "root:org", "gvk": "apps/v1.Deployment", "direction": "downstream",
	})
	if got := counter.GetCounter().GetValue(); got != 3 {
		t.Errorf("downstream counter = %v, want 3", got)
	}
	if got := families["syncer_resources_synced_total"].GetType(); got != dto.MetricType_COUNTER {
		t.Errorf("type = %v, want COUNTER", got)
	}
	if got := len(families["syncer_resources_synced_total"].GetMetric()); got != 2 {
		t.Errorf("synced series = %d, want 2", got)
	}

	hist := mustFindSeries(t, families, "syncer_sync_duration_seconds", map[string]string{"gvk": "apps/v1.Deployment"}).GetHistogram()
	if hist.GetSampleCount() != 1 || hist.GetSampleSum() != 0.2 {
		t.Errorf("histogram count/sum = %d/%v, want 1/0.2", hist.GetSampleCount(), hist.GetSampleSum())
	}
	// The parser keeps the +Inf bucket of the text format.
	if got, want := len(hist.GetBucket()), len(DefaultLatencyBuckets())+1; got != want {
		t.Errorf("histogram has %d buckets, want the default ones plus +Inf (%d)", got, want)
	}
	for _, b := range hist.GetBucket() {
		wantCount := uint64(0)
		if b.GetUpperBound() >= 0.2 {
			wantCount = 1
		}
		if b.GetCumulativeCount() != wantCount {
			t.Errorf("bucket le=%v count = %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), wantCount)
		}
	}

	gauge := mustFindSeries(t, families, "syncer_heartbeat_timestamp_seconds", map[string]string{"component": "syncer", "cluster": "east"})
	if got := gauge.GetGauge().GetValue(); got != 1700000000 {
		t.Errorf("gauge = %v, want 1700000000", got)
	}

	// The runtime collectors come pre-registered.
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := families[name]; !ok {
			t.Errorf("expected %s in scrape", name)
		}
	}
}

func TestMetricsIdempotentRegistration(t *testing.T) {
	m := NewTMCMetrics("syncer")
	labels := []string{"cluster", "workspace"}

	c1 := m.MustRegisterCounterVec("tmc_things_total", "Things", labels)
	c2, err := m.RegisterCounterVec("tmc_things_total", "Things", []string{"cluster", "workspace"})
	if err != nil || c1 != c2 {
		t.Fatalf("second RegisterCounterVec = %p, %v; want %p, nil", c2, err, c1)
	}
	h1 := m.MustRegisterHistogramVec("tmc_latency_seconds", "Latency", labels)
	h2, err := m.RegisterHistogramVec("tmc_latency_seconds", "Latency", labels, DefaultLatencyBuckets()...)
	if err != nil || h1 != h2 {
		t.Fatalf("second RegisterHistogramVec = %p, %v; want %p, nil", h2, err, h1)
	}
	g1 := m.MustRegisterGaugeVec("tmc_level", "Level", labels)
	g2, err := m.RegisterGaugeVec("tmc_level", "Level", labels)
	if err != nil || g1 != g2 {
		t.Fatalf("second RegisterGaugeVec = %p, %v; want %p, nil", g2, err, g1)
	}

	if m.CounterVec("tmc_things_total") != c1 || m.HistogramVec("tmc_latency_seconds") != h1 || m.GaugeVec("tmc_level") != g1 {
		t.Error("getters did not return the registered vectors")
	}
	if m.CounterVec("tmc_level") != nil || m.GaugeVec("tmc_things_total") != nil || m.HistogramVec("missing") != nil {
		t.Error("getters must return nil for an unknown name or another type")
	}
}

func TestMetricsConflictingRegistration(t *testing.T) {
	m := NewTMCMetrics("syncer")
	m.MustRegisterCounterVec("tmc_things_total", "Things", []string{"cluster", "workspace"})
	m.MustRegisterHistogramVec("tmc_latency_seconds", "Latency", []string{"cluster"}, 0.1, 1)

	tests := []struct {
		name     string
		register func() error
	}{
		{"different labels", func() error {
			_, err := m.RegisterCounterVec("tmc_things_total", "Things", []string{"cluster"})
			return err
		}},
		{"different label order", func() error {
			_, err := m.RegisterCounterVec("tmc_things_total", "Things", []string{"workspace", "cluster"})
			return err
		}},
		{"different type", func() error {
			_, err := m.RegisterGaugeVec("tmc_things_total", "Things", []string{"cluster", "workspace"})
			return err
		}},
		{"different help", func() error {
			_, err := m.RegisterCounterVec("tmc_things_total", "Other things", []string{"cluster", "workspace"})
			return err
		}},
		{"different buckets", func() error {
			_, err := m.RegisterHistogramVec("tmc_latency_seconds", "Latency", []string{"cluster"}, 0.1, 2)
			return err
		}},
		{"reserved component label", func() error {
			_, err := m.RegisterGaugeVec("tmc_other", "Other", []string{"component"})
			return err
		}},
		{"le label on histogram", func() error {
			_, err := m.RegisterHistogramVec("tmc_other_seconds", "Other", []string{"le"})
			return err
		}},
		{"unsorted buckets", func() error {
			_, err := m.RegisterHistogramVec("tmc_other_seconds", "Other", nil, 1, 0.5)
			return err
		}},
		{"empty name", func() error {
			_, err := m.RegisterCounterVec("", "Nothing", nil)
			return err
		}},
		{"duplicate label", func() error {
			_, err := m.RegisterCounterVec("tmc_dup_total", "Dup", []string{"cluster", "cluster"})
			return err
		}},
		{"clash with runtime collector", func() error {
			_, err := m.RegisterGaugeVec("go_goroutines", "Goroutines", nil)
			return err
		}},
		{"clash with workqueue metric", func() error {
			_, err := m.RegisterGaugeVec(WorkqueueDepthMetric, "Depth", []string{"queue"})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.register(); err == nil {
				t.Fatal("expected an error, got nil")
			}
		})
	}

	// A failed registration must leave nothing behind.
	if m.GaugeVec("tmc_other") != nil || m.CounterVec("tmc_dup_total") != nil {
		t.Error("failed registrations must not be recorded")
	}
	defer func() {
		if recover() == nil {
			t.Error("MustRegisterGaugeVec did not panic on a conflict")
		}
	}()
	m.MustRegisterGaugeVec("tmc_things_total", "Things", []string{"cluster", "workspace"})
}

func TestMetricsDeleteSeries(t *testing.T) {
	m := NewTMCMetrics("syncer")
	synced := m.MustRegisterCounterVec("syncer_resources_synced_total", "Synced", []string{"cluster", "workspace", "gvk"})
	lag := m.MustRegisterGaugeVec("syncer_lag_seconds", "Lag", []string{"workspace"})
	other := m.MustRegisterGaugeVec("syncer_targets", "Targets", []string{"cluster"})
	for _, ws := range []string{"root:a", "root:b"} {
		synced.WithLabelValues("east", ws, "v1.ConfigMap").Inc()
		synced.WithLabelValues("east", ws, "v1.Secret").Inc()
		lag.WithLabelValues(ws).Set(1)
	}
	other.WithLabelValues("east").Set(1)

	if !m.DeleteSeries("syncer_resources_synced_total", prometheus.Labels{"cluster": "east", "workspace": "root:a", "gvk": "v1.Secret"}) {
		t.Error("DeleteSeries of an existing series returned false")
	}
	if m.DeleteSeries("syncer_resources_synced_total", prometheus.Labels{"cluster": "east", "workspace": "root:a", "gvk": "v1.Secret"}) {
		t.Error("DeleteSeries of an already deleted series returned true")
	}
	if m.DeleteSeries("syncer_resources_synced_total", prometheus.Labels{"workspace": "root:a"}) {
		t.Error("DeleteSeries with a partial label set must not delete")
	}
	if m.DeleteSeries("missing", prometheus.Labels{}) || m.DeletePartialMatch("missing", prometheus.Labels{"workspace": "root:a"}) != 0 {
		t.Error("deleting from an unknown metric must be a no-op")
	}
	if got := m.DeletePartialMatch("syncer_resources_synced_total", prometheus.Labels{"workspace": "root:a"}); got != 1 {
		t.Errorf("DeletePartialMatch removed %d series, want 1", got)
	}

	families := scrapeMetrics(t, m)
	if findSeries(families, "syncer_resources_synced_total", map[string]string{"workspace": "root:a"}) != nil {
		t.Error("series of workspace root:a still scraped after DeletePartialMatch")
	}
	if got := len(families["syncer_resources_synced_total"].GetMetric()); got != 2 {
		t.Errorf("synced series = %d, want the 2 of root:b", got)
	}

	// Dropping a workspace everywhere only touches metrics with that label.
	if got := m.DeletePartialMatchAll(prometheus.Labels{"workspace": "root:b"}); got != 3 {
		t.Errorf("DeletePartialMatchAll removed %d series, want 3", got)
	}
	families = scrapeMetrics(t, m)
	if _, ok := families["syncer_resources_synced_total"]; ok {
		t.Error("syncer_resources_synced_total still has series")
	}
	mustFindSeries(t, families, "syncer_lag_seconds", map[string]string{"workspace": "root:a"})
	mustFindSeries(t, families, "syncer_targets", map[string]string{"cluster": "east"})
}

func TestMetricsInstancesAreIndependent(t *testing.T) {
	syncer := NewTMCMetrics("syncer")
	controller := NewTMCMetrics("tmc-controller")
	a := syncer.MustRegisterCounterVec("tmc_reconciles_total", "Reconciles", []string{"result"})
	b := controller.MustRegisterCounterVec("tmc_reconciles_total", "Reconciles", []string{"result"})
	if a == b {
		t.Fatal("instances share a vector")
	}
	a.WithLabelValues("success").Add(2)
	b.WithLabelValues("success").Add(5)

	got := mustFindSeries(t, scrapeMetrics(t, syncer), "tmc_reconciles_total", map[string]string{"component": "syncer"})
	if got.GetCounter().GetValue() != 2 {
		t.Errorf("syncer counter = %v, want 2", got.GetCounter().GetValue())
	}
	got = mustFindSeries(t, scrapeMetrics(t, controller), "tmc_reconciles_total", map[string]string{"component": "tmc-controller"})
	if got.GetCounter().GetValue() != 5 {
		t.Errorf("controller counter = %v, want 5", got.GetCounter().GetValue())
	}
}

func TestMetricsConcurrentRegistration(t *testing.T) {
	m := NewTMCMetrics("syncer")
	const workers = 8
	vecs := make([]*prometheus.CounterVec, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			v, err := m.RegisterCounterVec("tmc_concurrent_total", "Concurrent", []string{"worker"})
			if err != nil {
				t.Errorf("RegisterCounterVec: %v", err)
				return
			}
			vecs[i] = v
			v.WithLabelValues("w").Inc()
			m.DeletePartialMatch("tmc_concurrent_total", prometheus.Labels{"worker": "other"})
		})
	}
	wg.Wait()
	for i := range vecs {
		if vecs[i] != vecs[0] {
			t.Fatalf("worker %d got a different vector", i)
		}
	}
	if got := mustFindSeries(t, scrapeMetrics(t, m), "tmc_concurrent_total", nil).GetCounter().GetValue(); got != workers {
		t.Errorf("counter = %v, want %d", got, workers)
	}
}

func TestWorkqueueMetricsProvider(t *testing.T) {
	m := NewTMCMetrics("syncer")
	newQueue := func(name string) workqueue.TypedRateLimitingInterface[string] {
		q := workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Millisecond, time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: name, MetricsProvider: m.WorkqueueMetricsProvider()},
		)
		t.Cleanup(q.ShutDown)
		return q
	}
	upstream := newQueue("upstream-spec")
	downstream := newQueue("downstream-status")
	// A second queue under an existing name shares its series instead of
	// failing registration.
	newQueue("downstream-status")

	for _, key := range []string{"ns/a", "ns/b", "ns/c"} {
		upstream.Add(key)
	}
	upstream.Add("ns/a") // deduplicated by the queue, so not counted as an add
	downstream.Add("ns/x")

	families := scrapeMetrics(t, m)
	for queue, want := range map[string]float64{"upstream-spec": 3, "downstream-status": 1} {
		adds := mustFindSeries(t, families, WorkqueueAddsMetric, map[string]string{"name": queue, "component": "syncer"})
		if got := adds.GetCounter().GetValue(); got != want {
			t.Errorf("%s adds = %v, want %v", queue, got, want)
		}
	}
	depth := mustFindSeries(t, families, WorkqueueDepthMetric, map[string]string{"name": "upstream-spec"})
	if got := depth.GetGauge().GetValue(); got != 3 {
		t.Errorf("upstream depth = %v, want 3", got)
	}

	// Process everything the way a controller worker does; ns/b fails once
	// and comes back after the rate limiter's delay, so four Gets in total.
	for range 4 {
		key, shutdown := upstream.Get()
		if shutdown {
			t.Fatal("queue shut down unexpectedly")
		}
		if key == "ns/b" && upstream.NumRequeues(key) == 0 {
			upstream.AddRateLimited(key)
		} else {
			upstream.Forget(key)
		}
		upstream.Done(key)
	}

	families = scrapeMetrics(t, m)
	depth = mustFindSeries(t, families, WorkqueueDepthMetric, map[string]string{"name": "upstream-spec"})
	if got := depth.GetGauge().GetValue(); got != 0 {
		t.Errorf("upstream depth after processing = %v, want 0", got)
	}
	adds := mustFindSeries(t, families, WorkqueueAddsMetric, map[string]string{"name": "upstream-spec"})
	if got := adds.GetCounter().GetValue(); got != 4 {
		t.Errorf("upstream adds after the retry = %v, want 4", got)
	}
	retries := mustFindSeries(t, families, WorkqueueRetriesMetric, map[string]string{"name": "upstream-spec"})
	if got := retries.GetCounter().GetValue(); got != 1 {
		t.Errorf("upstream retries = %v, want 1", got)
	}
	work := mustFindSeries(t, families, WorkqueueWorkDurationMetric, map[string]string{"name": "upstream-spec"})
	if got := work.GetHistogram().GetSampleCount(); got != 4 {
		t.Errorf("work duration observations = %d, want 4", got)
	}
	wait := mustFindSeries(t, families, WorkqueueQueueDurationMetric, map[string]string{"name": "upstream-spec"})
	if got := wait.GetHistogram().GetSampleCount(); got != 4 {
		t.Errorf("queue duration observations = %d, want 4", got)
	}
	for _, name := range []string{WorkqueueUnfinishedWorkMetric, WorkqueueLongestRunningProcessorMetric} {
		mustFindSeries(t, families, name, map[string]string{"name": "upstream-spec"})
	}

	// Dropping a queue's series works like for any other metric.
	if got := m.DeletePartialMatchAll(prometheus.Labels{"name": "downstream-status"}); got == 0 {
		t.Error("expected the downstream-status series to be removed")
	}
	if findSeries(scrapeMetrics(t, m), WorkqueueAddsMetric, map[string]string{"name": "downstream-status"}) != nil {
		t.Error("downstream-status series still scraped")
	}
}
