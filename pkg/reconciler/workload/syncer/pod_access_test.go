package syncer

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// downstreamRecorder is a fake downstream apiserver recording what reaches it.
type downstreamRecorder struct {
	mu       sync.Mutex
	requests []*http.Request
}

func (d *downstreamRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	d.mu.Lock()
	d.requests = append(d.requests, req.Clone(req.Context()))
	d.mu.Unlock()
	_, _ = io.WriteString(w, "log line\n")
}

func (d *downstreamRecorder) seen() []*http.Request {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*http.Request(nil), d.requests...)
}

func upsyncedPod(namespace, name string, upsynced bool) *corev1.Pod {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{}}}
	if upsynced {
		pod.Labels[testStateKey] = workloadv1alpha1.ResourceStateUpsync
	}
	return pod
}

func TestPodAccessHandler(t *testing.T) {
	owned := ownedNamespace(t)
	// The namespace our target would use for "other-target", holding another target's
	// locator; and the one for "victim", holding a locator that hashes elsewhere (forged).
	otherTargetName := downstreamNamespaceFor(t, testWorkspace, "other-target")
	otherTarget := downstreamNamespace(t, otherTargetName,
		workloadv1alpha1.NewNamespaceLocator(testLocationCluster, "west", "west-uid", testClusterName(testWorkspace), "other-target"))
	forgedName := downstreamNamespaceFor(t, testWorkspace, "victim")
	forged := downstreamNamespace(t, forgedName, testLocator(testWorkspace, "attacker"))
	env := newTestEnv(t, testObjects{namespaces: []*corev1.Namespace{owned, otherTarget, forged}})

	downstream := &downstreamRecorder{}
	downstreamServer := httptest.NewServer(downstream)
	t.Cleanup(downstreamServer.Close)
	downstreamKube := fake.NewClientset(
		upsyncedPod(owned.Name, "web-1", true),
		upsyncedPod(owned.Name, "plain", false),
		upsyncedPod(otherTargetName, "web-1", true),
		upsyncedPod(forgedName, "web-1", true),
	)
	handler, err := newPodAccessHandler(testStKey, env.namespaces.downstreamNamespaceOf, downstreamKube,
		&rest.Config{Host: downstreamServer.URL, BearerToken: "downstream-token"})
	if err != nil {
		t.Fatal(err)
	}
	workspace := testClusterName(testWorkspace)

	for _, tc := range []struct {
		name, method, path, workspace string
		wantCode                      int
		wantMessage                   string
	}{
		{"no workspace header", http.MethodGet, "/api/v1/namespaces/default/pods/web-1/log", "", http.StatusForbidden, "does not name its workspace"},
		{"another workspace", http.MethodGet, "/api/v1/namespaces/default/pods/web-1/log", testClusterName("root:org:team-b"), http.StatusNotFound, "not placed on this SyncTarget"},
		{"another target's namespace", http.MethodGet, "/api/v1/namespaces/other-target/pods/web-1/log", workspace, http.StatusNotFound, "not placed on this SyncTarget"},
		{"forged locator", http.MethodGet, "/api/v1/namespaces/victim/pods/web-1/log", workspace, http.StatusNotFound, "not placed on this SyncTarget"},
		{"pod not upsynced", http.MethodPost, "/api/v1/namespaces/default/pods/plain/exec", workspace, http.StatusForbidden, "not upsynced"},
		{"pod missing", http.MethodGet, "/api/v1/namespaces/default/pods/gone/log", workspace, http.StatusNotFound, "not found"},
		{"the pod itself", http.MethodGet, "/api/v1/namespaces/default/pods/web-1", workspace, http.StatusNotFound, "not served through the tunnel"},
		{"another subresource", http.MethodGet, "/api/v1/namespaces/default/pods/web-1/proxy", workspace, http.StatusNotFound, "not served through the tunnel"},
		{"another resource", http.MethodGet, "/api/v1/namespaces/default/secrets/web-1/log", workspace, http.StatusNotFound, "not served through the tunnel"},
		{"a write", http.MethodDelete, "/api/v1/namespaces/default/pods/web-1/log", workspace, http.StatusMethodNotAllowed, "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequestWithContext(t.Context(), tc.method, "http://tunnel"+tc.path, nil)
			if tc.workspace != "" {
				req.Header.Set(workloadv1alpha1.TunnelWorkspaceHeader, tc.workspace)
			}
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			var status metav1.Status
			if err := json.Unmarshal(rec.Body.Bytes(), &status); err != nil {
				t.Fatalf("answer %d %q is not a Status: %v", rec.Code, rec.Body.String(), err)
			}
			if rec.Code != tc.wantCode || int(status.Code) != tc.wantCode || status.Kind != "Status" || !strings.Contains(status.Message, tc.wantMessage) {
				t.Fatalf("answer %d %+v, want %d with %q", rec.Code, status, tc.wantCode, tc.wantMessage)
			}
		})
	}
	if seen := downstream.seen(); len(seen) != 0 {
		t.Fatalf("refused requests reached the downstream apiserver: %v", seen[0].URL)
	}

	req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "http://tunnel/api/v1/namespaces/default/pods/web-1/log?container=app&follow=true", nil)
	req.Header.Set(workloadv1alpha1.TunnelWorkspaceHeader, workspace)
	req.Header.Set("Impersonate-User", "system:admin")
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Body.String() != "log line\n" {
		t.Fatalf("valid log request answered %d %q", rec.Code, rec.Body.String())
	}
	seen := downstream.seen()
	if len(seen) != 1 {
		t.Fatalf("downstream saw %d requests, want 1", len(seen))
	}
	got := seen[0]
	if want := "/api/v1/namespaces/" + owned.Name + "/pods/web-1/log"; got.URL.Path != want || got.URL.RawQuery != "container=app&follow=true" {
		t.Errorf("downstream request %s?%s, want %s?container=app&follow=true", got.URL.Path, got.URL.RawQuery, want)
	}
	if got.Header.Get("Authorization") != "Bearer downstream-token" {
		t.Errorf("downstream credential %q, want the syncer's", got.Header.Get("Authorization"))
	}
	if got.Header.Get(workloadv1alpha1.TunnelWorkspaceHeader) != "" || got.Header.Get("Impersonate-User") != "" {
		t.Errorf("the server's headers went downstream: %v", got.Header)
	}
}
