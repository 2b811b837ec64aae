package transform

import (
	"context"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// AllocatedFieldsTransformer removes fields that the upstream apiserver allocated for its
// own cluster and that the physical cluster must allocate for itself:
//
//   - v1 Service: spec.clusterIP and spec.clusterIPs (kept when "None": a headless Service
//     must stay headless), spec.ports[].nodePort and spec.healthCheckNodePort. Copying them
//     would fail on a cluster with another service range, or collide with its own ports.
//   - batch/v1 Job without spec.manualSelector: spec.selector and the controller-uid labels
//     the apiserver generated in spec.template; the physical cluster generates its own and
//     rejects a selector it did not generate.
type AllocatedFieldsTransformer struct{}

// Name implements Transformer.
func (AllocatedFieldsTransformer) Name() string { return "allocated-fields" }

// TransformDown implements Transformer.
func (AllocatedFieldsTransformer) TransformDown(_ context.Context, _ Context, _, downstream *unstructured.Unstructured) error {
	gvk := downstream.GroupVersionKind()
	switch {
	case gvk.Group == "" && gvk.Kind == "Service":
		stripServiceAllocations(downstream.Object)
	case gvk.Group == "batch" && gvk.Kind == "Job":
		stripJobSelector(downstream.Object)
	}
	return nil
}

func stripServiceAllocations(obj map[string]any) {
	spec, ok := obj["spec"].(map[string]any)
	if !ok {
		return
	}
	if ip, _ := spec["clusterIP"].(string); ip != "None" {
		delete(spec, "clusterIP")
		delete(spec, "clusterIPs")
	}
	delete(spec, "healthCheckNodePort")
	if ports, ok := spec["ports"].([]any); ok {
		for _, p := range ports {
			if port, ok := p.(map[string]any); ok {
				delete(port, "nodePort")
			}
		}
	}
}

// jobGeneratedLabels are the labels the apiserver adds to a Job's selector and template.
var jobGeneratedLabels = []string{"controller-uid", "batch.kubernetes.io/controller-uid"}

func stripJobSelector(obj map[string]any) {
	spec, ok := obj["spec"].(map[string]any)
	if !ok {
		return
	}
	if manual, _ := spec["manualSelector"].(bool); manual {
		return
	}
	delete(spec, "selector")
	labels, found, err := unstructured.NestedMap(spec, "template", "metadata", "labels")
	if err != nil || !found {
		return
	}
	for _, l := range jobGeneratedLabels {
		delete(labels, l)
	}
	if len(labels) == 0 {
		unstructured.RemoveNestedField(spec, "template", "metadata", "labels")
		return
	}
	_ = unstructured.SetNestedMap(spec, labels, "template", "metadata", "labels")
}
