package syncer

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// testDiscoveryResources is what the fake physical cluster serves. apps is served at v1
// (preferred, listed first) and v1beta2.
var testDiscoveryResources = []*metav1.APIResourceList{
	{GroupVersion: "v1", APIResources: []metav1.APIResource{
		{Name: "configmaps", Namespaced: true, Kind: "ConfigMap"},
		{Name: "secrets", Namespaced: true, Kind: "Secret"},
		{Name: "namespaces", Namespaced: false, Kind: "Namespace"},
		{Name: "namespaces/status", Namespaced: false, Kind: "Namespace"},
		{Name: "persistentvolumes", Namespaced: false, Kind: "PersistentVolume"},
		{Name: "persistentvolumes/status", Namespaced: false, Kind: "PersistentVolume"},
	}},
	{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{
		{Name: "deployments", Namespaced: true, Kind: "Deployment"},
		{Name: "deployments/status", Namespaced: true, Kind: "Deployment"},
		{Name: "deployments/scale", Namespaced: true, Kind: "Scale"},
	}},
	{GroupVersion: "apps/v1beta2", APIResources: []metav1.APIResource{
		{Name: "deployments", Namespaced: true, Kind: "Deployment"},
	}},
}

func TestDiscoverResources(t *testing.T) {
	res := func(group, resource string) workloadv1alpha1.ResourceToSync {
		return workloadv1alpha1.ResourceToSync{Group: group, Resource: resource}
	}
	tests := []struct {
		name      string
		requested []workloadv1alpha1.ResourceToSync
		denied    map[string][]string // resource → verbs the syncer may not use

		wantAccepted []resourceInfo
		// wantStates are "<resource> <state> [message fragment]", sorted by resource.
		wantStates   []string
		wantVersions map[string][]string
	}{
		{
			name:      "accepted",
			requested: []workloadv1alpha1.ResourceToSync{res("apps", "deployments"), res("", "configmaps")},
			wantAccepted: []resourceInfo{
				{gvr: deploymentsGVR, kind: "Deployment", hasStatus: true},
				{gvr: configMapsGVR, kind: "ConfigMap"},
			},
			wantStates:   []string{"configmaps Accepted", "deployments.apps Accepted"},
			wantVersions: map[string][]string{"configmaps": {"v1"}, "deployments.apps": {"v1", "v1beta2"}},
		},
		{
			name:       "API group not served",
			requested:  []workloadv1alpha1.ResourceToSync{res("networking.k8s.io", "ingresses")},
			wantStates: []string{`ingresses.networking.k8s.io Incompatible API group "networking.k8s.io" is not served`},
		},
		{
			name:       "resource not served",
			requested:  []workloadv1alpha1.ResourceToSync{res("apps", "statefulsets")},
			wantStates: []string{"statefulsets.apps Incompatible resource statefulsets.apps is not served"},
		},
		{
			name:       "cluster-scoped",
			requested:  []workloadv1alpha1.ResourceToSync{res("", "namespaces")},
			wantStates: []string{"namespaces Incompatible namespaces is cluster-scoped"},
		},
		{
			name:      "persistentvolumes: the one cluster-scoped type accepted",
			requested: []workloadv1alpha1.ResourceToSync{res("", "persistentvolumes")},
			wantAccepted: []resourceInfo{
				{gvr: schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumes"}, kind: "PersistentVolume", hasStatus: true, clusterScoped: true},
			},
			wantStates: []string{"persistentvolumes Accepted"},
		},
		{
			name:         "missing verbs",
			requested:    []workloadv1alpha1.ResourceToSync{res("", "secrets"), res("", "configmaps")},
			denied:       map[string][]string{"secrets": {"patch", "delete"}},
			wantAccepted: []resourceInfo{{gvr: configMapsGVR, kind: "ConfigMap"}},
			wantStates:   []string{"configmaps Accepted", "secrets Unauthorized the syncer may not patch, delete secrets in the physical cluster"},
			wantVersions: map[string][]string{"secrets": {"v1"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kube := newDiscoveryClientset(tc.denied)
			accepted, states, err := discoverResources(t.Context(), kube.Discovery(), kube, tc.requested)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !slices.EqualFunc(accepted, tc.wantAccepted, func(a, b resourceInfo) bool { return a == b }) {
				t.Errorf("got accepted %+v, want %+v", accepted, tc.wantAccepted)
			}
			if len(states) != len(tc.wantStates) {
				t.Fatalf("got states %+v, want %q", states, tc.wantStates)
			}
			for i, want := range tc.wantStates {
				got := fmt.Sprintf("%s %s %s", states[i].String(), states[i].State, states[i].Message)
				if !strings.HasPrefix(got, want) {
					t.Errorf("state %d: got %q, want %q", i, got, want)
				}
				if v, ok := tc.wantVersions[states[i].String()]; ok && !slices.Equal(states[i].Versions, v) {
					t.Errorf("%s: got versions %q, want %q", states[i].String(), states[i].Versions, v)
				}
			}
		})
	}
}

func TestDiscoverResourcesChecksEveryVerb(t *testing.T) {
	kube := newDiscoveryClientset(nil)
	if _, _, err := discoverResources(t.Context(), kube.Discovery(), kube, []workloadv1alpha1.ResourceToSync{{Group: "apps", Resource: "deployments"}}); err != nil {
		t.Fatal(err)
	}
	var verbs []string
	for _, a := range kube.Actions() {
		create, ok := a.(clienttesting.CreateAction)
		if !ok || a.GetResource().Resource != "selfsubjectaccessreviews" {
			continue
		}
		attrs := create.GetObject().(*authorizationv1.SelfSubjectAccessReview).Spec.ResourceAttributes
		if attrs.Group != "apps" || attrs.Version != "v1" || attrs.Resource != "deployments" || attrs.Namespace != "" {
			t.Errorf("review of %+v, want deployments.apps/v1 in all namespaces", attrs)
		}
		verbs = append(verbs, attrs.Verb)
	}
	if !slices.Equal(verbs, syncVerbs) {
		t.Errorf("reviewed verbs %q, want %q", verbs, syncVerbs)
	}
}

func TestDiscoverResourcesErrors(t *testing.T) {
	tests := []struct {
		name    string
		reactor func(kube *kubefake.Clientset)
		want    string
	}{
		{
			name: "discovery fails",
			reactor: func(kube *kubefake.Clientset) {
				kube.PrependReactor("get", "group", func(clienttesting.Action) (bool, runtime.Object, error) {
					return true, nil, errors.New("connection refused")
				})
			},
			want: "failed to discover downstream API groups",
		},
		{
			name: "access review fails",
			reactor: func(kube *kubefake.Clientset) {
				kube.PrependReactor("create", "selfsubjectaccessreviews", func(clienttesting.Action) (bool, runtime.Object, error) {
					return true, nil, errors.New("connection refused")
				})
			},
			want: "failed to review access to deployments.apps",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kube := newDiscoveryClientset(nil)
			tc.reactor(kube)
			_, _, err := discoverResources(t.Context(), kube.Discovery(), kube, []workloadv1alpha1.ResourceToSync{{Group: "apps", Resource: "deployments"}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want %q", err, tc.want)
			}
		})
	}
}

// newDiscoveryClientset returns a fake physical cluster serving testDiscoveryResources
// that allows every verb except the denied ones (resource → verbs).
func newDiscoveryClientset(denied map[string][]string) *kubefake.Clientset {
	kube := kubefake.NewClientset()
	kube.Discovery().(*fakediscovery.FakeDiscovery).Resources = testDiscoveryResources
	kube.PrependReactor("create", "selfsubjectaccessreviews", func(action clienttesting.Action) (bool, runtime.Object, error) {
		review := action.(clienttesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview).DeepCopy()
		attrs := review.Spec.ResourceAttributes
		review.Status.Allowed = !slices.Contains(denied[attrs.Resource], attrs.Verb)
		return true, review, nil
	})
	return kube
}

func TestDiscoverResourcesLabel(t *testing.T) {
	for gvr, want := range map[schema.GroupVersionResource]string{
		configMapsGVR:  "configmaps/v1",
		deploymentsGVR: "deployments.apps/v1",
	} {
		if got := (resourceInfo{gvr: gvr}).label(); got != want {
			t.Errorf("label of %s: got %q, want %q", gvr, got, want)
		}
	}
}
