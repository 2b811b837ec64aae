package localenv

import (
	"encoding/json"
	"testing"
)

func TestParseWildcardPath(t *testing.T) {
	for tail, want := range map[string]*wildcardRequest{
		"api/v1/configmaps":                         {version: "v1", resource: "configmaps"},
		"api/v1/namespaces/default/configmaps":      {version: "v1", namespace: "default", resource: "configmaps"},
		"apis/apps/v1/deployments":                  {group: "apps", version: "v1", resource: "deployments"},
		"apis/workload.kcp.io/v1alpha1/synctargets": {group: "workload.kcp.io", version: "v1alpha1", resource: "synctargets"},
		"api/v1/namespaces":                         {version: "v1", resource: "namespaces"},
		"api/v1/namespaces/default":                 nil,
		"api/v1/namespaces/default/configmaps/x":    nil,
		"apis/apps/v1":                              nil,
		"api":                                       nil,
		"healthz":                                   nil,
	} {
		got, ok := parseWildcardPath(tail)
		if want == nil {
			if ok {
				t.Errorf("%s: parsed as %+v, want refused (not a collection)", tail, got)
			}
			continue
		}
		want.tail = tail
		if !ok || got != *want {
			t.Errorf("%s: %+v (%v), want %+v", tail, got, ok, *want)
		}
	}
}

func TestResourceKeyPrefix(t *testing.T) {
	for _, c := range []struct {
		req  wildcardRequest
		want string
	}{
		{wildcardRequest{resource: "services"}, "/workspaces/root/services/specs/"},
		{wildcardRequest{resource: "endpoints", namespace: "ns"}, "/workspaces/root/services/endpoints/ns/"},
		{wildcardRequest{resource: "nodes"}, "/workspaces/root/minions/"},
		{wildcardRequest{group: "networking.k8s.io", resource: "ingresses"}, "/workspaces/root/ingress/"},
		{wildcardRequest{group: "apps", resource: "deployments"}, "/workspaces/root/deployments/"},
		{wildcardRequest{group: "workload.kcp.io", resource: "synctargets"}, "/workspaces/root/workload.kcp.io/synctargets/"},
	} {
		if got := resourceKeyPrefix("/workspaces/root", c.req); got != c.want {
			t.Errorf("%+v: %s, want %s", c.req, got, c.want)
		}
	}
	if got := commonPrefix([]string{"/workspaces/root", "/workspaces/root:org", "/workspaces/root:org-r1"}); got != "/workspaces/root" {
		t.Errorf("commonPrefix: %q", got)
	}
}

// A filtered watch turns leaving the selector into DELETED (with the last matching content
// at the new resourceVersion) and entering it into ADDED, as the apiserver does.
func TestWatchFilterTransitions(t *testing.T) {
	f, err := newWatchFilter("app=x", "metadata.namespace=default")
	if err != nil {
		t.Fatal(err)
	}
	obj := func(rv string, labels map[string]string) wildcardObject {
		raw, _ := json.Marshal(map[string]any{"metadata": map[string]any{"name": "a", "namespace": "default", "resourceVersion": rv, "labels": labels}})
		o, err := parseWildcardObject(raw)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	f.seed("c1", obj("1", map[string]string{"app": "x"}))
	steps := []struct {
		in, want string
		obj      wildcardObject
	}{
		{"MODIFIED", "MODIFIED", obj("2", map[string]string{"app": "x"})},
		{"MODIFIED", "DELETED", obj("3", nil)},
		{"MODIFIED", "", obj("4", nil)},
		{"MODIFIED", "ADDED", obj("5", map[string]string{"app": "x"})},
		{"DELETED", "DELETED", obj("6", map[string]string{"app": "x"})},
		{"DELETED", "", obj("7", nil)},
	}
	for i, s := range steps {
		typ, raw, emit, err := f.apply("c1", s.in, s.obj)
		if err != nil || typ != s.want || emit != (s.want != "") {
			t.Fatalf("step %d: %s %v %v, want %s", i, typ, emit, err, s.want)
		}
		if emit {
			got, _ := parseWildcardObject(raw)
			if got.meta.ResourceVersion != s.obj.meta.ResourceVersion {
				t.Errorf("step %d: resourceVersion %s, want %s", i, got.meta.ResourceVersion, s.obj.meta.ResourceVersion)
			}
			if s.want == "DELETED" && s.in == "MODIFIED" && got.meta.Labels["app"] != "x" {
				t.Errorf("step %d: DELETED carries %v, want the last matching content", i, got.meta.Labels)
			}
		}
	}
	if _, err := newWatchFilter("", "spec.nodeName=n"); err == nil {
		t.Error("a field selector on spec.nodeName was accepted; the proxy cannot evaluate it")
	}
}
