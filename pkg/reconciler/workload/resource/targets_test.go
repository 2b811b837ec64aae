package resource

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func TestTargetKeys(t *testing.T) {
	got := TargetKeys(
		map[string]string{workloadv1alpha1.ClusterResourceStateLabel("a"): "", "app": "web"},
		map[string]string{workloadv1alpha1.SpecDiffAnnotation("b"): "[]", workloadv1alpha1.DeletionAnnotation("a"): "x", "other": "y"},
		[]string{workloadv1alpha1.SyncerFinalizerName("c"), "example.com/keep"},
	)
	if want := []string{"a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("TargetKeys = %v, want %v", got, want)
	}
}

func TestObjectsFor(t *testing.T) {
	withFinalizers := func(f ...string) func(*unstructured.Unstructured) {
		return func(u *unstructured.Unstructured) { u.SetFinalizers(f) }
	}
	env := newTestEnv(t, nil, []*corev1.Namespace{newNamespace(testNamespace, nil, nil), newNamespace("api", nil, nil)},
		[]*unstructured.Unstructured{
			configMap(testNamespace, "labelled", withLabels(map[string]string{workloadv1alpha1.ClusterResourceStateLabel(stKeyEast): "Sync"})),
			configMap("api", "finalizer-only", withFinalizers(workloadv1alpha1.SyncerFinalizerName(stKeyEast))),
			deployment(testNamespace, "annotated", withAnnotations(map[string]string{workloadv1alpha1.StatusAnnotation(stKeyEast): "{}"})),
			configMap(testNamespace, "west", withLabels(map[string]string{workloadv1alpha1.ClusterResourceStateLabel(stKeyWest): "Sync"})),
			configMap(testNamespace, "plain"),
		}, nil)
	var got []string
	for _, o := range env.c.ObjectsFor(stKeyEast) {
		if o.Workspace != testWorkspace {
			t.Errorf("object %s in workspace %q", o.Object.GetName(), o.Workspace)
		}
		got = append(got, o.Resource.Resource+"/"+o.Object.GetNamespace()+"/"+o.Object.GetName())
	}
	want := []string{"configmaps/api/finalizer-only", "configmaps/web/labelled", "deployments/web/annotated"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ObjectsFor(east) = %v, want %v", got, want)
	}

	// The index follows later changes.
	client := env.dynamic.Resource(configMapsGVR).Namespace(testNamespace)
	if _, err := client.Update(t.Context(), configMap(testNamespace, "plain", withFinalizers(workloadv1alpha1.SyncerFinalizerName(stKeyEast))), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the updated object in ObjectsFor", func() bool { return len(env.c.ObjectsFor(stKeyEast)) == 4 })
}
