package syncer

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// fakeUpstream answers TokenReviews (token "good" is user "syncer"), SubjectAccessReviews
// (allowed for "syncer"), the SyncTarget east (uid u1) and records every other request.
type fakeUpstream struct {
	mu        sync.Mutex
	forwarded []*http.Request
}

func (f *fakeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/clusters/nowhere/"):
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`))
	case strings.HasSuffix(r.URL.Path, "/tokenreviews"):
		review := map[string]any{}
		_ = json.NewDecoder(r.Body).Decode(&review)
		spec, _ := review["spec"].(map[string]any)
		review["status"] = map[string]any{"authenticated": spec["token"] == "good", "user": map[string]any{"username": "syncer"}}
		_ = json.NewEncoder(w).Encode(review)
	case strings.HasSuffix(r.URL.Path, "/subjectaccessreviews"):
		review := map[string]any{}
		_ = json.NewDecoder(r.Body).Decode(&review)
		spec, _ := review["spec"].(map[string]any)
		attrs, _ := spec["resourceAttributes"].(map[string]any)
		review["status"] = map[string]any{"allowed": spec["user"] == "syncer" && attrs["verb"] == "sync" && attrs["name"] == "east"}
		_ = json.NewEncoder(w).Encode(review)
	case r.URL.Path == "/clusters/loc/apis/workload.kcp.io/v1alpha1/synctargets/east":
		_ = json.NewEncoder(w).Encode(map[string]any{"metadata": map[string]any{"name": "east", "uid": "u1"}})
	default:
		f.mu.Lock()
		f.forwarded = append(f.forwarded, r.Clone(r.Context()))
		f.mu.Unlock()
		_, _ = w.Write([]byte(`{"kind":"List","items":[]}`))
	}
}

func TestHandlerRouting(t *testing.T) {
	upstream := &fakeUpstream{}
	srv := httptest.NewServer(upstream)
	defer srv.Close()
	h, err := NewHandler(Options{Upstream: &rest.Config{Host: srv.URL, BearerToken: "privileged"}})
	if err != nil {
		t.Fatal(err)
	}
	base := workloadv1alpha1.SyncerVirtualWorkspaceURL("", "loc", "east", "u1")
	key := workloadv1alpha1.ToSyncTargetKey("loc", "east")
	tests := []struct {
		name, method, path, token string
		wantCode                  int
		// wantForwarded is the path the upstream must see, "" for nothing forwarded.
		wantForwarded string
	}{
		{name: "wildcard list", method: http.MethodGet, path: base + "/clusters/*/api/v1/configmaps?labelSelector=app%3Dweb", token: "good", wantCode: 200, wantForwarded: "/clusters/*/api/v1/configmaps"},
		{name: "discovery of one workspace", method: http.MethodGet, path: base + "/clusters/c1/apis", token: "good", wantCode: 200, wantForwarded: "/clusters/c1/apis"},
		{name: "no token", method: http.MethodGet, path: base + "/clusters/*/api/v1/configmaps", wantCode: 401},
		{name: "bad token", method: http.MethodGet, path: base + "/clusters/*/api/v1/configmaps", token: "bad", wantCode: 401},
		{name: "other SyncTarget", method: http.MethodGet, path: workloadv1alpha1.SyncerVirtualWorkspaceURL("", "loc", "west", "u1") + "/clusters/*/api/v1/configmaps", token: "good", wantCode: 403},
		{name: "unknown location workspace", method: http.MethodGet, path: workloadv1alpha1.SyncerVirtualWorkspaceURL("", "nowhere", "east", "u1") + "/clusters/*/api/v1/configmaps", token: "good", wantCode: 401},
		{name: "wrong uid", method: http.MethodGet, path: workloadv1alpha1.SyncerVirtualWorkspaceURL("", "loc", "east", "u2") + "/clusters/*/api/v1/configmaps", token: "good", wantCode: 403},
		{name: "not the syncer view", method: http.MethodGet, path: "/api/v1/configmaps", token: "good", wantCode: 404},
		{name: "outside /clusters", method: http.MethodGet, path: base + "/api/v1/configmaps", token: "good", wantCode: 403},
		{name: "type outside the default set", method: http.MethodGet, path: base + "/clusters/*/api/v1/pods", token: "good", wantCode: 403},
		{name: "wildcard discovery", method: http.MethodGet, path: base + "/clusters/*/apis", token: "good", wantCode: 403},
		{name: "wildcard get", method: http.MethodGet, path: base + "/clusters/*/api/v1/namespaces/ns/configmaps/c", token: "good", wantCode: 403},
		{name: "delete", method: http.MethodDelete, path: base + "/clusters/c1/api/v1/namespaces/ns/configmaps/c", token: "good", wantCode: 403},
		{name: "create", method: http.MethodPost, path: base + "/clusters/c1/api/v1/namespaces/ns/configmaps", token: "good", wantCode: 403},
		{name: "other path", method: http.MethodGet, path: base + "/clusters/c1/healthz", token: "good", wantCode: 403},
		{name: "wildcard events", method: http.MethodPost, path: base + "/clusters/*/api/v1/namespaces/ns/events", token: "good", wantCode: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upstream.mu.Lock()
			upstream.forwarded = nil
			upstream.mu.Unlock()
			r := httptest.NewRequest(tt.method, tt.path, nil)
			if tt.token != "" {
				r.Header.Set("Authorization", "Bearer "+tt.token)
			}
			r.Header.Set("Impersonate-User", "admin")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.wantCode {
				t.Fatalf("code %d (%s), want %d", w.Code, w.Body, tt.wantCode)
			}
			upstream.mu.Lock()
			defer upstream.mu.Unlock()
			if tt.wantForwarded == "" {
				if len(upstream.forwarded) != 0 {
					t.Errorf("forwarded %s, want nothing", upstream.forwarded[0].URL)
				}
				return
			}
			if len(upstream.forwarded) != 1 {
				t.Fatalf("forwarded %d requests, want 1", len(upstream.forwarded))
			}
			fwd := upstream.forwarded[0]
			if fwd.URL.Path != tt.wantForwarded {
				t.Errorf("forwarded to %s, want %s", fwd.URL.Path, tt.wantForwarded)
			}
			if got := fwd.Header.Get("Authorization"); got != "Bearer privileged" {
				t.Errorf("forwarded with Authorization %q, want the server's identity", got)
			}
			if got := fwd.Header.Get("Impersonate-User"); got != "" {
				t.Errorf("forwarded the caller's impersonation %q", got)
			}
			if strings.Contains(tt.wantForwarded, "configmaps") {
				sel, err := labels.Parse(fwd.URL.Query().Get("labelSelector"))
				if err != nil {
					t.Fatal(err)
				}
				want := labels.Set{"app": "web", workloadv1alpha1.ClusterResourceStateLabel(key): "Sync"}
				if !sel.Matches(want) || sel.Matches(labels.Set{"app": "web"}) {
					t.Errorf("forwarded selector %q does not AND the state label", sel)
				}
			}
		})
	}
}

// On a shard, the upstream holds the workload workspaces and Authentication the location
// workspace: reviews and the SyncTarget are read there, and only the data goes upstream.
func TestHandlerAuthenticationReachesLocation(t *testing.T) {
	location := httptest.NewServer(&fakeUpstream{})
	defer location.Close()
	var shardPaths []string
	var mu sync.Mutex
	shard := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		shardPaths = append(shardPaths, r.URL.Path)
		mu.Unlock()
		_, _ = w.Write([]byte(`{"kind":"List","items":[]}`))
	}))
	defer shard.Close()
	h, err := NewHandler(Options{Upstream: &rest.Config{Host: shard.URL}, Authentication: &rest.Config{Host: location.URL}})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, workloadv1alpha1.SyncerVirtualWorkspaceURL("", "loc", "east", "u1")+"/clusters/*/api/v1/configmaps", nil)
	r.Header.Set("Authorization", "Bearer good")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("code %d (%s), want 200", w.Code, w.Body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(shardPaths) != 1 || shardPaths[0] != "/clusters/*/api/v1/configmaps" {
		t.Errorf("the shard saw %v, want only the list", shardPaths)
	}
}

// The kube-root-ca.crt ConfigMaps (the workspace's public CA bundle, unlabelled in every
// namespace) are listed and watched by exactly that name, not filtered by placement; any
// other ConfigMap request keeps the state-label filter.
func TestHandlerServesRootCAConfigMaps(t *testing.T) {
	upstream := &fakeUpstream{}
	srv := httptest.NewServer(upstream)
	defer srv.Close()
	h, err := NewHandler(Options{Upstream: &rest.Config{Host: srv.URL, BearerToken: "privileged"}})
	if err != nil {
		t.Fatal(err)
	}
	base := workloadv1alpha1.SyncerVirtualWorkspaceURL("", "loc", "east", "u1")
	stateLabel := workloadv1alpha1.ClusterResourceStateLabel(workloadv1alpha1.ToSyncTargetKey("loc", "east"))
	tests := []struct {
		name, query  string
		wantFiltered bool
	}{
		{name: "exactly the root CA", query: "fieldSelector=metadata.name%3Dkube-root-ca.crt"},
		{name: "the root CA, watched", query: "fieldSelector=metadata.name%3Dkube-root-ca.crt&watch=true"},
		{name: "another name", query: "fieldSelector=metadata.name%3Dsecrets", wantFiltered: true},
		{name: "the root CA and more", query: "fieldSelector=metadata.name%3Dkube-root-ca.crt,metadata.namespace%3Dx", wantFiltered: true},
		{name: "not equal", query: "fieldSelector=metadata.name%21%3Dkube-root-ca.crt", wantFiltered: true},
		{name: "no field selector", wantFiltered: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upstream.mu.Lock()
			upstream.forwarded = nil
			upstream.mu.Unlock()
			r := httptest.NewRequest(http.MethodGet, base+"/clusters/*/api/v1/configmaps?"+tt.query, nil)
			r.Header.Set("Authorization", "Bearer good")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				t.Fatalf("code %d (%s)", w.Code, w.Body)
			}
			upstream.mu.Lock()
			defer upstream.mu.Unlock()
			if len(upstream.forwarded) != 1 {
				t.Fatalf("forwarded %d requests, want 1", len(upstream.forwarded))
			}
			sel := upstream.forwarded[0].URL.Query().Get("labelSelector")
			if filtered := strings.Contains(sel, stateLabel); filtered != tt.wantFiltered {
				t.Errorf("forwarded labelSelector %q: filtered by placement %v, want %v", sel, filtered, tt.wantFiltered)
			}
		})
	}
}
