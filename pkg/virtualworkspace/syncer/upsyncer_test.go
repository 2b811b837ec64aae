package syncer

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// upstreamWrite is one write the upstream received.
type upstreamWrite struct {
	method, path, contentType string
	body                      map[string]any
}

// storeUpstream is fakeUpstream with stored objects by path (GET reads them, 404 for
// others below /clusters/c1/) and every other request recorded: writes with their body.
type storeUpstream struct {
	fakeUpstream
	objects map[string]map[string]any
	mu      sync.Mutex
	writes  []upstreamWrite
}

func (f *storeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/clusters/c1/") {
		f.fakeUpstream.ServeHTTP(w, r)
		return
	}
	if r.Method == http.MethodGet {
		if obj, ok := f.objects[r.URL.Path]; ok {
			_ = json.NewEncoder(w).Encode(obj)
			return
		}
		if r.URL.Query().Get("labelSelector") != "" {
			f.fakeUpstream.ServeHTTP(w, r)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`))
		return
	}
	raw, _ := io.ReadAll(r.Body)
	body := map[string]any{}
	_ = json.Unmarshal(raw, &body)
	f.mu.Lock()
	f.writes = append(f.writes, upstreamWrite{method: r.Method, path: r.URL.Path, contentType: r.Header.Get("Content-Type"), body: body})
	f.mu.Unlock()
	_, _ = w.Write([]byte(`{}`))
}

func (f *storeUpstream) takeWrites() []upstreamWrite {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.writes
	f.writes = nil
	return out
}

func object(name, namespace, rv string, objLabels map[string]string) map[string]any {
	ls := map[string]any{}
	for k, v := range objLabels {
		ls[k] = v
	}
	meta := map[string]any{"name": name, "uid": "uid-" + name, "resourceVersion": rv, "labels": ls}
	if namespace != "" {
		meta["namespace"] = namespace
	}
	return map[string]any{"apiVersion": "v1", "metadata": meta}
}

func TestUpsyncerView(t *testing.T) {
	east := workloadv1alpha1.ClusterResourceStateLabel(workloadv1alpha1.ToSyncTargetKey("loc", "east"))
	west := workloadv1alpha1.ClusterResourceStateLabel(workloadv1alpha1.ToSyncTargetKey("loc", "west"))
	upsync := map[string]string{east: "Upsync"}
	const pods = "/clusters/c1/api/v1/namespaces/web/pods/"
	upstream := &storeUpstream{objects: map[string]map[string]any{
		"/clusters/c1/api/v1/namespaces/web":           object("web", "", "1", map[string]string{east: "Sync"}),
		"/clusters/c1/api/v1/namespaces/other":         object("other", "", "1", nil),
		pods + "up":                                    object("up", "web", "5", upsync),
		pods + "synced":                                object("synced", "web", "5", map[string]string{east: "Sync"}),
		pods + "west-up":                               object("west-up", "web", "5", map[string]string{west: "Upsync"}),
		"/clusters/c1/api/v1/persistentvolumes/pv-up":  object("pv-up", "", "5", upsync),
		"/clusters/c1/api/v1/persistentvolumes/pv-syn": object("pv-syn", "", "5", map[string]string{east: "Sync"}),
	}}
	srv := httptest.NewServer(upstream)
	defer srv.Close()
	h, err := NewHandler(Options{Upstream: &rest.Config{Host: srv.URL, BearerToken: "privileged"}})
	if err != nil {
		t.Fatal(err)
	}
	base := workloadv1alpha1.UpsyncerVirtualWorkspaceURL("", "loc", "east", "u1")
	podBody := func(objLabels map[string]string) string {
		b, _ := json.Marshal(object("p", "web", "", objLabels))
		return string(b)
	}
	labelsPatch := func(ls map[string]any) string {
		b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": ls}})
		return string(b)
	}
	const mergePatch = "application/merge-patch+json"
	tests := []struct {
		name, method, path, contentType, body string
		token                                 string // default "good"
		viewBase                              string // default east's view
		wantCode                              int
		// wantWrite is the path the upstream must see written, "" for no write.
		wantWrite string
	}{
		{name: "get an upsynced pod", method: http.MethodGet, path: pods + "up", wantCode: 200},
		{name: "get a Sync pod is NotFound", method: http.MethodGet, path: pods + "synced", wantCode: 404},
		{name: "get another target's upsynced pod is NotFound", method: http.MethodGet, path: pods + "west-up", wantCode: 404},
		{name: "get a placed namespace", method: http.MethodGet, path: "/clusters/c1/api/v1/namespaces/web", wantCode: 200},
		{name: "get an unplaced namespace is NotFound", method: http.MethodGet, path: "/clusters/c1/api/v1/namespaces/other", wantCode: 404},

		{name: "create an upsynced pod", method: http.MethodPost, path: "/clusters/c1/api/v1/namespaces/web/pods", body: podBody(upsync), wantCode: 200, wantWrite: "/clusters/c1/api/v1/namespaces/web/pods"},
		{name: "create without the label", method: http.MethodPost, path: "/clusters/c1/api/v1/namespaces/web/pods", body: podBody(nil), wantCode: 403},
		{name: "create labelled Sync", method: http.MethodPost, path: "/clusters/c1/api/v1/namespaces/web/pods", body: podBody(map[string]string{east: "Sync"}), wantCode: 403},
		{name: "create labelled Upsync for another target", method: http.MethodPost, path: "/clusters/c1/api/v1/namespaces/web/pods", body: podBody(map[string]string{west: "Upsync"}), wantCode: 403},
		{name: "create placing it on another target too", method: http.MethodPost, path: "/clusters/c1/api/v1/namespaces/web/pods", body: podBody(map[string]string{east: "Upsync", west: "Sync"}), wantCode: 403},
		{name: "create in a namespace not placed here", method: http.MethodPost, path: "/clusters/c1/api/v1/namespaces/other/pods", body: podBody(upsync), wantCode: 403},
		{name: "create in a namespace that does not exist", method: http.MethodPost, path: "/clusters/c1/api/v1/namespaces/missing/pods", body: podBody(upsync), wantCode: 403},
		{name: "create a namespaced type without a namespace", method: http.MethodPost, path: "/clusters/c1/api/v1/pods", body: podBody(upsync), wantCode: 403},
		{name: "create a persistent volume", method: http.MethodPost, path: "/clusters/c1/api/v1/persistentvolumes", body: podBody(upsync), wantCode: 200, wantWrite: "/clusters/c1/api/v1/persistentvolumes"},
		{name: "bind an upsynced pod to a node", method: http.MethodPost, path: pods + "up/binding", body: `{"kind":"Binding","apiVersion":"v1","metadata":{"name":"up"},"target":{"kind":"Node","name":"node-1"}}`, wantCode: 200, wantWrite: pods + "up/binding"},
		{name: "bind a Sync pod", method: http.MethodPost, path: pods + "synced/binding", body: `{"kind":"Binding","apiVersion":"v1","metadata":{"name":"synced"},"target":{"kind":"Node","name":"node-1"}}`, wantCode: 403},
		{name: "bind another target's pod", method: http.MethodPost, path: pods + "west-up/binding", body: `{"kind":"Binding","apiVersion":"v1","metadata":{"name":"west-up"},"target":{"kind":"Node","name":"node-1"}}`, wantCode: 403},
		{name: "a binding naming another pod", method: http.MethodPost, path: pods + "up/binding", body: `{"kind":"Binding","apiVersion":"v1","metadata":{"name":"synced"},"target":{"kind":"Node","name":"node-1"}}`, wantCode: 403},
		{name: "another subresource created", method: http.MethodPost, path: pods + "up/eviction", body: `{}`, wantCode: 403},
		{name: "create in the wildcard cluster", method: http.MethodPost, path: "/clusters/*/api/v1/namespaces/web/pods", body: podBody(upsync), wantCode: 403},

		{name: "update keeping the label", method: http.MethodPut, path: pods + "up", body: podBody(upsync), wantCode: 200, wantWrite: pods + "up"},
		{name: "update removing the label", method: http.MethodPut, path: pods + "up", body: podBody(nil), wantCode: 403},
		{name: "update of a Sync pod", method: http.MethodPut, path: pods + "synced", body: podBody(upsync), wantCode: 403},
		{name: "update of another target's pod", method: http.MethodPut, path: pods + "west-up", body: podBody(upsync), wantCode: 403},
		{name: "update of a pod that does not exist", method: http.MethodPut, path: pods + "missing", body: podBody(upsync), wantCode: 404},
		{name: "patch changing the label to Sync", method: http.MethodPatch, path: pods + "up", contentType: mergePatch, body: labelsPatch(map[string]any{east: "Sync"}), wantCode: 403},
		{name: "patch removing the label", method: http.MethodPatch, path: pods + "up", contentType: mergePatch, body: labelsPatch(map[string]any{east: nil}), wantCode: 403},
		{name: "patch adding another target's label", method: http.MethodPatch, path: pods + "up", contentType: mergePatch, body: labelsPatch(map[string]any{west: "Sync"}), wantCode: 403},
		{name: "patch of the labels kept", method: http.MethodPatch, path: pods + "up", contentType: mergePatch, body: labelsPatch(map[string]any{"app": "web"}), wantCode: 200, wantWrite: pods + "up"},
		{name: "patch that is not a merge patch", method: http.MethodPatch, path: pods + "up", contentType: "application/json-patch+json", body: `[]`, wantCode: 415},
		{name: "status patch", method: http.MethodPatch, path: pods + "up/status", contentType: mergePatch, body: `{"status":{"phase":"Running"}}`, wantCode: 200, wantWrite: pods + "up/status"},
		{name: "status update", method: http.MethodPut, path: pods + "up/status", body: podBody(upsync), wantCode: 200, wantWrite: pods + "up/status"},
		{name: "status patch of a Sync pod", method: http.MethodPatch, path: pods + "synced/status", contentType: mergePatch, body: `{"status":{"phase":"Running"}}`, wantCode: 403},
		{name: "patch of a Sync persistent volume", method: http.MethodPatch, path: "/clusters/c1/api/v1/persistentvolumes/pv-syn", contentType: mergePatch, body: labelsPatch(map[string]any{"a": "b"}), wantCode: 403},

		{name: "delete an upsynced pod", method: http.MethodDelete, path: pods + "up", wantCode: 200, wantWrite: pods + "up"},
		{name: "delete an upsynced volume", method: http.MethodDelete, path: "/clusters/c1/api/v1/persistentvolumes/pv-up", wantCode: 200, wantWrite: "/clusters/c1/api/v1/persistentvolumes/pv-up"},
		{name: "delete a Sync pod", method: http.MethodDelete, path: pods + "synced", wantCode: 403},
		{name: "delete another target's pod", method: http.MethodDelete, path: pods + "west-up", wantCode: 403},
		{name: "delete with another uid", method: http.MethodDelete, path: pods + "up", body: `{"preconditions":{"uid":"other"}}`, wantCode: 409},
		{name: "delete a collection", method: http.MethodDelete, path: "/clusters/c1/api/v1/namespaces/web/pods", wantCode: 403},

		{name: "namespaces are read-only", method: http.MethodPost, path: "/clusters/c1/api/v1/namespaces", body: `{"metadata":{"name":"x","labels":{"` + east + `":"Upsync"}}}`, wantCode: 403},
		{name: "no namespace deletion", method: http.MethodDelete, path: "/clusters/c1/api/v1/namespaces/web", wantCode: 403},
		{name: "a type neither upsynced nor accepted", method: http.MethodGet, path: "/clusters/*/api/v1/nodes", wantCode: 403},
		{name: "no token", method: http.MethodGet, path: "/clusters/*/api/v1/pods", token: "-", wantCode: 401},
		{name: "a SyncTarget the caller may not sync", method: http.MethodGet, path: "/clusters/*/api/v1/pods", viewBase: workloadv1alpha1.UpsyncerVirtualWorkspaceURL("", "loc", "west", "u1"), wantCode: 403},
		{name: "an unknown SyncTarget uid", method: http.MethodGet, path: "/clusters/*/api/v1/pods", viewBase: workloadv1alpha1.UpsyncerVirtualWorkspaceURL("", "loc", "east", "u2"), wantCode: 403},
		{name: "outside /clusters", method: http.MethodGet, path: "/api/v1/pods", wantCode: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upstream.takeWrites()
			viewBase := base
			if tt.viewBase != "" {
				viewBase = tt.viewBase
			}
			r := httptest.NewRequest(tt.method, viewBase+tt.path, strings.NewReader(tt.body))
			switch tt.token {
			case "":
				r.Header.Set("Authorization", "Bearer good")
			case "-":
			default:
				r.Header.Set("Authorization", "Bearer "+tt.token)
			}
			contentType := tt.contentType
			if contentType == "" && tt.body != "" {
				contentType = "application/json"
			}
			r.Header.Set("Content-Type", contentType)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.wantCode {
				t.Fatalf("code %d (%s), want %d", w.Code, w.Body, tt.wantCode)
			}
			writes := upstream.takeWrites()
			if tt.wantWrite == "" {
				if len(writes) != 0 {
					t.Errorf("wrote %s %s upstream, want nothing", writes[0].method, writes[0].path)
				}
				return
			}
			if len(writes) != 1 || writes[0].path != tt.wantWrite || writes[0].method != tt.method {
				t.Fatalf("upstream writes %+v, want one %s %s", writes, tt.method, tt.wantWrite)
			}
			checkPrecondition(t, tt.method, tt.path, writes[0])
		})
	}
}

// checkPrecondition checks that a write of an existing object names the checked object's
// resourceVersion (and, for a delete, its uid), so that nothing changed meanwhile is
// written.
func checkPrecondition(t *testing.T, method, path string, write upstreamWrite) {
	t.Helper()
	switch method {
	case http.MethodPut, http.MethodPatch:
		if got := resourceVersionOf(write.body); got != "5" {
			t.Errorf("forwarded %s with resourceVersion %q, want the checked object's 5", method, got)
		}
	case http.MethodDelete:
		p, _ := write.body["preconditions"].(map[string]any)
		name := path[strings.LastIndex(path, "/")+1:]
		if p["uid"] != "uid-"+name || p["resourceVersion"] != "5" {
			t.Errorf("forwarded delete with preconditions %v, want uid-%s and resourceVersion 5", p, name)
		}
	}
}

// Lists and watches see only the objects upsynced by this target; namespaces those placed
// on it.
func TestUpsyncerViewFiltersCollections(t *testing.T) {
	upstream := &fakeUpstream{}
	srv := httptest.NewServer(upstream)
	defer srv.Close()
	h, err := NewHandler(Options{Upstream: &rest.Config{Host: srv.URL, BearerToken: "privileged"}})
	if err != nil {
		t.Fatal(err)
	}
	key := workloadv1alpha1.ToSyncTargetKey("loc", "east")
	state := workloadv1alpha1.ClusterResourceStateLabel(key)
	tests := []struct{ path, wantState string }{
		{path: "/clusters/*/api/v1/pods?labelSelector=app%3Dweb", wantState: "Upsync"},
		{path: "/clusters/*/api/v1/pods?watch=true", wantState: "Upsync"},
		{path: "/clusters/*/api/v1/persistentvolumes", wantState: "Upsync"},
		{path: "/clusters/*/apis/discovery.k8s.io/v1/endpointslices", wantState: "Upsync"},
		{path: "/clusters/*/api/v1/configmaps", wantState: "Upsync"},
		{path: "/clusters/*/api/v1/namespaces", wantState: "Sync"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			upstream.mu.Lock()
			upstream.forwarded = nil
			upstream.mu.Unlock()
			r := httptest.NewRequest(http.MethodGet, workloadv1alpha1.UpsyncerVirtualWorkspaceURL("", "loc", "east", "u1")+tt.path, nil)
			r.Header.Set("Authorization", "Bearer good")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				t.Fatalf("code %d (%s), want 200", w.Code, w.Body)
			}
			upstream.mu.Lock()
			defer upstream.mu.Unlock()
			if len(upstream.forwarded) != 1 {
				t.Fatalf("forwarded %d requests, want 1", len(upstream.forwarded))
			}
			sel, err := labels.Parse(upstream.forwarded[0].URL.Query().Get("labelSelector"))
			if err != nil {
				t.Fatal(err)
			}
			if !sel.Matches(labels.Set{"app": "web", state: tt.wantState}) || sel.Matches(labels.Set{"app": "web", state: "Sync" + "Upsync"}) || sel.Matches(labels.Set{"app": "web"}) {
				t.Errorf("forwarded selector %q does not require %s=%s", sel, state, tt.wantState)
			}
		})
	}
}

// Requests and watches are counted by view.
func TestUpsyncerViewMetrics(t *testing.T) {
	srv := httptest.NewServer(&fakeUpstream{})
	defer srv.Close()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(Options{Upstream: &rest.Config{Host: srv.URL}, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	for _, base := range []string{
		workloadv1alpha1.UpsyncerVirtualWorkspaceURL("", "loc", "east", "u1") + "/clusters/*/api/v1/pods",
		workloadv1alpha1.SyncerVirtualWorkspaceURL("", "loc", "east", "u1") + "/clusters/*/api/v1/configmaps",
	} {
		r := httptest.NewRequest(http.MethodGet, base, nil)
		r.Header.Set("Authorization", "Bearer good")
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	for _, tt := range []struct{ view, resource string }{{"upsyncer", "pods"}, {"syncer", "configmaps"}} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(tt.view, "list", tt.resource, "200")); got != 1 {
			t.Errorf("requests_total{view=%s,verb=list,resource=%s,code=200} = %v, want 1", tt.view, tt.resource, got)
		}
	}
}
