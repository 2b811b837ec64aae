package transform

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// maxPatchedSpecBytes bounds the size of a patched .spec. JSON-patch "copy" operations can
// double the document each time, so a small annotation could otherwise exhaust the
// syncer's memory; nothing larger could be stored downstream anyway (the apiserver
// limits requests to 3 MiB).
const maxPatchedSpecBytes = 3 << 20

// SpecDiffTransformer applies the RFC 6902 JSON patch in the annotation
// experimental.spec-diff.workload.kcp.io/<stKey> of this target to .spec; paths are relative
// to .spec, e.g. [{"op":"replace","path":"/replicas","value":1}]. Other targets' patches are
// ignored. An empty annotation means no patch. A patch that is not valid JSON, does not
// apply, is set on an object without a .spec object, or leaves .spec not an object is an
// *InvalidInputError naming the annotation.
type SpecDiffTransformer struct{}

// Name implements Transformer.
func (SpecDiffTransformer) Name() string { return "spec-diff" }

// TransformDown implements Transformer.
func (SpecDiffTransformer) TransformDown(_ context.Context, tc Context, upstream, downstream *unstructured.Unstructured) error {
	key := workloadv1alpha1.SpecDiffAnnotation(tc.SyncTargetKey)
	value, ok := upstream.GetAnnotations()[key]
	if !ok || strings.TrimSpace(value) == "" {
		return nil
	}

	patch, err := jsonpatch.DecodePatch([]byte(value))
	if err != nil {
		return invalidInput(key, "not a JSON patch (want a JSON array of RFC 6902 operations)", err)
	}

	spec, found := downstream.Object["spec"]
	if !found || spec == nil {
		return invalidInput(key, "the object has no .spec to patch", nil)
	}
	if _, isMap := spec.(map[string]interface{}); !isMap {
		return invalidInput(key, fmt.Sprintf("the object's .spec is %s, not an object", jsonKind(spec)), nil)
	}
	doc, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("failed to encode .spec: %w", err)
	}

	patched, err := applyBounded(patch, doc)
	if err != nil {
		return invalidInput(key, "the patch does not apply to .spec", err)
	}

	var out interface{}
	if err := utiljson.Unmarshal(patched, &out); err != nil {
		return fmt.Errorf("failed to decode patched .spec: %w", err)
	}
	newSpec, isMap := out.(map[string]interface{})
	if !isMap {
		return invalidInput(key, fmt.Sprintf("the patch turns .spec into %s, not an object", jsonKind(out)), nil)
	}
	downstream.Object["spec"] = newSpec
	return nil
}

// applyBounded applies patch to doc and fails when the result exceeds maxPatchedSpecBytes.
// Only "copy" can grow a document beyond the size of the patch, so patches with copies are
// applied one operation at a time, checking the size after each.
func applyBounded(patch jsonpatch.Patch, doc []byte) ([]byte, error) {
	hasCopy := false
	for _, op := range patch {
		if op.Kind() == "copy" {
			hasCopy = true
			break
		}
	}
	if !hasCopy {
		out, err := patch.Apply(doc)
		if err != nil {
			return nil, err
		}
		return out, checkSize(out)
	}
	for _, op := range patch {
		var err error
		if doc, err = (jsonpatch.Patch{op}).Apply(doc); err != nil {
			return nil, err
		}
		if err := checkSize(doc); err != nil {
			return nil, err
		}
	}
	return doc, nil
}

func checkSize(doc []byte) error {
	if len(doc) > maxPatchedSpecBytes {
		return fmt.Errorf("patched .spec is larger than %d bytes", maxPatchedSpecBytes)
	}
	return nil
}

// jsonKind names the JSON type of a decoded value, for error messages.
func jsonKind(v interface{}) string {
	switch v.(type) {
	case nil:
		return "null"
	case []interface{}:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case map[string]interface{}:
		return "an object"
	default:
		return "a number"
	}
}
