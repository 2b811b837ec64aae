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
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func healthyCheck(context.Context) error { return nil }

func failingCheck(reason string) HealthCheck {
	return func(context.Context) error { return errors.New(reason) }
}

// toggleCheck is a check whose result the test flips.
type toggleCheck struct{ failing atomic.Bool }

func (c *toggleCheck) check(context.Context) error {
	if c.failing.Load() {
		return errors.New("connection refused")
	}
	return nil
}

// probe performs a GET against srv and returns status code and body.
func probe(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatalf("failed to build request: %v", err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("failed to read body of %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusNotFound {
		if got := resp.Header.Get("Content-Type"); got != "text/plain; charset=utf-8" {
			t.Errorf("GET %s: Content-Type = %q", path, got)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options = %q", path, got)
		}
	}
	return resp.StatusCode, string(body)
}

func expectProbe(t *testing.T, srv *httptest.Server, path string, wantCode int, wantBody string) {
	t.Helper()
	code, body := probe(t, srv, path)
	if code != wantCode || body != wantBody {
		t.Errorf("GET %s = %d %q, want %d %q", path, code, body, wantCode, wantBody)
	}
}

func newHealthServer(t *testing.T, m *ComponentHealthManager) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func mustRegister(t *testing.T, m *ComponentHealthManager, name string, check HealthCheck, opts ...CheckOption) {
	t.Helper()
	if err := m.RegisterComponent(name, check, opts...); err != nil {
		t.Fatalf("RegisterComponent(%q): %v", name, err)
	}
}

func TestHealthAllHealthy(t *testing.T) {
	m := NewComponentHealthManager("syncer")
	mustRegister(t, m, "kcp-connection", healthyCheck)
	mustRegister(t, m, "cluster-connection", healthyCheck)
	mustRegister(t, m, "resource-controllers", healthyCheck, ForLiveness())
	srv := newHealthServer(t, m)

	for _, path := range []string{"/healthz", "/livez", "/readyz", "/readyz?verbose=false"} {
		expectProbe(t, srv, path, http.StatusOK, "ok")
	}
}

func TestHealthReadinessFailureKeepsLiveness(t *testing.T) {
	m := NewComponentHealthManager("syncer")
	mustRegister(t, m, "kcp-connection", healthyCheck)
	mustRegister(t, m, "cluster-connection", failingCheck("dial tcp 10.0.0.1:6443: connection refused"))
	mustRegister(t, m, "resource-controllers", healthyCheck, ForLiveness())
	srv := newHealthServer(t, m)

	wantReadyz := "[-]cluster-connection failed: reason withheld\n" +
		"[+]kcp-connection ok\n" +
		"[+]resource-controllers ok\n" +
		"readyz check failed\n"
	expectProbe(t, srv, "/readyz", http.StatusInternalServerError, wantReadyz)
	expectProbe(t, srv, "/healthz", http.StatusInternalServerError, strings.ReplaceAll(wantReadyz, "readyz", "healthz"))
	// A lost remote must not get the pod restarted.
	expectProbe(t, srv, "/livez", http.StatusOK, "ok")
	expectProbe(t, srv, "/livez?verbose", http.StatusOK, "[+]resource-controllers ok\nlivez check passed\n")

	// A readiness-only check stays out of /healthz.
	m2 := NewComponentHealthManager("syncer")
	mustRegister(t, m2, "cache-synced", failingCheck("not synced"), ReadinessOnly())
	srv2 := newHealthServer(t, m2)
	expectProbe(t, srv2, "/healthz", http.StatusOK, "ok")
	expectProbe(t, srv2, "/livez", http.StatusOK, "ok")
	code, _ := probe(t, srv2, "/readyz")
	if code != http.StatusInternalServerError {
		t.Errorf("/readyz = %d, want 500", code)
	}
}

func TestHealthVerbose(t *testing.T) {
	m := NewComponentHealthManager("syncer")
	mustRegister(t, m, "kcp-connection", healthyCheck)
	cluster := &toggleCheck{}
	mustRegister(t, m, "cluster-connection", cluster.check)
	srv := newHealthServer(t, m)

	want := "[+]cluster-connection ok\n[+]kcp-connection ok\nreadyz check passed\n"
	expectProbe(t, srv, "/readyz?verbose", http.StatusOK, want)
	expectProbe(t, srv, "/readyz?verbose=true", http.StatusOK, want)
	expectProbe(t, srv, "/readyz?verbose=1", http.StatusOK, want)

	cluster.failing.Store(true)
	expectProbe(t, srv, "/readyz?verbose", http.StatusInternalServerError,
		"[-]cluster-connection failed: connection refused\n[+]kcp-connection ok\nreadyz check failed\n")
}

func TestHealthExclude(t *testing.T) {
	m := NewComponentHealthManager("syncer")
	mustRegister(t, m, "kcp-connection", healthyCheck)
	mustRegister(t, m, "cluster-connection", failingCheck("connection refused"))
	mustRegister(t, m, "resource-controllers", failingCheck("stuck"))
	srv := newHealthServer(t, m)

	expectProbe(t, srv, "/readyz?exclude=cluster-connection&exclude=resource-controllers", http.StatusOK, "ok")
	expectProbe(t, srv, "/readyz?exclude=cluster-connection&exclude=resource-controllers&exclude=nope&verbose", http.StatusOK,
		"[+]cluster-connection excluded: ok\n"+
			"[+]kcp-connection ok\n"+
			"[+]resource-controllers excluded: ok\n"+
			"warn: some health checks cannot be excluded: no matches for \"nope\"\n"+
			"readyz check passed\n")
	// Excluding an unknown name alone changes nothing.
	expectProbe(t, srv, "/readyz?exclude=nope&exclude=cluster-connection", http.StatusInternalServerError,
		"[+]cluster-connection excluded: ok\n"+
			"[+]kcp-connection ok\n"+
			"[-]resource-controllers failed: reason withheld\n"+
			"warn: some health checks cannot be excluded: no matches for \"nope\"\n"+
			"readyz check failed\n")
}

func TestHealthPerCheckPaths(t *testing.T) {
	m := NewComponentHealthManager("syncer")
	mustRegister(t, m, "kcp-connection", healthyCheck)
	mustRegister(t, m, "cluster-connection", failingCheck("connection refused"))
	mustRegister(t, m, "resource-controllers", healthyCheck, ForLiveness())
	mustRegister(t, m, "informers-synced", healthyCheck, ReadinessOnly())
	srv := newHealthServer(t, m)

	tests := []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/readyz/kcp-connection", http.StatusOK, "ok"},
		{"/healthz/kcp-connection", http.StatusOK, "ok"},
		{"/readyz/cluster-connection", http.StatusInternalServerError, "[-]cluster-connection failed: connection refused\n"},
		{"/livez/resource-controllers", http.StatusOK, "ok"},
		{"/readyz/informers-synced", http.StatusOK, "ok"},
		{"/readyz/missing", http.StatusNotFound, ""},
		{"/livez/cluster-connection", http.StatusNotFound, ""},
		{"/healthz/informers-synced", http.StatusNotFound, ""},
		{"/readyz/kcp-connection/extra", http.StatusNotFound, ""},
		{"/readyz/", http.StatusNotFound, ""},
		{"/readyzfoo", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, body := probe(t, srv, tt.path)
			if code != tt.wantCode {
				t.Errorf("status = %d, want %d (body %q)", code, tt.wantCode, body)
			}
			if tt.wantBody != "" && body != tt.wantBody {
				t.Errorf("body = %q, want %q", body, tt.wantBody)
			}
		})
	}
}

func TestHealthCheckTimeout(t *testing.T) {
	// A check that never returns on its own: it ignores ctx entirely and is
	// only released when the test ends.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })

	m := NewComponentHealthManager("syncer", WithDefaultCheckTimeout(50*time.Millisecond))
	mustRegister(t, m, "kcp-connection", func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	mustRegister(t, m, "cluster-connection", func(context.Context) error {
		<-release
		return nil
	}, WithCheckTimeout(20*time.Millisecond))
	mustRegister(t, m, "resource-controllers", healthyCheck)
	srv := newHealthServer(t, m)

	expectProbe(t, srv, "/readyz?verbose", http.StatusInternalServerError,
		"[-]cluster-connection failed: check timed out after 20ms\n"+
			"[-]kcp-connection failed: check timed out after 50ms\n"+
			"[+]resource-controllers ok\n"+
			"readyz check failed\n")
	expectProbe(t, srv, "/readyz/kcp-connection", http.StatusInternalServerError,
		"[-]kcp-connection failed: check timed out after 50ms\n")
}

// rendezvousCheck returns a check that waits until n checks have started:
// run one after the other instead of concurrently, the first times out.
func rendezvousCheck(n int) HealthCheck {
	var started sync.WaitGroup
	started.Add(n)
	allStarted := make(chan struct{})
	go func() { started.Wait(); close(allStarted) }()
	return func(ctx context.Context) error {
		started.Done()
		select {
		case <-allStarted:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func TestHealthChecksRunConcurrently(t *testing.T) {
	m := NewComponentHealthManager("syncer")
	rendezvous := rendezvousCheck(2)
	mustRegister(t, m, "a", rendezvous)
	mustRegister(t, m, "b", rendezvous)

	if report := m.Status(t.Context()); !report.Healthy {
		t.Fatalf("Status = %+v, want healthy", report)
	}
}

func TestHealthEndpointChecksRunConcurrently(t *testing.T) {
	// The healthz library runs the checks of a request one after the other;
	// the wrapper evaluates them up front, concurrently.
	m := NewComponentHealthManager("syncer", WithDefaultCheckTimeout(time.Second))
	rendezvous := rendezvousCheck(2)
	mustRegister(t, m, "a", rendezvous)
	mustRegister(t, m, "b", rendezvous)
	srv := newHealthServer(t, m)

	expectProbe(t, srv, "/readyz?verbose", http.StatusOK, "[+]a ok\n[+]b ok\nreadyz check passed\n")
}

func TestHealthEndpointWithoutChecks(t *testing.T) {
	// As in Kubernetes, an endpoint without checks is served by the
	// library's ping check, so /livez stays meaningful for the syncer, whose
	// checks are all readiness-only.
	m := NewComponentHealthManager("syncer")
	mustRegister(t, m, "kcp-connection", failingCheck("connection refused"), ReadinessOnly())
	srv := newHealthServer(t, m)

	expectProbe(t, srv, "/livez", http.StatusOK, "ok")
	expectProbe(t, srv, "/livez?verbose", http.StatusOK, "[+]ping ok\nlivez check passed\n")
	expectProbe(t, srv, "/livez/ping", http.StatusOK, "ok")
	expectProbe(t, srv, "/readyz?exclude=kcp-connection", http.StatusOK, "ok")
}

func TestHealthPanickingCheck(t *testing.T) {
	m := NewComponentHealthManager("syncer")
	mustRegister(t, m, "resource-controllers", func(context.Context) error { panic("nil informer") })
	srv := newHealthServer(t, m)
	expectProbe(t, srv, "/readyz/resource-controllers", http.StatusInternalServerError,
		"[-]resource-controllers failed: check panicked: nil informer\n")
}

func TestHealthPushStyle(t *testing.T) {
	m := NewComponentHealthManager("syncer")
	mustRegister(t, m, "kcp-connection", healthyCheck)
	srv := newHealthServer(t, m)

	// An unknown name becomes a push-style component.
	m.SetComponentStatus("heartbeat", nil)
	expectProbe(t, srv, "/readyz/heartbeat", http.StatusOK, "ok")
	m.SetComponentStatus("heartbeat", errors.New("last heartbeat 2m ago"))
	expectProbe(t, srv, "/readyz?verbose", http.StatusInternalServerError,
		"[-]heartbeat failed: last heartbeat 2m ago\n[+]kcp-connection ok\nreadyz check failed\n")
	m.SetComponentStatus("heartbeat", nil)
	expectProbe(t, srv, "/readyz", http.StatusOK, "ok")

	// A pre-declared push-style component gates readiness until reported.
	mustRegister(t, m, "initial-sync", nil, ReadinessOnly())
	expectProbe(t, srv, "/readyz/initial-sync", http.StatusInternalServerError,
		"[-]initial-sync failed: no status reported yet\n")
	expectProbe(t, srv, "/healthz", http.StatusOK, "ok")
	m.SetComponentStatus("initial-sync", nil)
	expectProbe(t, srv, "/readyz", http.StatusOK, "ok")

	// A pushed error fails a polled component even while its check passes.
	m.SetComponentStatus("kcp-connection", errors.New("watch closed"))
	expectProbe(t, srv, "/readyz/kcp-connection", http.StatusInternalServerError,
		"[-]kcp-connection failed: watch closed\n")
	m.SetComponentStatus("kcp-connection", nil)
	expectProbe(t, srv, "/readyz/kcp-connection", http.StatusOK, "ok")

	// Invalid names are ignored rather than creating unreachable components.
	m.SetComponentStatus("bad/name", nil)
	if got := len(m.Status(t.Context()).Components); got != 3 {
		t.Errorf("components = %d, want 3", got)
	}
}

func TestHealthStatusReport(t *testing.T) {
	m := NewComponentHealthManager("syncer")
	cluster := &toggleCheck{}
	cluster.failing.Store(true)
	mustRegister(t, m, "kcp-connection", healthyCheck)
	mustRegister(t, m, "cluster-connection", cluster.check)
	mustRegister(t, m, "resource-controllers", healthyCheck, ForLiveness())

	first := m.Status(t.Context())
	if first.Name != "syncer" || first.Healthy {
		t.Fatalf("report = %+v, want unhealthy report for syncer", first)
	}
	var names []string
	for _, c := range first.Components {
		names = append(names, c.Name)
		if c.LastChecked.IsZero() || c.LastTransition.IsZero() {
			t.Errorf("%s: LastChecked/LastTransition not set", c.Name)
		}
	}
	if got := strings.Join(names, ","); got != "cluster-connection,kcp-connection,resource-controllers" {
		t.Errorf("components = %s, want sorted by name", got)
	}
	failed := first.Components[0]
	if failed.Healthy || failed.Message != "connection refused" || failed.Liveness || !failed.Readiness {
		t.Errorf("cluster-connection = %+v", failed)
	}
	if rc := first.Components[2]; !rc.Healthy || rc.Message != "ok" || !rc.Liveness || !rc.Readiness {
		t.Errorf("resource-controllers = %+v", rc)
	}

	// Without a change of state the transition time is kept.
	second := m.Status(t.Context())
	if !second.Components[0].LastTransition.Equal(failed.LastTransition) {
		t.Errorf("LastTransition moved without a transition: %v -> %v", failed.LastTransition, second.Components[0].LastTransition)
	}
	if second.Components[0].LastChecked.Before(failed.LastChecked) {
		t.Error("LastChecked went backwards")
	}

	cluster.failing.Store(false)
	third := m.Status(t.Context())
	if !third.Healthy {
		t.Fatalf("report = %+v, want healthy", third)
	}
	if recovered := third.Components[0]; recovered.LastTransition.Before(second.Components[0].LastChecked) {
		t.Errorf("LastTransition %v not updated on recovery (previous check %v)", recovered.LastTransition, second.Components[0].LastChecked)
	}
}

func TestHealthRegisterComponentErrors(t *testing.T) {
	m := NewComponentHealthManager("syncer")
	mustRegister(t, m, "kcp-connection", healthyCheck)
	for _, name := range []string{"kcp-connection", "", "a/b", "has space", "new\nline"} {
		if err := m.RegisterComponent(name, healthyCheck); err == nil {
			t.Errorf("RegisterComponent(%q) succeeded, want an error", name)
		}
	}
	if !m.UnregisterComponent("kcp-connection") || m.UnregisterComponent("kcp-connection") {
		t.Error("UnregisterComponent must report whether the component existed")
	}
	mustRegister(t, m, "kcp-connection", healthyCheck)
}

// expectHealthGauge compares HealthComponentMetric in reg with the given
// series in the exposition format.
func expectHealthGauge(t *testing.T, reg *prometheus.Registry, series ...string) {
	t.Helper()
	want := "# HELP tmc_component_health Whether a TMC component health check passes (1) or fails (0).\n" +
		"# TYPE tmc_component_health gauge\n" + strings.Join(series, "\n") + "\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), HealthComponentMetric); err != nil {
		t.Error(err)
	}
}

func TestHealthMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	syncer := NewComponentHealthManager("syncer", WithHealthRegisterer(reg))
	controller := NewComponentHealthManager("tmc-controller", WithHealthRegisterer(reg))
	cluster := &toggleCheck{}
	mustRegister(t, syncer, "cluster-connection", cluster.check)
	mustRegister(t, controller, "kcp-connection", healthyCheck)
	srv := newHealthServer(t, syncer)

	syncer.Status(t.Context())
	controller.Status(t.Context())
	expectHealthGauge(t, reg,
		`tmc_component_health{check="cluster-connection",component="syncer"} 1`,
		`tmc_component_health{check="kcp-connection",component="tmc-controller"} 1`)

	cluster.failing.Store(true)
	probe(t, srv, "/readyz") // probes update the metric too
	syncer.SetComponentStatus("heartbeat", errors.New("late"))
	controller.UnregisterComponent("kcp-connection")
	expectHealthGauge(t, reg,
		`tmc_component_health{check="cluster-connection",component="syncer"} 0`,
		`tmc_component_health{check="heartbeat",component="syncer"} 0`)
}

func TestHealthConcurrentUse(t *testing.T) {
	m := NewComponentHealthManager("syncer", WithHealthRegisterer(prometheus.NewRegistry()))
	cluster := &toggleCheck{}
	mustRegister(t, m, "cluster-connection", cluster.check)
	mustRegister(t, m, "resource-controllers", healthyCheck, ForLiveness())
	srv := newHealthServer(t, m)

	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 20 {
				cluster.failing.Store(j%2 == 0)
				m.SetComponentStatus(fmt.Sprintf("pushed-%d", i), nil)
				if j == 10 {
					_ = m.RegisterComponent(fmt.Sprintf("late-%d", i), healthyCheck)
				}
				m.Status(t.Context())
			}
		})
		wg.Go(func() {
			for _, path := range []string{"/readyz?verbose", "/livez", "/healthz", "/readyz/cluster-connection"} {
				for range 5 {
					code, _ := probe(t, srv, path)
					if code != http.StatusOK && code != http.StatusInternalServerError {
						t.Errorf("GET %s = %d", path, code)
					}
				}
			}
		})
	}
	wg.Wait()
	expectProbe(t, srv, "/livez", http.StatusOK, "ok")
}
