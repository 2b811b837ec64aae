package syncer

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func TestUpsyncRules(t *testing.T) {
	target := syncTarget{cluster: testLocationCluster, name: testSyncTargetName, key: testStKey, uid: testSyncTargetUID}
	services := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	service := func(name, derived string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Service", "metadata": map[string]any{"name": name, "namespace": upsyncDownstreamNamespace}}}
		if derived != "" {
			u.SetAnnotations(map[string]string{workloadv1alpha1.UpsyncDerivedResourcesAnnotation: derived})
		}
		return u
	}
	_ = services.Add(service("both", "endpoints, endpointslices"))
	_ = services.Add(service("slices", "endpointslices"))
	_ = services.Add(service("plain", ""))
	rules := upsyncRules{stKey: testStKey,
		locatorOf: func(ns string) (workloadv1alpha1.NamespaceLocator, bool) {
			return target.locator(upsyncCluster, upsyncUpstreamNamespace), ns == upsyncDownstreamNamespace
		},
		downstream: func(gvr schema.GroupVersionResource) (downstreamView, bool) {
			return downstreamView{lister: cache.NewGenericLister(services, gvr.GroupResource()), synced: func() bool { return true }}, gvr == servicesGVR
		},
	}
	sources := map[schema.GroupVersionResource]upsyncSource{}
	for _, src := range fixedUpsyncSources(testStKey) {
		sources[src.gvr] = src
	}
	configMaps := upsyncSource{gvr: configMapsGVR, selector: "x"}
	object := func(apiVersion, kind, namespace, name string, labels map[string]string, extra map[string]any) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind}}
		u.SetName(name)
		u.SetNamespace(namespace)
		u.SetLabels(labels)
		for k, v := range extra {
			u.Object[k] = v
		}
		return u
	}
	upsync := map[string]string{testStateKey: workloadv1alpha1.ResourceStateUpsync}
	owned := map[string]string{workloadv1alpha1.InternalDownstreamClusterLabel: testStKey}
	claimIn := func(ns string) map[string]any {
		return map[string]any{"claimRef": map[string]any{"namespace": ns, "name": "data"}}
	}
	cases := []struct {
		name string
		src  upsyncSource
		obj  *unstructured.Unstructured
		want bool
	}{
		{"labelled pod", sources[podsGVR], object("v1", "Pod", upsyncDownstreamNamespace, "p", upsync, nil), true},
		{"labelled pod in a namespace not ours", sources[podsGVR], object("v1", "Pod", "foreign", "p", upsync, nil), false},
		{"pod without the label", sources[podsGVR], object("v1", "Pod", upsyncDownstreamNamespace, "p", nil, nil), false},
		{"labelled object of an accepted type", configMaps, object("v1", "ConfigMap", upsyncDownstreamNamespace, "c", upsync, nil), true},
		{"labelled object synced down", configMaps, object("v1", "ConfigMap", upsyncDownstreamNamespace, "c", map[string]string{testStateKey: "Upsync", workloadv1alpha1.InternalDownstreamClusterLabel: testStKey}, nil), false},
		{"endpoints asked for", sources[endpointsGVR], object("v1", "Endpoints", upsyncDownstreamNamespace, "both", owned, nil), true},
		{"endpoints not asked for", sources[endpointsGVR], object("v1", "Endpoints", upsyncDownstreamNamespace, "slices", owned, nil), false},
		{"endpoints without a Service", sources[endpointsGVR], object("v1", "Endpoints", upsyncDownstreamNamespace, "none", owned, nil), false},
		{"slice asked for", sources[endpointSlicesGVR], object("discovery.k8s.io/v1", "EndpointSlice", upsyncDownstreamNamespace, "slices-x1", map[string]string{serviceNameLabel: "slices"}, nil), true},
		{"slice not asked for", sources[endpointSlicesGVR], object("discovery.k8s.io/v1", "EndpointSlice", upsyncDownstreamNamespace, "plain-x1", map[string]string{serviceNameLabel: "plain"}, nil), false},
		{"volume bound to a claim of ours", sources[persistentVolumesGVR], object("v1", "PersistentVolume", "", "pv", nil, map[string]any{"spec": claimIn(upsyncDownstreamNamespace)}), true},
		{"volume synced down from the workspace", sources[persistentVolumesGVR], object("v1", "PersistentVolume", "", "pv", owned, map[string]any{"spec": claimIn(upsyncDownstreamNamespace)}), false},
		{"volume bound elsewhere", sources[persistentVolumesGVR], object("v1", "PersistentVolume", "", "pv", nil, map[string]any{"spec": claimIn("foreign")}), false},
		{"volume not bound", sources[persistentVolumesGVR], object("v1", "PersistentVolume", "", "pv", nil, map[string]any{"spec": map[string]any{}}), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, got := rules.locatorFor(tc.src, tc.obj); got != tc.want {
				t.Errorf("locatorFor() = %v, want %v", got, tc.want)
			}
		})
	}
}
