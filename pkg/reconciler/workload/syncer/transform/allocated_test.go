package transform

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestTransformAllocatedFields(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in, want map[string]any
	}{
		{
			name: "service: cluster IPs and node ports removed",
			in: map[string]any{"apiVersion": "v1", "kind": "Service", "spec": map[string]any{
				"type": "LoadBalancer", "clusterIP": "10.96.4.7", "clusterIPs": []any{"10.96.4.7"}, "healthCheckNodePort": int64(31000),
				"externalTrafficPolicy": "Local",
				"ports":                 []any{map[string]any{"port": int64(80), "nodePort": int64(30080)}},
			}},
			want: map[string]any{"apiVersion": "v1", "kind": "Service", "spec": map[string]any{
				"type": "LoadBalancer", "externalTrafficPolicy": "Local",
				"ports": []any{map[string]any{"port": int64(80)}},
			}},
		},
		{
			name: "headless service stays headless",
			in: map[string]any{"apiVersion": "v1", "kind": "Service", "spec": map[string]any{
				"clusterIP": "None", "clusterIPs": []any{"None"},
			}},
			want: map[string]any{"apiVersion": "v1", "kind": "Service", "spec": map[string]any{
				"clusterIP": "None", "clusterIPs": []any{"None"},
			}},
		},
		{
			name: "job: generated selector and labels removed",
			in: map[string]any{"apiVersion": "batch/v1", "kind": "Job", "spec": map[string]any{
				"selector": map[string]any{"matchLabels": map[string]any{"batch.kubernetes.io/controller-uid": "u"}},
				"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{
					"controller-uid": "u", "batch.kubernetes.io/controller-uid": "u", "job-name": "pi",
				}}},
			}},
			want: map[string]any{"apiVersion": "batch/v1", "kind": "Job", "spec": map[string]any{
				"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"job-name": "pi"}}},
			}},
		},
		{
			name: "job with a manual selector is kept",
			in: map[string]any{"apiVersion": "batch/v1", "kind": "Job", "spec": map[string]any{
				"manualSelector": true,
				"selector":       map[string]any{"matchLabels": map[string]any{"app": "pi"}},
			}},
			want: map[string]any{"apiVersion": "batch/v1", "kind": "Job", "spec": map[string]any{
				"manualSelector": true,
				"selector":       map[string]any{"matchLabels": map[string]any{"app": "pi"}},
			}},
		},
		{
			name: "other kinds untouched",
			in:   map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "data": map[string]any{"clusterIP": "x"}},
			want: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "data": map[string]any{"clusterIP": "x"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: tc.in}
			if err := (AllocatedFieldsTransformer{}).TransformDown(t.Context(), Context{}, nil, obj); err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(obj.Object, tc.want) {
				t.Errorf("got %v\nwant %v", obj.Object, tc.want)
			}
		})
	}
}
