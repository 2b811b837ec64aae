package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	fakediscovery "k8s.io/client-go/discovery/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	restfake "k8s.io/client-go/rest/fake"

	"github.com/tmc-dev/tmc/pkg/localenv"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	tmcfake "github.com/tmc-dev/tmc/sdk/client/clientset/versioned/fake"
)

func connectionRefused() error {
	return fmt.Errorf("failed to apply downstream configmaps: %w", &url.Error{
		Op:  "Patch",
		URL: "https://10.0.0.1:6443/api/v1/namespaces/kcp-abc/configmaps/web",
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)},
	})
}

func TestTMCIntegrationProcessNext(t *testing.T) {
	gr := configMapsGVR.GroupResource()
	tests := []struct {
		name         string
		err          error
		wantType     tmc.TMCErrorType
		wantRequeue  bool // soon, with the test's fast backoff
		wantFailures int  // consecutive failures the recovery manager remembers
	}{
		{
			name:         "optimistic-concurrency conflict",
			err:          fmt.Errorf("failed to add finalizer to upstream configmaps: %w", apierrors.NewConflict(gr, "web", errors.New("the object has been modified"))),
			wantType:     tmc.TMCErrorTypeResourceConflict,
			wantRequeue:  true,
			wantFailures: 1,
		},
		{
			name:         "forbidden by a ResourceQuota",
			err:          apierrors.NewForbidden(gr, "web", errors.New("exceeded quota: compute, requested: count/configmaps=1, used: count/configmaps=10, limited: count/configmaps=10")),
			wantType:     tmc.TMCErrorTypeQuotaExceeded,
			wantRequeue:  true,
			wantFailures: 1,
		},
		{
			name:         "connection refused",
			err:          connectionRefused(),
			wantType:     tmc.TMCErrorTypeClusterUnreachable,
			wantRequeue:  true,
			wantFailures: 1,
		},
		{
			name:         "forbidden by RBAC: slow retry",
			err:          apierrors.NewForbidden(gr, "web", errors.New(`User "syncer" cannot patch resource "configmaps"`)),
			wantType:     tmc.TMCErrorTypeForbidden,
			wantFailures: 1,
		},
		{
			name:     "not found: no retry",
			err:      apierrors.NewNotFound(gr, "web"),
			wantType: tmc.TMCErrorTypeNotFound,
		},
		{
			name:         "already a TMC error",
			err:          tmc.NewTMCError(tmc.TMCErrorTypeNamespaceCollision, errors.New("taken"), "namespace collision", tmc.TMCErrorSeverityHigh),
			wantType:     tmc.TMCErrorTypeNamespaceCollision,
			wantFailures: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, testObjects{})
			if got := tmc.Classify(tc.err).Type; got != tc.wantType {
				t.Fatalf("test error classified as %s, want %s", got, tc.wantType)
			}

			fail := true
			specQueue := env.specQueue(func(context.Context, specKey) (time.Duration, error) {
				if fail {
					return 0, tc.err
				}
				return 0, nil
			})
			specQueue.Add(webKey)
			if !specQueue.ProcessNext(t.Context()) {
				t.Fatal("ProcessNext stopped")
			}

			if got := testutil.ToFloat64(env.metrics.errors.WithLabelValues(testSyncTargetName, string(tc.wantType))); got != 1 {
				t.Errorf("got %v errors of type %s counted, want 1", got, tc.wantType)
			}
			if got := scrapeSample(t, env.metrics.tmc.Handler(), MetricErrors, `cluster="east"`, fmt.Sprintf("type=%q", tc.wantType)); got != "1" {
				t.Errorf("/metrics serves %s{type=%q} = %q, want 1", MetricErrors, tc.wantType, got)
			}
			summary := env.errors.summary()
			if summary == nil || summary.Counts[string(tc.wantType)] != 1 || len(summary.Recent) != 1 || summary.Recent[0].Type != string(tc.wantType) {
				t.Errorf("got error summary %+v, want one %s", summary, tc.wantType)
			}
			if got := env.errors.failingCounts(); len(got) != 1 || got[tc.wantType] != 1 {
				t.Errorf("got failing keys %v, want one %s", got, tc.wantType)
			}
			if got := specQueue.Failures(webKey); got != tc.wantFailures {
				t.Errorf("the queue remembers %d failures, want %d", got, tc.wantFailures)
			}

			if !tc.wantRequeue {
				if n := specQueue.Len(); n != 0 {
					t.Errorf("the key was re-queued at once (queue length %d)", n)
				}
				return
			}
			if n := specQueue.Len(); n != 0 {
				t.Errorf("the key must wait for its backoff, but the queue length is %d", n)
			}
			waitForQueueLength(t, specQueue.Len, 1)
			fail = false
			specQueue.ProcessNext(t.Context())
			if got := env.errors.failingCounts(); len(got) != 0 {
				t.Errorf("got failing keys %v after a success, want none", got)
			}
			if got := specQueue.Failures(webKey); got != 0 {
				t.Errorf("the queue remembers %d failures after a success, want 0", got)
			}
		})
	}
}

func TestTMCIntegrationProcessNextRequeueAfterIsNotAFailure(t *testing.T) {
	env := newTestEnv(t, testObjects{})
	specQueue := env.specQueue(func(context.Context, specKey) (time.Duration, error) { return 10 * time.Millisecond, nil })
	specQueue.Add(webKey)
	specQueue.ProcessNext(t.Context())
	if got := env.errors.summary(); got != nil {
		t.Errorf("got error summary %+v, want none", got)
	}
	if got := env.errors.failingCounts(); len(got) != 0 {
		t.Errorf("got failing keys %v, want none", got)
	}
	waitForQueueLength(t, specQueue.Len, 1)
}

// A failing object backs off on its own: the next key is processed at once, and the failing
// one comes back after its delay.
func TestTMCIntegrationProcessNextFailingKeyDoesNotBlockOthers(t *testing.T) {
	env := newTestEnv(t, testObjects{})
	bad := webKey
	good := specKey{workspace: testWorkspace, gvr: configMapsGVR, upstreamNamespace: testNamespace, name: "good"}
	var mu sync.Mutex
	var processed []string
	specQueue := env.specQueue(func(_ context.Context, k specKey) (time.Duration, error) {
		mu.Lock()
		defer mu.Unlock()
		processed = append(processed, k.name)
		if k == bad {
			return 0, connectionRefused()
		}
		return 0, nil
	})
	specQueue.Add(bad)
	specQueue.Add(good)
	specQueue.ProcessNext(t.Context())
	specQueue.ProcessNext(t.Context())
	waitForQueueLength(t, specQueue.Len, 1)
	specQueue.ProcessNext(t.Context())
	if want := []string{"web", "good", "web"}; strings.Join(processed, ",") != strings.Join(want, ",") {
		t.Errorf("processed %v, want %v", processed, want)
	}
	if got := env.errors.failingCounts()[tmc.TMCErrorTypeClusterUnreachable]; got != 1 {
		t.Errorf("got %d keys failing with ClusterUnreachable, want 1", got)
	}
}

func waitForQueueLength(t *testing.T, length func() int, want int) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return length() == want, nil
	})
	if err != nil {
		t.Fatalf("queue length is %d, want %d: %v", length(), want, err)
	}
}

// scrapeSample serves /metrics and returns the value of the sample of metric name whose
// labels include every one of labels (`name="value"`), or "" if there is none.
func scrapeSample(t *testing.T, h http.Handler, name string, labels ...string) string {
	t.Helper()
	code, body := get(t, h, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	metrics, err := localenv.ParseMetrics(strings.NewReader(body))
	if err != nil {
		t.Fatalf("invalid /metrics: %v", err)
	}
	match := map[string]string{}
	for _, l := range labels {
		k, quoted, _ := strings.Cut(l, "=")
		v, err := strconv.Unquote(quoted)
		if err != nil {
			t.Fatalf("label %s: %v", l, err)
		}
		match[k] = v
	}
	for _, sample := range metrics.Samples(name) {
		if sample.Matches(match) {
			return strconv.FormatFloat(sample.Value, 'g', -1, 64)
		}
	}
	return ""
}

func TestTMCIntegrationHealthResourceControllers(t *testing.T) {
	env := newTestEnv(t, testObjects{})
	checks := env.healthChecks(nil)
	env.namespacesSynced.Store(false)
	env.informersSynced.Store(false)
	check := func(want string) {
		t.Helper()
		err := checks.checkResourceControllers(t.Context())
		switch {
		case want == "" && err != nil:
			t.Errorf("unexpected error: %v", err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("got %v, want an error containing %q", err, want)
		}
	}
	check("controllers not started")
	env.started.Store(true)
	check("waiting for caches to sync: downstream namespaces")
	env.namespacesSynced.Store(true)
	check("waiting for caches to sync")
	env.informersSynced.Store(true)
	check("")
}

// readyzClientset answers the downstream /readyz with body, through a fake REST client.
type readyzClientset struct {
	*kubefake.Clientset
	discovery *readyzDiscovery
}

func (c *readyzClientset) Discovery() discovery.DiscoveryInterfaces { return c.discovery }

type readyzDiscovery struct {
	*fakediscovery.FakeDiscovery
	body string
}

func (d *readyzDiscovery) RESTClient() rest.Interface {
	return &restfake.RESTClient{
		NegotiatedSerializer: scheme.Codecs.WithoutConversion(),
		Client: restfake.CreateHTTPClient(func(req *http.Request) (*http.Response, error) {
			if req.URL.Path != "/readyz" {
				return &http.Response{StatusCode: http.StatusNotFound, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("not found"))}, nil
			}
			return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(d.body))}, nil
		}),
	}
}

func TestTMCIntegrationHealthEndpoints(t *testing.T) {
	tests := []struct {
		name          string
		started       bool
		clusterReadyz string
		noSyncTarget  bool
		wantCode      int
		wantLines     []string
	}{
		{
			name:          "running and connected",
			started:       true,
			clusterReadyz: "ok",
			wantCode:      http.StatusOK,
			wantLines:     []string{"[+]cluster-connection ok", "[+]kcp-connection ok", "[+]resource-controllers ok", "readyz check passed"},
		},
		{
			name:          "controllers not started",
			clusterReadyz: "ok",
			wantCode:      http.StatusInternalServerError,
			wantLines:     []string{"[+]cluster-connection ok", "[+]kcp-connection ok", "[-]resource-controllers failed: controllers not started"},
		},
		{
			name:          "physical cluster not ready",
			started:       true,
			clusterReadyz: "[-]etcd failed",
			wantCode:      http.StatusInternalServerError,
			wantLines:     []string{"[-]cluster-connection failed: physical cluster not ready", "[+]kcp-connection ok", "[+]resource-controllers ok"},
		},
		{
			name:          "SyncTarget unreadable",
			started:       true,
			clusterReadyz: "ok",
			noSyncTarget:  true,
			wantCode:      http.StatusInternalServerError,
			wantLines:     []string{"[+]cluster-connection ok", "[-]kcp-connection failed: cannot read SyncTarget east", "[+]resource-controllers ok"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, testObjects{})
			env.started.Store(tc.started)
			downstreamKube := &readyzClientset{
				Clientset: env.downstreamKube,
				discovery: &readyzDiscovery{FakeDiscovery: env.downstreamKube.Discovery().(*fakediscovery.FakeDiscovery), body: tc.clusterReadyz},
			}
			if tc.noSyncTarget {
				env.locationClient = tmcfake.NewSimpleClientset()
			}
			health, err := env.healthChecks(downstreamKube.Discovery().RESTClient()).register(env.metrics.tmc)
			if err != nil {
				t.Fatal(err)
			}

			code, body := get(t, health.Handler(), "/readyz?verbose")
			if code != tc.wantCode {
				t.Errorf("GET /readyz?verbose: got %d, want %d\n%s", code, tc.wantCode, body)
			}
			for _, line := range tc.wantLines {
				if !strings.Contains(body, line) {
					t.Errorf("GET /readyz?verbose does not contain %q:\n%s", line, body)
				}
			}
			// Readiness-only: a syncer cut off from either side is not restarted.
			if code, body := get(t, health.Handler(), "/livez"); code != http.StatusOK {
				t.Errorf("GET /livez: got %d, want 200\n%s", code, body)
			}
		})
	}
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}
