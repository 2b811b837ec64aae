package transform

import (
	"testing"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func TestTransformDownstreamOwnedFields(t *testing.T) {
	tests := []struct {
		name        string
		annotations map[string]string
		wantSpec    map[string]interface{}
		wantErr     string
	}{
		{
			name:        "replicas owned by an HPA",
			annotations: map[string]string{DownstreamOwnedFieldsAnnotation: "spec.replicas"},
			wantSpec:    map[string]interface{}{"replicas": nil, "paused": false},
		},
		{
			name:        "several paths, blanks and spaces tolerated",
			annotations: map[string]string{DownstreamOwnedFieldsAnnotation: " spec.replicas , spec.template.metadata.annotations,,"},
			wantSpec:    map[string]interface{}{"replicas": nil, "template.metadata.annotations": nil, "paused": false},
		},
		{
			name:        "missing field is not an error",
			annotations: map[string]string{DownstreamOwnedFieldsAnnotation: "spec.strategy.rollingUpdate"},
			wantSpec:    map[string]interface{}{"replicas": int64(3)},
		},
		{
			name: "policy wins over a spec-diff on the same field",
			annotations: map[string]string{
				DownstreamOwnedFieldsAnnotation:            "spec.replicas",
				workloadv1alpha1.SpecDiffAnnotation(stKey): `[{"op":"replace","path":"/replicas","value":1}]`,
			},
			wantSpec: map[string]interface{}{"replicas": nil},
		},
		{
			name:        "empty segment",
			annotations: map[string]string{DownstreamOwnedFieldsAnnotation: "spec..replicas"},
			wantErr:     "empty segment",
		},
		{
			name:        "leading dot",
			annotations: map[string]string{DownstreamOwnedFieldsAnnotation: ".spec"},
			wantErr:     "empty segment",
		},
		{
			name:        "metadata",
			annotations: map[string]string{DownstreamOwnedFieldsAnnotation: "metadata.labels"},
			wantErr:     "under metadata",
		},
		{
			name:        "status",
			annotations: map[string]string{DownstreamOwnedFieldsAnnotation: "spec.replicas,status"},
			wantErr:     "under status",
		},
		{
			name:        "kind",
			annotations: map[string]string{DownstreamOwnedFieldsAnnotation: "kind"},
			wantErr:     "under kind",
		},
		{
			name:        "path through a list",
			annotations: map[string]string{DownstreamOwnedFieldsAnnotation: "spec.template.spec.containers.image"},
			wantErr:     "runs through an array",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upstream := obj(t, deploymentWith(t, tt.annotations))
			before := upstream.DeepCopy()

			got, err := DefaultChain().Down(t.Context(), namespacedContext(deploymentsGVR), upstream)
			expectUnchanged(t, before, upstream)
			if tt.wantErr != "" {
				expectInvalidInput(t, err, DownstreamOwnedFieldsAnnotation, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("Down() error = %v", err)
			}
			expectFields(t, got.Object["spec"].(map[string]interface{}), tt.wantSpec)
			if _, ok := got.GetAnnotations()[DownstreamOwnedFieldsAnnotation]; ok {
				t.Errorf("the policy annotation must not be sent downstream")
			}
			if w, ok := tt.wantSpec["replicas"]; !ok || w != nil {
				return
			}
			// Fields only live has are ignored, so a downstream controller's value is kept.
			live := got.DeepCopy()
			setNested(live.Object, int64(7), "spec", "replicas")
			if needs, reason := NeedsApply(got, live); needs {
				t.Errorf("NeedsApply() = true (%s) for a live object differing only in downstream-owned fields", reason)
			}
		})
	}
}

func setNested(m map[string]interface{}, v interface{}, path ...string) {
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			m[p] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}
