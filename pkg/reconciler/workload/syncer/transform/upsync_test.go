package transform

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func TestPodUpsyncTransformer(t *testing.T) {
	state := workloadv1alpha1.ClusterResourceStateLabel(stKey)
	other := workloadv1alpha1.ClusterResourceStateLabel(otherKey)
	template := `{"metadata": {"labels": {"app": "a", "state.workload.kcp.io/OTHERKEY": "Upsync"}}, "spec": {"containers": []}}`
	cases := []struct {
		gvr  schema.GroupVersionResource
		js   string
		path []string
	}{
		{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"},
			`{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "ns"}, "spec": {"template": ` + template + `}}`,
			[]string{"spec", "template", "metadata", "labels"}},
		{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"},
			`{"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s", "namespace": "ns"}, "spec": {"template": ` + template + `}}`,
			[]string{"spec", "template", "metadata", "labels"}},
		{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"},
			`{"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "s", "namespace": "ns"}, "spec": {"template": {"spec": {}}}}`,
			[]string{"spec", "template", "metadata", "labels"}},
		{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"},
			`{"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "s", "namespace": "ns"}, "spec": {"template": ` + template + `}}`,
			[]string{"spec", "template", "metadata", "labels"}},
		{schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"},
			`{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "ns"}, "spec": {"template": ` + template + `}}`,
			[]string{"spec", "template", "metadata", "labels"}},
		{schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"},
			`{"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "ns"}, "spec": {"jobTemplate": {"spec": {"template": ` + template + `}}}}`,
			[]string{"spec", "jobTemplate", "spec", "template", "metadata", "labels"}},
	}
	for _, tc := range cases {
		t.Run(tc.gvr.Resource, func(t *testing.T) {
			got, err := DefaultChain().Down(context.Background(), namespacedContext(tc.gvr), obj(t, tc.js))
			if err != nil {
				t.Fatal(err)
			}
			labels, _, _ := unstructured.NestedStringMap(got.Object, tc.path...)
			if labels[state] != workloadv1alpha1.ResourceStateUpsync {
				t.Errorf("pod template labels = %v, want %s=Upsync", labels, state)
			}
			if _, ok := labels[other]; ok {
				t.Errorf("pod template keeps another target's state label: %v", labels)
			}
			if _, ok := got.GetLabels()[state]; ok {
				t.Errorf("the object itself got the state label: %v", got.GetLabels())
			}
		})
	}
	t.Run("other types are untouched", func(t *testing.T) {
		gvr := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
		in := obj(t, `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns"}, "spec": {"template": {"metadata": {}}}}`)
		got, err := DefaultChain().Down(context.Background(), namespacedContext(gvr), in)
		if err != nil {
			t.Fatal(err)
		}
		if _, found, _ := unstructured.NestedFieldNoCopy(got.Object, "spec", "template", "metadata", "labels"); found {
			t.Errorf("a ConfigMap got template labels: %v", got.Object)
		}
	})
}
