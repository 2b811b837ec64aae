package dev

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes/fake"
)

func TestClusterNames(t *testing.T) {
	if got := clusterNames(1); len(got) != 1 || got[0] != "east" {
		t.Errorf("clusterNames(1) = %v", got)
	}
	if got := clusterNames(2); len(got) != 2 || got[1] != "west" {
		t.Errorf("clusterNames(2) = %v", got)
	}
}

// TestSampleAppIsPlaced: the Placement selects the demo namespace, the Deployment selects
// its own pods and reads the ConfigMap, the Service selects the Deployment's pods.
func TestSampleAppIsPlaced(t *testing.T) {
	app := newSampleApp()
	p := demoPlacement()
	if p.Spec.LocationWorkspace != locationWorkspace {
		t.Errorf("Placement points at %q", p.Spec.LocationWorkspace)
	}
	nsSel, err := metav1.LabelSelectorAsSelector(p.Spec.NamespaceSelector)
	if err != nil {
		t.Fatal(err)
	}
	if !nsSel.Matches(labels.Set(app.Namespace.Labels)) {
		t.Errorf("the Placement's selector %s does not select namespace labels %v", nsSel, app.Namespace.Labels)
	}
	d := app.Deployment
	if *d.Spec.Replicas != demoReplicas || d.Namespace != demoNamespace || d.Name != demoDeployment {
		t.Errorf("Deployment %s/%s with %d replicas", d.Namespace, d.Name, *d.Spec.Replicas)
	}
	podSel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if !podSel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Error("the Deployment does not select its own pods")
	}
	if !labels.SelectorFromSet(app.Service.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Error("the Service does not select the Deployment's pods")
	}
	if ref := d.Spec.Template.Spec.Containers[0].EnvFrom[0].ConfigMapRef; ref == nil || ref.Name != app.ConfigMap.Name {
		t.Errorf("the Deployment does not read ConfigMap %s", app.ConfigMap.Name)
	}
	for k := range app.Deployment.Labels {
		if k != "app" {
			t.Errorf("the sample app carries label %q: it must rely on the Placement alone", k)
		}
	}
}

func TestCreateIsIdempotent(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientset()
	for range 2 {
		if err := newSampleApp().create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.AppsV1().Deployments(demoNamespace).Get(ctx, demoDeployment, metav1.GetOptions{}); err != nil {
		t.Error(err)
	}
}
