package transform

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// desiredForAdoption is what the syncer would apply: the user's fields plus its own
// ownership label, spec hash and a policy annotation copied from upstream.
const desiredForAdoption = `{
  "apiVersion": "v1", "kind": "ConfigMap",
  "metadata": {"name": "web", "namespace": "kcp-0123456789ab",
    "labels": {"app": "web", "internal.workload.kcp.io/cluster": "STKEY"},
    "annotations": {"internal.workload.kcp.io/spec-hash": "0123456789abcdef",
      "workload.tmc.dev/conflict-policy": "AdoptIfEqual", "team": "a"}},
  "data": {"a": "1", "b": "2", "c": "3", "d": "4", "empty": ""}
}`

// preExisting is the same object as created by hand downstream: none of the syncer's keys.
const preExisting = `{
  "apiVersion": "v1", "kind": "ConfigMap",
  "metadata": {"name": "web", "namespace": "kcp-0123456789ab", "uid": "u-1", "resourceVersion": "5",
    "labels": {"app": "web"}, "annotations": {"team": "a"}},
  "data": {"a": "1", "b": "2", "c": "3", "d": "4"}
}`

func TestAdoptionDifferences(t *testing.T) {
	tests := []struct {
		name  string
		live  func(l *unstructured.Unstructured)
		limit int
		want  []string
	}{
		{
			name: "equal but for the syncer's keys: nothing differs",
		},
		{
			name: "fields only the live object has do not count",
			live: func(l *unstructured.Unstructured) {
				l.Object["data"].(map[string]interface{})["extra"] = "x"
				l.SetLabels(map[string]string{"app": "web", "owner": "ops"})
			},
		},
		{
			name:  "one value differs",
			live:  func(l *unstructured.Unstructured) { l.Object["data"].(map[string]interface{})["b"] = "two" },
			limit: 3,
			want:  []string{"data.b"},
		},
		{
			name: "several differ: the first few, sorted",
			live: func(l *unstructured.Unstructured) {
				data := l.Object["data"].(map[string]interface{})
				data["a"], data["c"], data["d"] = "x", "x", "x"
				l.SetLabels(nil)
			},
			limit: 3,
			want:  []string{"data.a", "data.c", "data.d"},
		},
		{
			name: "a missing user label and annotation",
			live: func(l *unstructured.Unstructured) {
				l.SetLabels(nil)
				l.SetAnnotations(map[string]string{"team": "b"})
			},
			limit: 5,
			want:  []string{"metadata.annotations.team", "metadata.labels"}, // the whole map is missing
		},
		{
			name:  "limit below one reports one",
			live:  func(l *unstructured.Unstructured) { l.Object["data"] = map[string]interface{}{} },
			limit: 0,
			want:  []string{"data.a"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			desired := obj(t, desiredForAdoption)
			before := desired.DeepCopy()
			live := obj(t, preExisting)
			if tc.live != nil {
				tc.live(live)
			}
			got := AdoptionDifferences(desired, live, tc.limit)
			if !slices.Equal(got, tc.want) {
				t.Errorf("AdoptionDifferences = %q, want %q", got, tc.want)
			}
			expectObject(t, desired, before)
		})
	}
}

// The ownership label and the spec hash are what make NeedsApply apply over a pre-existing
// object: AdoptionDifferences must ignore exactly those, not the user's fields.
func TestAdoptionDifferencesIgnoresOnlyBookkeeping(t *testing.T) {
	desired, live := obj(t, desiredForAdoption), obj(t, preExisting)
	if need, _ := NeedsApply(desired, live); !need {
		t.Fatal("NeedsApply over a pre-existing object without the syncer's keys must apply")
	}
	if got := AdoptionDifferences(desired, live, 3); len(got) != 0 {
		t.Errorf("AdoptionDifferences = %q, want none", got)
	}
	delete(live.Object, "data")
	if got := AdoptionDifferences(desired, live, 3); !slices.Equal(got, []string{"data"}) {
		t.Errorf("AdoptionDifferences without data = %q, want [data]", got)
	}
}
