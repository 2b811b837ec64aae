package syncer

import (
	"net/http"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestParseRequest(t *testing.T) {
	cm := schema.GroupResource{Resource: "configmaps"}
	deploy := schema.GroupResource{Group: "apps", Resource: "deployments"}
	tests := []struct {
		name, method, rest string
		watch              bool
		want               request
		wantOK             bool
	}{
		{name: "wildcard list", method: http.MethodGet, rest: "/clusters/*/api/v1/configmaps", wantOK: true,
			want: request{Cluster: "*", Verb: verbList, APIPath: "/api/v1/configmaps", GR: cm, Version: "v1"}},
		{name: "wildcard watch", method: http.MethodGet, rest: "/clusters/*/apis/apps/v1/deployments", watch: true, wantOK: true,
			want: request{Cluster: "*", Verb: verbWatch, APIPath: "/apis/apps/v1/deployments", GR: deploy, Version: "v1"}},
		{name: "namespaced list", method: http.MethodGet, rest: "/clusters/c1/api/v1/namespaces/ns/configmaps", wantOK: true,
			want: request{Cluster: "c1", Verb: verbList, APIPath: "/api/v1/namespaces/ns/configmaps", GR: cm, Version: "v1", Namespace: "ns"}},
		{name: "get", method: http.MethodGet, rest: "/clusters/c1/apis/apps/v1/namespaces/ns/deployments/web", wantOK: true,
			want: request{Cluster: "c1", Verb: verbGet, APIPath: "/apis/apps/v1/namespaces/ns/deployments/web", GR: deploy, Version: "v1", Namespace: "ns", Name: "web"}},
		{name: "status patch", method: http.MethodPatch, rest: "/clusters/c1/apis/apps/v1/namespaces/ns/deployments/web/status", wantOK: true,
			want: request{Cluster: "c1", Verb: verbPatch, APIPath: "/apis/apps/v1/namespaces/ns/deployments/web/status", GR: deploy, Version: "v1", Namespace: "ns", Name: "web", Subresource: "status"}},
		{name: "namespace get", method: http.MethodGet, rest: "/clusters/c1/api/v1/namespaces/ns", wantOK: true,
			want: request{Cluster: "c1", Verb: verbGet, APIPath: "/api/v1/namespaces/ns", GR: schema.GroupResource{Resource: "namespaces"}, Version: "v1", Name: "ns"}},
		{name: "namespace status", method: http.MethodPut, rest: "/clusters/c1/api/v1/namespaces/ns/status", wantOK: true,
			want: request{Cluster: "c1", Verb: verbUpdate, APIPath: "/api/v1/namespaces/ns/status", GR: schema.GroupResource{Resource: "namespaces"}, Version: "v1", Name: "ns", Subresource: "status"}},
		{name: "event create", method: http.MethodPost, rest: "/clusters/c1/api/v1/namespaces/ns/events", wantOK: true,
			want: request{Cluster: "c1", Verb: verbCreate, APIPath: "/api/v1/namespaces/ns/events", GR: schema.GroupResource{Resource: "events"}, Version: "v1", Namespace: "ns"}},
		{name: "discovery", method: http.MethodGet, rest: "/clusters/c1/apis/apps/v1", wantOK: true,
			want: request{Cluster: "c1", Verb: verbDiscovery, APIPath: "/apis/apps/v1"}},
		{name: "core discovery", method: http.MethodGet, rest: "/clusters/c1/api", wantOK: true,
			want: request{Cluster: "c1", Verb: verbDiscovery, APIPath: "/api"}},
		{name: "discovery write", method: http.MethodPost, rest: "/clusters/c1/apis", wantOK: true,
			want: request{Cluster: "c1", Verb: verbUnsupported, APIPath: "/apis"}},
		{name: "delete", method: http.MethodDelete, rest: "/clusters/c1/api/v1/namespaces/ns/configmaps/c", wantOK: true,
			want: request{Cluster: "c1", Verb: verbDelete, APIPath: "/api/v1/namespaces/ns/configmaps/c", GR: cm, Version: "v1", Namespace: "ns", Name: "c"}},
		{name: "delete collection", method: http.MethodDelete, rest: "/clusters/c1/api/v1/namespaces/ns/configmaps", wantOK: true,
			want: request{Cluster: "c1", Verb: verbUnsupported, APIPath: "/api/v1/namespaces/ns/configmaps", GR: cm, Version: "v1", Namespace: "ns"}},
		{name: "legacy watch path", method: http.MethodGet, rest: "/clusters/c1/api/v1/watch/configmaps", wantOK: true,
			want: request{Cluster: "c1", Verb: verbUnsupported, APIPath: "/api/v1/watch/configmaps", Version: "v1", GR: schema.GroupResource{Resource: "watch"}, Name: "configmaps"}},
		{name: "other path", method: http.MethodGet, rest: "/clusters/c1/healthz", wantOK: true,
			want: request{Cluster: "c1", Verb: verbUnsupported, APIPath: "/healthz"}},
		{name: "not below clusters", method: http.MethodGet, rest: "/api/v1/configmaps"},
		{name: "empty cluster", method: http.MethodGet, rest: "/clusters//api"},
		{name: "dot-dot cluster", method: http.MethodGet, rest: "/clusters/../api/v1/secrets"},
		{name: "dot-dot name", method: http.MethodGet, rest: "/clusters/c1/api/v1/namespaces/ns/configmaps/../../secrets"},
		{name: "dot name", method: http.MethodGet, rest: "/clusters/c1/api/v1/namespaces/ns/configmaps/."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseRequest(tt.method, tt.rest, tt.watch)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if ok && got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
