package syncer

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	"k8s.io/client-go/rest"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// objectUpstream is fakeUpstream with one stored Deployment at objectPath: GET reads it,
// PATCH merges into it, PUT .../status replaces its status.
type objectUpstream struct {
	fakeUpstream
	path string
	mu   sync.Mutex
	obj  map[string]any
}

func (f *objectUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, f.path) {
		f.fakeUpstream.ServeHTTP(w, r)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	switch {
	case r.Method == http.MethodPatch && r.URL.Path == f.path:
		current, _ := json.Marshal(f.obj)
		patched, err := jsonpatch.MergePatch(current, body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		f.obj = map[string]any{}
		_ = json.Unmarshal(patched, &f.obj)
	case r.Method == http.MethodPut && r.URL.Path == f.path+"/status":
		updated := map[string]any{}
		_ = json.Unmarshal(body, &updated)
		f.obj["status"] = updated["status"]
	}
	_ = json.NewEncoder(w).Encode(f.obj)
}

// A release by west (its state label and status annotation removed) of a Deployment left
// on east alone promotes east's status to .status, which still held the aggregate: no
// further status write comes from east while its copy does not change.
func TestReleasePromotesTheRemainingTargetsStatus(t *testing.T) {
	const objectPath = "/clusters/c1/apis/apps/v1/namespaces/web/deployments/hello"
	east, west := workloadv1alpha1.ToSyncTargetKey("loc", "east"), workloadv1alpha1.ToSyncTargetKey("loc", "other")
	tests := []struct {
		name string
		// otherReported: another target's status annotation is there.
		otherReported bool
		wantStatus    any
	}{
		{name: "the target left reports: its status exactly", otherReported: true, wantStatus: map[string]any{"replicas": float64(3), "readyReplicas": float64(3)}},
		{name: "no target left reports: .status left to the syncer", wantStatus: map[string]any{"replicas": float64(5), "readyReplicas": float64(5)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			annotations := map[string]any{workloadv1alpha1.StatusAnnotation(east): `{"replicas":2,"readyReplicas":2}`}
			if tt.otherReported {
				annotations[workloadv1alpha1.StatusAnnotation(west)] = `{"replicas":3,"readyReplicas":3}`
			}
			upstream := &objectUpstream{path: objectPath, obj: map[string]any{
				"apiVersion": "apps/v1", "kind": "Deployment",
				"metadata": map[string]any{
					"name": "hello", "namespace": "web", "resourceVersion": "7",
					"labels":      map[string]any{workloadv1alpha1.ClusterResourceStateLabel(east): "Sync", workloadv1alpha1.ClusterResourceStateLabel(west): "Sync"},
					"annotations": annotations,
					"finalizers":  []any{workloadv1alpha1.SyncerFinalizerName(east)},
				},
				"status": map[string]any{"replicas": float64(5), "readyReplicas": float64(5)},
			}}
			srv := httptest.NewServer(upstream)
			defer srv.Close()
			h, err := NewHandler(Options{Upstream: &rest.Config{Host: srv.URL}})
			if err != nil {
				t.Fatal(err)
			}
			release, _ := json.Marshal(map[string]any{"metadata": map[string]any{
				"resourceVersion": "7",
				"finalizers":      nil,
				"labels":          map[string]any{workloadv1alpha1.ClusterResourceStateLabel(east): nil},
				"annotations":     map[string]any{workloadv1alpha1.StatusAnnotation(east): nil},
			}})
			r := httptest.NewRequest(http.MethodPatch, workloadv1alpha1.SyncerVirtualWorkspaceURL("", "loc", "east", "u1")+objectPath, strings.NewReader(string(release)))
			r.Header.Set("Authorization", "Bearer good")
			r.Header.Set("Content-Type", "application/merge-patch+json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				t.Fatalf("code %d (%s), want 200", w.Code, w.Body)
			}
			upstream.mu.Lock()
			defer upstream.mu.Unlock()
			if got := upstream.obj["status"]; !jsonEqual(got, tt.wantStatus) {
				t.Errorf(".status %v, want %v", got, tt.wantStatus)
			}
		})
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
