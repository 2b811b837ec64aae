package transform

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// deploymentWith returns a small Deployment fixture with the given extra annotations.
func deploymentWith(t *testing.T, annotations map[string]string) string {
	t.Helper()
	u := map[string]interface{}{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata": map[string]interface{}{
			"name":        "web",
			"namespace":   "default",
			"labels":      map[string]interface{}{"state.workload.kcp.io/STKEY": "Sync"},
			"annotations": annotations,
		},
		"spec": map[string]interface{}{
			"replicas": 3,
			"paused":   false,
			"template": map[string]interface{}{
				"metadata": map[string]interface{}{"annotations": map[string]interface{}{"a": "b"}},
				"spec":     map[string]interface{}{"containers": []interface{}{map[string]interface{}{"name": "c", "image": "i"}}},
			},
		},
	}
	data, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestSpecDiff(t *testing.T) {
	specDiff := workloadv1alpha1.SpecDiffAnnotation(stKey)
	otherSpecDiff := workloadv1alpha1.SpecDiffAnnotation(otherKey)

	tests := []struct {
		name        string
		annotations map[string]string
		// wantSpec is checked field by field: dotted path -> value (nil = absent).
		wantSpec map[string]interface{}
		wantErr  string // substring; the error must also be an InvalidInputError naming specDiff
	}{
		{
			name:        "replace and add",
			annotations: map[string]string{specDiff: `[{"op":"replace","path":"/replicas","value":1},{"op":"add","path":"/minReadySeconds","value":5}]`},
			wantSpec:    map[string]interface{}{"replicas": int64(1), "minReadySeconds": int64(5)},
		},
		{
			name:        "remove a nested field",
			annotations: map[string]string{specDiff: `[{"op":"remove","path":"/template/metadata/annotations/a"}]`},
			wantSpec:    map[string]interface{}{"replicas": int64(3), "template.metadata.annotations.a": nil},
		},
		{
			name:        "patch for another target is ignored",
			annotations: map[string]string{otherSpecDiff: `[{"op":"replace","path":"/replicas","value":9}]`},
			wantSpec:    map[string]interface{}{"replicas": int64(3)},
		},
		{
			name:        "another target's invalid patch is ignored",
			annotations: map[string]string{otherSpecDiff: `not json`},
			wantSpec:    map[string]interface{}{"replicas": int64(3)},
		},
		{
			name:        "empty annotation is no patch",
			annotations: map[string]string{specDiff: " "},
			wantSpec:    map[string]interface{}{"replicas": int64(3)},
		},
		{
			name:        "empty patch",
			annotations: map[string]string{specDiff: `[]`},
			wantSpec:    map[string]interface{}{"replicas": int64(3)},
		},
		{
			name:        "copy within the size limit",
			annotations: map[string]string{specDiff: `[{"op":"copy","from":"/replicas","path":"/minReadySeconds"}]`},
			wantSpec:    map[string]interface{}{"replicas": int64(3), "minReadySeconds": int64(3)},
		},
		{
			name:        "invalid JSON",
			annotations: map[string]string{specDiff: `[{"op":`},
			wantErr:     "not a JSON patch",
		},
		{
			name:        "a JSON object instead of a list of operations",
			annotations: map[string]string{specDiff: `{"op":"replace","path":"/replicas","value":1}`},
			wantErr:     "not a JSON patch",
		},
		{
			name:        "remove of a missing field",
			annotations: map[string]string{specDiff: `[{"op":"remove","path":"/nope"}]`},
			wantErr:     "does not apply",
		},
		{
			name:        "failed test operation",
			annotations: map[string]string{specDiff: `[{"op":"test","path":"/replicas","value":4}]`},
			wantErr:     "does not apply",
		},
		{
			name:        "unknown operation",
			annotations: map[string]string{specDiff: `[{"op":"frobnicate","path":"/replicas"}]`},
			wantErr:     "does not apply",
		},
		{
			name:        "spec replaced by a list",
			annotations: map[string]string{specDiff: `[{"op":"replace","path":"","value":[1]}]`},
			wantErr:     "not an object",
		},
		{
			name: "copies growing past the size limit",
			annotations: map[string]string{specDiff: func() string {
				// Copying /a into itself doubles it each time: 64 KiB * 2^8 = 16 MiB.
				ops := []string{`{"op":"add","path":"/a","value":{"x":"` + strings.Repeat("x", 1<<16) + `"}}`}
				for i := range 8 {
					ops = append(ops, fmt.Sprintf(`{"op":"copy","from":"/a","path":"/a/c%d"}`, i))
				}
				return "[" + strings.Join(ops, ",") + "]"
			}()},
			wantErr: "larger than",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upstream := obj(t, deploymentWith(t, tt.annotations))
			before := upstream.DeepCopy()

			got, err := DefaultChain().Down(t.Context(), namespacedContext(deploymentsGVR), upstream)
			expectUnchanged(t, before, upstream)
			if tt.wantErr != "" {
				expectInvalidInput(t, err, specDiff, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("Down() error = %v", err)
			}
			expectFields(t, got.Object["spec"].(map[string]interface{}), tt.wantSpec)
			for k := range got.GetAnnotations() {
				if strings.HasPrefix(k, workloadv1alpha1.ClusterSpecDiffAnnotationPrefix) {
					t.Errorf("spec-diff annotation %q must not be sent downstream", k)
				}
			}
		})
	}
}

func TestSpecDiffOnObjectWithoutSpec(t *testing.T) {
	specDiff := workloadv1alpha1.SpecDiffAnnotation(stKey)
	upstream := obj(t, `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default",
	  "annotations": {"`+specDiff+`": "[{\"op\":\"add\",\"path\":\"/x\",\"value\":1}]"}}, "data": {"a": "b"}}`)
	_, err := DefaultChain().Down(t.Context(), namespacedContext(configMapsGVR), upstream)
	expectInvalidInput(t, err, specDiff, "no .spec")
}

func expectInvalidInput(t *testing.T, err error, annotation, substring string) {
	t.Helper()
	if err == nil {
		t.Fatalf("error = nil, want an invalid-input error containing %q", substring)
	}
	var ie *InvalidInputError
	if !errors.As(err, &ie) || !errors.Is(err, ErrInvalidInput) || !IsInvalidInput(err) {
		t.Fatalf("error = %v, want an *InvalidInputError", err)
	}
	if ie.Annotation != annotation {
		t.Errorf("InvalidInputError.Annotation = %q, want %q", ie.Annotation, annotation)
	}
	if !strings.Contains(err.Error(), annotation) || !strings.Contains(err.Error(), substring) {
		t.Errorf("error = %q, want it to name %q and contain %q", err, annotation, substring)
	}
	if IsFiltered(err) {
		t.Errorf("invalid input must not be reported as filtered")
	}
}

// expectFields checks dotted paths in m; a nil want means the field must be absent.
func expectFields(t *testing.T, m map[string]interface{}, want map[string]interface{}) {
	t.Helper()
	for path, w := range want {
		var cur interface{} = m
		found := true
		for _, seg := range strings.Split(path, ".") {
			cm, ok := cur.(map[string]interface{})
			if !ok {
				found = false
				break
			}
			if cur, ok = cm[seg]; !ok {
				found = false
				break
			}
		}
		switch {
		case w == nil && found:
			t.Errorf("%s = %v, want it absent", path, cur)
		case w != nil && !found:
			t.Errorf("%s is absent, want %v", path, w)
		case w != nil && cur != w:
			t.Errorf("%s = %#v, want %#v", path, cur, w)
		}
	}
}
