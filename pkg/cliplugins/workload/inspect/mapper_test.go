package inspect

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	discoveryfake "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/restmapper"
	clienttesting "k8s.io/client-go/testing"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// testMapper knows Deployments, ConfigMaps, Secrets and Namespaces, with their short names.
func testMapper() meta.RESTMapper {
	apps := schema.GroupVersion{Group: "apps", Version: "v1"}
	core := schema.GroupVersion{Version: "v1"}
	m := meta.NewDefaultRESTMapper([]schema.GroupVersion{core, apps})
	m.Add(apps.WithKind("Deployment"), meta.RESTScopeNamespace)
	m.Add(core.WithKind("ConfigMap"), meta.RESTScopeNamespace)
	m.Add(core.WithKind("Secret"), meta.RESTScopeNamespace)
	m.Add(core.WithKind("Namespace"), meta.RESTScopeRoot)
	disco := &discoveryfake.FakeDiscovery{Fake: &clienttesting.Fake{Resources: []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{
			{Name: "configmaps", Kind: "ConfigMap", Namespaced: true, ShortNames: []string{"cm"}},
			{Name: "secrets", Kind: "Secret", Namespaced: true},
			{Name: "namespaces", Kind: "Namespace", ShortNames: []string{"ns"}},
		}},
		{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{
			{Name: "deployments", Kind: "Deployment", Namespaced: true, ShortNames: []string{"deploy"}},
		}},
	}}}
	return restmapper.NewShortcutExpander(m, disco, func(string) {})
}

func TestResolveResource(t *testing.T) {
	tests := []struct {
		arg     string
		want    schema.GroupVersionResource
		wantErr string
	}{
		{arg: "deployments", want: deploymentsGVR},
		{arg: "deployment", want: deploymentsGVR},
		{arg: "deploy", want: deploymentsGVR},
		{arg: "deployments.apps", want: deploymentsGVR},
		{arg: "deployments.v1.apps", want: deploymentsGVR},
		{arg: "Deployment", want: deploymentsGVR},
		{arg: "Deployment.apps", want: deploymentsGVR},
		{arg: "cm", want: configMapsGVR},
		{arg: "configmap", want: configMapsGVR},
		{arg: "ns", want: schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}},
		{arg: "widgets", wantErr: `the server doesn't have a resource type "widgets"`},
		{arg: "deployments.batch", wantErr: `the server doesn't have a resource type "deployments.batch"`},
	}
	for _, tt := range tests {
		t.Run(tt.arg, func(t *testing.T) {
			m, err := resolveResource(testMapper(), tt.arg)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("got %v, want error %q", err, tt.wantErr)
				}
				return
			}
			must(t, err)
			if m.Resource != tt.want {
				t.Errorf("got %s, want %s", m.Resource, tt.want)
			}
		})
	}
}

func TestParseObjectArgs(t *testing.T) {
	tests := []struct {
		args                []string
		resource, name, err string
	}{
		{args: []string{"deploy/web"}, resource: "deploy", name: "web"},
		{args: []string{"deploy", "web"}, resource: "deploy", name: "web"},
		{args: []string{"deploy"}, err: `expected <resource>/<name>, got "deploy"`},
		{args: []string{"deploy/"}, err: `expected <resource>/<name>, got "deploy/"`},
		{args: []string{"deploy/web", "x"}, err: `expected <resource> <name>, got "deploy/web x"`},
	}
	for _, tt := range tests {
		resource, name, err := parseObjectArgs(tt.args)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%v: got error %v, want %q", tt.args, err, tt.err)
			}
			continue
		}
		if err != nil || resource != tt.resource || name != tt.name {
			t.Errorf("%v: got %q %q %v", tt.args, resource, name, err)
		}
	}
}

func TestSyncedVersion(t *testing.T) {
	v1beta2 := schema.GroupVersion{Group: "apps", Version: "v1beta2"}
	v1 := schema.GroupVersion{Group: "apps", Version: "v1"}
	mapper := meta.NewDefaultRESTMapper([]schema.GroupVersion{v1, v1beta2})
	mapper.Add(v1.WithKind("Deployment"), meta.RESTScopeNamespace)
	mapper.Add(v1beta2.WithKind("Deployment"), meta.RESTScopeNamespace)
	preferred, err := mapper.RESTMapping(v1.WithKind("Deployment").GroupKind(), "v1")
	must(t, err)
	st := func(versions ...string) *workloadv1alpha1.SyncTarget {
		return &workloadv1alpha1.SyncTarget{Status: workloadv1alpha1.SyncTargetStatus{SyncedResources: []workloadv1alpha1.SyncedResource{{
			ResourceToSync: workloadv1alpha1.ResourceToSync{Group: "apps", Resource: "deployments"}, Versions: versions, State: workloadv1alpha1.ResourceStateAccepted,
		}}}}
	}
	for _, tt := range []struct {
		versions []string
		want     string
	}{
		{versions: []string{"v1beta2", "v1"}, want: "v1beta2"},
		{versions: []string{"v1"}, want: "v1"},
		{versions: []string{"v2"}, want: "v1"}, // not served upstream
		{want: "v1"},
	} {
		if got := syncedVersion(mapper, preferred, st(tt.versions...)).Resource.Version; got != tt.want {
			t.Errorf("versions %v: got %s, want %s", tt.versions, got, tt.want)
		}
	}
}
