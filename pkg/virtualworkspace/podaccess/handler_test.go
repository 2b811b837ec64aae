package podaccess

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/client-go/rest"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// fixture is the view in front of a fake upstream, with a fake syncer behind a fake dialer.
type fixture struct {
	upstream *fakeUpstream
	syncer   *fakeSyncer
	dialer   *fakeDialer
	metrics  *Metrics
	handler  http.Handler
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{upstream: &fakeUpstream{}, syncer: &fakeSyncer{}}
	upstreamSrv := httptest.NewServer(f.upstream)
	t.Cleanup(upstreamSrv.Close)
	syncerSrv := httptest.NewServer(f.syncer)
	t.Cleanup(syncerSrv.Close)
	f.dialer = &fakeDialer{address: syncerSrv.Listener.Addr().String(), connected: map[string]bool{connectedKey: true}}
	var err error
	if f.metrics, err = NewMetrics(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	f.handler, err = NewHandler(Options{Upstream: &rest.Config{Host: upstreamSrv.URL, BearerToken: "privileged"}, Tunnels: f.dialer, Metrics: f.metrics})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

const base = workloadv1alpha1.PodAccessVirtualWorkspacePrefix + "clusters/c1"

func (f *fixture) do(t *testing.T, method, path, token string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, r)
	return w
}

// statusMessage decodes a Kubernetes Status answer's message.
func statusMessage(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	st := struct {
		Kind, Message string
	}{}
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || st.Kind != "Status" {
		t.Fatalf("answer %q is not a Status: %v", w.Body, err)
	}
	return st.Message
}

// Every refusal is a Kubernetes Status, and nothing reaches a tunnel before the caller is
// authorised in the workspace and the pod is upsynced by a target with a tunnel open.
func TestPodSubresourceRefusals(t *testing.T) {
	tests := []struct {
		name, method, path, token string
		wantCode                  int
		wantMessage               string
	}{
		{name: "no token", method: http.MethodGet, path: base + "/api/v1/namespaces/demo/pods/web/log", wantCode: 401},
		{name: "unknown token", method: http.MethodGet, path: base + "/api/v1/namespaces/demo/pods/web/log", token: "mallory", wantCode: 401},
		{name: "log denied", method: http.MethodGet, path: base + "/api/v1/namespaces/demo/pods/web/log", token: "bob", wantCode: 403, wantMessage: `may not get pods/log`},
		{name: "exec denied to a user who may read logs", method: http.MethodPost, path: base + "/api/v1/namespaces/demo/pods/web/exec?command=sh", token: "carol", wantCode: 403, wantMessage: `may not create pods/exec`},
		{name: "portforward denied", method: http.MethodPost, path: base + "/api/v1/namespaces/demo/pods/web/portforward", token: "bob", wantCode: 403},
		{name: "attach denied", method: http.MethodPost, path: base + "/api/v1/namespaces/demo/pods/web/attach", token: "bob", wantCode: 403},
		{name: "no such pod", method: http.MethodGet, path: base + "/api/v1/namespaces/demo/pods/gone/log", token: "alice", wantCode: 404},
		{name: "pod synced, not upsynced", method: http.MethodGet, path: base + "/api/v1/namespaces/demo/pods/synced/log", token: "alice", wantCode: 404, wantMessage: "pod demo/synced is not upsynced by any SyncTarget"},
		{name: "no tunnel", method: http.MethodGet, path: base + "/api/v1/namespaces/demo/pods/offline/log", token: "alice", wantCode: 503, wantMessage: "SyncTarget " + disconnectedKey + ", whose syncer has no tunnel open"},
		{name: "pod without its workspace", method: http.MethodGet, path: base + "/api/v1/namespaces/demo/pods/nocluster/log", token: "alice", wantCode: 500, wantMessage: "kcp.io/cluster"},
		{name: "delete", method: http.MethodDelete, path: base + "/api/v1/namespaces/demo/pods/web/exec", token: "alice", wantCode: 405},
		{name: "every workspace", method: http.MethodGet, path: workloadv1alpha1.PodAccessVirtualWorkspacePrefix + "clusters/*/api/v1/namespaces/demo/pods/web/log", token: "alice", wantCode: 404},
		{name: "dot segment", method: http.MethodGet, path: base + "/../c2/api/v1/namespaces/demo/pods/web/log", token: "alice", wantCode: 404},
		{name: "not the view", method: http.MethodGet, path: "/api/v1/namespaces/demo/pods/web/log", token: "alice", wantCode: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			w := f.do(t, tt.method, tt.path, tt.token, nil)
			if w.Code != tt.wantCode {
				t.Fatalf("code %d (%s), want %d", w.Code, w.Body, tt.wantCode)
			}
			if msg := statusMessage(t, w); !strings.Contains(msg, tt.wantMessage) {
				t.Errorf("message %q, want it to contain %q", msg, tt.wantMessage)
			}
			if dialed := f.dialer.dials(); len(dialed) != 0 {
				t.Errorf("dialed the tunnels of %v, want none", dialed)
			}
			if len(f.upstream.forwarded) != 0 {
				t.Errorf("forwarded %s to the workspace, want nothing", f.upstream.forwarded[0].URL)
			}
		})
	}
}

// The SubjectAccessReview is in the request's workspace, for the pod's subresource.
func TestPodSubresourceReviewAttributes(t *testing.T) {
	f := newFixture(t)
	if w := f.do(t, http.MethodPost, base+"/api/v1/namespaces/demo/pods/web/exec?command=ls", "alice", nil); w.Code != http.StatusOK {
		t.Fatalf("code %d (%s), want 200", w.Code, w.Body)
	}
	if len(f.upstream.reviews) != 1 {
		t.Fatalf("%d access reviews, want 1", len(f.upstream.reviews))
	}
	attrs := f.upstream.reviews[0]["spec"].(map[string]any)["resourceAttributes"].(map[string]any)
	want := map[string]any{"verb": "create", "resource": "pods", "subresource": "exec", "namespace": "demo", "name": "web", "version": "v1"}
	for k, v := range want {
		if attrs[k] != v {
			t.Errorf("review %s = %v, want %v", k, attrs[k], v)
		}
	}
}

// A log request reaches the first connected target's tunnel at the pod's path, with the
// query kept, the workspace named and no credential of the caller.
func TestPodLogThroughTunnel(t *testing.T) {
	f := newFixture(t)
	header := http.Header{"Impersonate-User": {"admin"}, "Impersonate-Group": {"system:masters"}, "Cookie": {"session=1"}, "X-Tmc-Workspace": {"other"}}
	w := f.do(t, http.MethodGet, base+"/api/v1/namespaces/demo/pods/web/log?container=app&follow=true&tailLines=2", "carol", header)
	if w.Code != http.StatusOK || w.Body.String() != "line 1\nline 2\n" {
		t.Fatalf("code %d body %q, want 200 and the log", w.Code, w.Body)
	}
	if dialed := f.dialer.dials(); len(dialed) != 1 || dialed[0] != connectedKey {
		t.Fatalf("dialed %v, want only %s", dialed, connectedKey)
	}
	if len(f.syncer.received) != 1 {
		t.Fatalf("the syncer received %d requests, want 1", len(f.syncer.received))
	}
	got := f.syncer.received[0]
	if got.URL.Path != "/api/v1/namespaces/demo/pods/web/log" {
		t.Errorf("path %s, want the pod's log", got.URL.Path)
	}
	if q := got.URL.Query(); q.Get("container") != "app" || q.Get("follow") != "true" || q.Get("tailLines") != "2" {
		t.Errorf("query %q, want the caller's", got.URL.RawQuery)
	}
	if ws := got.Header.Values(workloadv1alpha1.TunnelWorkspaceHeader); len(ws) != 1 || ws[0] != "lc-c1" {
		t.Errorf("%s %v, want the pod's logical cluster lc-c1 (the path names its workspace by path)", workloadv1alpha1.TunnelWorkspaceHeader, ws)
	}
	for _, h := range []string{"Authorization", "Impersonate-User", "Impersonate-Group", "Cookie"} {
		if v := got.Header.Get(h); v != "" {
			t.Errorf("%s %q went through the tunnel", h, v)
		}
	}
	if n := testutil.ToFloat64(f.metrics.requests.WithLabelValues("log", "200")); n != 1 {
		t.Errorf("pod requests {log,200} = %v, want 1", n)
	}
}

// An upgrade (exec over SPDY) passes through: the 101 comes back and bytes flow both ways.
func TestPodExecUpgradePassesThrough(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.handler)
	defer srv.Close()
	conn, br, resp := rawUpgrade(t, srv.Listener.Addr().String(), base+"/api/v1/namespaces/demo/pods/web/exec?command=echo&command=ok&stdout=true", "alice")
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "SPDY/3.1" {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("answer %s %v (%s), want 101 to SPDY/3.1", resp.Status, resp.Header, body)
	}
	if _, err := io.WriteString(conn, "ping\n"); err != nil {
		t.Fatal(err)
	}
	line, err := br.ReadString('\n')
	if err != nil || line != "echo ping\n" {
		t.Fatalf("read %q (%v), want the echo", line, err)
	}
	got := f.syncer.received[0]
	if got.Header.Get("X-Stream-Protocol-Version") != "v4.channel.k8s.io" || got.Method != http.MethodPost {
		t.Errorf("the syncer got %s with %v, want the caller's method and stream protocol", got.Method, got.Header)
	}
}

// Everything else goes to the workspace with the caller's own token, never the server's.
func TestForwardedWithCallersToken(t *testing.T) {
	f := newFixture(t)
	w := f.do(t, http.MethodGet, base+"/api/v1/namespaces/demo/pods?labelSelector=app%3Dweb", "bob", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("code %d (%s), want 200", w.Code, w.Body)
	}
	if len(f.upstream.forwarded) != 1 {
		t.Fatalf("forwarded %d requests, want 1", len(f.upstream.forwarded))
	}
	got := f.upstream.forwarded[0]
	if got.URL.Path != "/clusters/c1/api/v1/namespaces/demo/pods" || got.URL.Query().Get("labelSelector") != "app=web" {
		t.Errorf("forwarded to %s, want the workspace's pods with the query", got.URL)
	}
	if a := got.Header.Get("Authorization"); a != "Bearer bob" {
		t.Errorf("forwarded with Authorization %q, want the caller's", a)
	}
	if len(f.upstream.reviews) != 0 || len(f.dialer.dials()) != 0 {
		t.Errorf("a forwarded request was reviewed or tunnelled")
	}
	if w := f.do(t, http.MethodGet, base+"/api", "", nil); w.Code != http.StatusUnauthorized {
		t.Errorf("no token: code %d, want 401", w.Code)
	}
	if len(f.upstream.forwarded) != 1 {
		t.Errorf("a request without a token was forwarded")
	}
}
