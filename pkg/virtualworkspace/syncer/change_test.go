package syncer

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const testKey = "k1"

func testObject() map[string]any {
	return map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata": map[string]any{
			"name": "c", "namespace": "ns", "resourceVersion": "10", "uid": "u1",
			"labels": map[string]any{
				workloadv1alpha1.ClusterResourceStateLabel(testKey): "Sync",
				workloadv1alpha1.ClusterResourceStateLabel("k2"):    "Sync",
				"app": "web",
			},
			"annotations": map[string]any{
				workloadv1alpha1.DeletionAnnotation(testKey): "2026-01-01T00:00:00Z",
				workloadv1alpha1.StatusAnnotation("k2"):      `{"a":1}`,
				workloadv1alpha1.SpecDiffAnnotation(testKey): `[]`,
			},
			"finalizers":    []any{"other/finalizer", workloadv1alpha1.SyncerFinalizerName("k2")},
			"managedFields": []any{map[string]any{"manager": "x"}},
		},
		"data": map[string]any{"k": "v"},
	}
}

func TestCheckedWriteMergePatch(t *testing.T) {
	tests := []struct {
		name, patch string
		// wantCode is 0 for an accepted write.
		wantCode int32
	}{
		{name: "add own finalizer", patch: `{"metadata":{"resourceVersion":"10","finalizers":["other/finalizer","` + workloadv1alpha1.SyncerFinalizerName("k2") + `","` + workloadv1alpha1.SyncerFinalizerName(testKey) + `"]}}`},
		{name: "add own finalizer without precondition", patch: `{"metadata":{"finalizers":["other/finalizer","` + workloadv1alpha1.SyncerFinalizerName("k2") + `","` + workloadv1alpha1.SyncerFinalizerName(testKey) + `"]}}`},
		{name: "release: own label, deletion and status annotations", patch: `{"metadata":{"labels":{"` + workloadv1alpha1.ClusterResourceStateLabel(testKey) + `":null},"annotations":{"` + workloadv1alpha1.DeletionAnnotation(testKey) + `":null,"` + workloadv1alpha1.StatusAnnotation(testKey) + `":null}}}`},
		{name: "own status annotation", patch: `{"metadata":{"annotations":{"` + workloadv1alpha1.StatusAnnotation(testKey) + `":"{\"b\":2}"}}}`},
		{name: "no change", patch: `{}`},
		{name: "remove another finalizer", patch: `{"metadata":{"finalizers":["` + workloadv1alpha1.SyncerFinalizerName("k2") + `"]}}`, wantCode: 403},
		{name: "remove another target's finalizer", patch: `{"metadata":{"finalizers":["other/finalizer"]}}`, wantCode: 403},
		{name: "data change", patch: `{"data":{"k":"x"}}`, wantCode: 403},
		{name: "user label", patch: `{"metadata":{"labels":{"app":"db"}}}`, wantCode: 403},
		{name: "own label changed, not removed", patch: `{"metadata":{"labels":{"` + workloadv1alpha1.ClusterResourceStateLabel(testKey) + `":"Upsync"}}}`, wantCode: 403},
		{name: "other target's label", patch: `{"metadata":{"labels":{"` + workloadv1alpha1.ClusterResourceStateLabel("k2") + `":null}}}`, wantCode: 403},
		{name: "other target's status annotation", patch: `{"metadata":{"annotations":{"` + workloadv1alpha1.StatusAnnotation("k2") + `":"{}"}}}`, wantCode: 403},
		{name: "own spec-diff annotation", patch: `{"metadata":{"annotations":{"` + workloadv1alpha1.SpecDiffAnnotation(testKey) + `":null}}}`, wantCode: 403},
		{name: "own deletion annotation set", patch: `{"metadata":{"annotations":{"` + workloadv1alpha1.DeletionAnnotation(testKey) + `":"2027-01-01T00:00:00Z"}}}`, wantCode: 403},
		{name: "managedFields", patch: `{"metadata":{"managedFields":null}}`, wantCode: 403},
		{name: "owner references", patch: `{"metadata":{"ownerReferences":[{"apiVersion":"v1","kind":"X","name":"x","uid":"y"}]}}`, wantCode: 403},
		{name: "stale resourceVersion", patch: `{"metadata":{"resourceVersion":"9"}}`, wantCode: 409},
		{name: "not an object", patch: `[]`, wantCode: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request{Verb: verbPatch, GR: schema.GroupResource{Resource: "configmaps"}, Name: "c"}
			out, err := checkedWrite(req, testObject(), []byte(tt.patch), testKey)
			if tt.wantCode != 0 {
				if code := statusCode(err); code != tt.wantCode {
					t.Fatalf("got code %d (%v), want %d", code, err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			forwarded := map[string]any{}
			if err := json.Unmarshal(out, &forwarded); err != nil {
				t.Fatal(err)
			}
			if rv := resourceVersionOf(forwarded); rv != "10" {
				t.Errorf("forwarded without the checked object's resourceVersion: %s", out)
			}
		})
	}
}

func TestCheckedWriteUpdate(t *testing.T) {
	req := request{Verb: verbUpdate, GR: schema.GroupResource{Resource: "configmaps"}, Name: "c"}
	withFinalizer := testObject()
	meta := withFinalizer["metadata"].(map[string]any)
	meta["finalizers"] = append(meta["finalizers"].([]any), workloadv1alpha1.SyncerFinalizerName(testKey))
	delete(meta, "managedFields") // an update leaving managedFields out keeps them
	delete(withFinalizer, "apiVersion")
	out, err := checkedWrite(req, testObject(), mustJSON(t, withFinalizer), testKey)
	if err != nil {
		t.Fatalf("finalizer update refused: %v", err)
	}
	// The update forwarded is the object validated: what it left out is current's.
	forwarded := map[string]any{}
	if err := json.Unmarshal(out, &forwarded); err != nil {
		t.Fatal(err)
	}
	if fm := forwarded["metadata"].(map[string]any)["managedFields"]; fm == nil || forwarded["apiVersion"] != "v1" {
		t.Errorf("forwarded update lacks the fields it left out: %s", out)
	}
	changed := testObject()
	changed["data"] = map[string]any{"k": "x"}
	_, err = checkedWrite(req, testObject(), mustJSON(t, changed), testKey)
	if code := statusCode(err); code != 403 || !strings.Contains(err.Error(), "data") {
		t.Errorf("data update: got %v, want a 403 naming data", err)
	}
}

func TestWritableHere(t *testing.T) {
	obj := testObject()
	if !writableHere(obj, testKey) {
		t.Error("an object labelled for the target is not writable")
	}
	if writableHere(obj, "k3") {
		t.Error("an object of another target is writable")
	}
	meta := obj["metadata"].(map[string]any)
	meta["finalizers"] = append(meta["finalizers"].([]any), workloadv1alpha1.SyncerFinalizerName("k4"))
	if !writableHere(obj, "k4") {
		t.Error("an object holding the target's finalizer, without its label, is not writable")
	}
}

func statusCode(err error) int32 {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return 0
	}
	return status.Status().Code
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
