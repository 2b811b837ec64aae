package syncer

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"k8s.io/client-go/rest"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// A syncer's tunnel request is admitted as any syncer-view request and only then handed to
// the Tunnel hook, with its SyncTarget's key.
func TestHandlerTunnelRoute(t *testing.T) {
	srv := httptest.NewServer(&fakeUpstream{})
	defer srv.Close()
	var calledWith []string
	h, err := NewHandler(Options{
		Upstream: &rest.Config{Host: srv.URL, BearerToken: "privileged"},
		Tunnel: func(w http.ResponseWriter, _ *http.Request, key string) {
			calledWith = append(calledWith, key)
			w.WriteHeader(http.StatusSwitchingProtocols)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	base := workloadv1alpha1.SyncerVirtualWorkspaceURL("", "loc", "east", "u1")
	tests := []struct {
		name, path, token string
		wantCode          int
		wantCalled        bool
	}{
		{name: "authorised", path: base + workloadv1alpha1.TunnelSubpath, token: "good", wantCode: http.StatusSwitchingProtocols, wantCalled: true},
		{name: "no token", path: base + workloadv1alpha1.TunnelSubpath, wantCode: http.StatusUnauthorized},
		{name: "bad token", path: base + workloadv1alpha1.TunnelSubpath, token: "bad", wantCode: http.StatusUnauthorized},
		{name: "not allowed to sync that SyncTarget", path: workloadv1alpha1.SyncerVirtualWorkspaceURL("", "loc", "west", "u1") + workloadv1alpha1.TunnelSubpath, token: "good", wantCode: http.StatusForbidden},
		{name: "re-created SyncTarget", path: workloadv1alpha1.SyncerVirtualWorkspaceURL("", "loc", "east", "u2") + workloadv1alpha1.TunnelSubpath, token: "good", wantCode: http.StatusForbidden},
		{name: "the upsyncer view has no tunnel", path: workloadv1alpha1.UpsyncerVirtualWorkspaceURL("", "loc", "east", "u1") + workloadv1alpha1.TunnelSubpath, token: "good", wantCode: http.StatusForbidden},
		{name: "below the tunnel path", path: base + workloadv1alpha1.TunnelSubpath + "/x", token: "good", wantCode: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calledWith = nil
			r := httptest.NewRequest(http.MethodGet, tt.path, nil)
			if tt.token != "" {
				r.Header.Set("Authorization", "Bearer "+tt.token)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.wantCode {
				t.Fatalf("code %d (%s), want %d", w.Code, w.Body, tt.wantCode)
			}
			if !tt.wantCalled {
				if len(calledWith) != 0 {
					t.Fatalf("the tunnel hook was called with %v, want not at all", calledWith)
				}
				return
			}
			if want := workloadv1alpha1.ToSyncTargetKey("loc", "east"); len(calledWith) != 1 || calledWith[0] != want {
				t.Fatalf("the tunnel hook was called with %v, want once with %s", calledWith, want)
			}
		})
	}
}

// Without a Tunnel hook the tunnel path does not exist.
func TestHandlerTunnelRouteWithoutHook(t *testing.T) {
	srv := httptest.NewServer(&fakeUpstream{})
	defer srv.Close()
	h, err := NewHandler(Options{Upstream: &rest.Config{Host: srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, workloadv1alpha1.SyncerVirtualWorkspaceURL("", "loc", "east", "u1")+workloadv1alpha1.TunnelSubpath, nil)
	r.Header.Set("Authorization", "Bearer good")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusNotFound {
		t.Fatalf("code %d (%s), want 404", w.Code, w.Body)
	}
}
