package transform

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// DownstreamOwnedFieldsAnnotation on an upstream object lists, comma-separated, the dotted
// paths of fields that downstream controllers own, e.g.
// "spec.replicas,spec.template.metadata.annotations" for a Deployment scaled by an HPA.
// Those fields are left out of the applied object, so server-side apply neither owns them
// nor reverts the controllers' changes to them.
//
// Because the syncer does not send them, a newly created downstream object gets the
// downstream defaults for them (e.g. one replica), and fields the syncer owned before the
// policy was set are released as described by server-side apply: a field no other manager
// owns is removed (and possibly defaulted again).
const DownstreamOwnedFieldsAnnotation = "experimental.workload.kcp.io/downstream-owned-fields"

// DownstreamOwnedFieldsTransformer removes the fields listed in
// DownstreamOwnedFieldsAnnotation from the object applied downstream. An invalid list is an
// *InvalidInputError naming the annotation.
type DownstreamOwnedFieldsTransformer struct{}

// Name implements Transformer.
func (DownstreamOwnedFieldsTransformer) Name() string { return "downstream-owned-fields" }

// TransformDown implements Transformer.
func (DownstreamOwnedFieldsTransformer) TransformDown(_ context.Context, _ Context, upstream, downstream *unstructured.Unstructured) error {
	value, ok := upstream.GetAnnotations()[DownstreamOwnedFieldsAnnotation]
	if !ok {
		return nil
	}
	paths, err := ParseDownstreamOwnedFields(value)
	if err != nil {
		return err
	}
	for _, path := range paths {
		if err := removeField(downstream.Object, path); err != nil {
			return invalidInput(DownstreamOwnedFieldsAnnotation, err.Error(), nil)
		}
	}
	return nil
}

// ParseDownstreamOwnedFields parses the value of DownstreamOwnedFieldsAnnotation into field
// paths. Blank entries are ignored. A path with an empty segment, or starting with
// apiVersion, kind, metadata or status (which the syncer must control, or never sends), is
// an *InvalidInputError.
func ParseDownstreamOwnedFields(value string) ([][]string, error) {
	var paths [][]string
	for _, entry := range strings.Split(value, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		segments := strings.Split(entry, ".")
		for _, s := range segments {
			if s == "" {
				return nil, invalidInput(DownstreamOwnedFieldsAnnotation,
					fmt.Sprintf("field path %q has an empty segment", entry), nil)
			}
		}
		switch segments[0] {
		case "apiVersion", "kind", "metadata", "status":
			return nil, invalidInput(DownstreamOwnedFieldsAnnotation,
				fmt.Sprintf("field path %q is under %s, which cannot be owned downstream", entry, segments[0]), nil)
		}
		paths = append(paths, segments)
	}
	return paths, nil
}

// removeField deletes the field at path from obj. A missing field is not an error; a path
// that runs through something other than an object (a list, a scalar) is, because the user
// most likely expected it to select something.
func removeField(obj map[string]interface{}, path []string) error {
	m := obj
	for i, segment := range path {
		v, ok := m[segment]
		if !ok || v == nil {
			return nil
		}
		if i == len(path)-1 {
			delete(m, segment)
			return nil
		}
		next, isMap := v.(map[string]interface{})
		if !isMap {
			return fmt.Errorf("field path %q runs through %s at %q; only object fields can be selected",
				strings.Join(path, "."), jsonKind(v), strings.Join(path[:i+1], "."))
		}
		m = next
	}
	return nil
}
