package transform

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/diff"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

var (
	// stKey is this test's SyncTarget key; otherKey is another target's.
	stKey    = workloadv1alpha1.ToSyncTargetKey("root:org:locations", "cluster-1")
	otherKey = workloadv1alpha1.ToSyncTargetKey("root:org:locations", "cluster-2")
)

func namespacedContext(gvr schema.GroupVersionResource) Context {
	return Context{
		SyncTargetKey:       stKey,
		SyncTargetName:      "cluster-1",
		UpstreamWorkspace:   "root:org:team-a",
		UpstreamNamespace:   "default",
		DownstreamNamespace: "kcp-0123456789ab",
		GVR:                 gvr,
	}
}

var (
	deploymentsGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	configMapsGVR  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	secretsGVR     = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
)

// obj decodes a JSON fixture in which STKEY and OTHERKEY stand for the two target keys.
// Numbers decode as int64 or float64, as in objects read from an apiserver.
func obj(t *testing.T, js string) *unstructured.Unstructured {
	t.Helper()
	js = strings.NewReplacer("OTHERKEY", otherKey, "STKEY", stKey).Replace(js)
	content := map[string]interface{}{}
	if err := utiljson.Unmarshal([]byte(js), &content); err != nil {
		t.Fatalf("invalid fixture: %v\n%s", err, js)
	}
	return &unstructured.Unstructured{Object: content}
}

func expectObject(t *testing.T, got, want *unstructured.Unstructured) {
	t.Helper()
	if got == nil || want == nil {
		if got != want {
			t.Fatalf("got %v, want %v", got, want)
		}
		return
	}
	if !equality.Semantic.DeepEqual(got.Object, want.Object) {
		t.Errorf("unexpected object (-want +got):\n%s", diff.Diff(want.Object, got.Object))
	}
}

func expectUnchanged(t *testing.T, before, after *unstructured.Unstructured) {
	t.Helper()
	if !equality.Semantic.DeepEqual(before.Object, after.Object) {
		t.Errorf("input object was modified (-before +after):\n%s", diff.Diff(before.Object, after.Object))
	}
}
