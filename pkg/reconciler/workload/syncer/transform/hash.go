package transform

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// SpecHashAnnotation on a downstream object holds Hash of the object the syncer last applied.
// Comparing it detects upstream changes that a subset check cannot see, such as a label or
// a field removed upstream.
const SpecHashAnnotation = "internal.workload.kcp.io/spec-hash"

// hashLength is the number of hex digits kept: 64 bits are plenty to tell two versions of
// one object apart, and keep the annotation short.
const hashLength = 16

// Hash returns a short, stable hash of desired: the first 16 hex digits of the SHA-256 of
// its canonical JSON (object keys sorted), ignoring SpecHashAnnotation itself. Map ordering
// does not matter, and neither does whether an integral number is held as int64 or float64.
func Hash(desired *unstructured.Unstructured) (string, error) {
	if desired == nil {
		return "", fmt.Errorf("failed to hash object: object is nil")
	}
	// Shallow copies down to the annotations, so that desired is not modified and not
	// deep-copied.
	content := make(map[string]interface{}, len(desired.Object))
	for k, v := range desired.Object {
		content[k] = v
	}
	if meta, ok := desired.Object["metadata"].(map[string]interface{}); ok {
		metaCopy := make(map[string]interface{}, len(meta))
		for k, v := range meta {
			metaCopy[k] = v
		}
		if annotations, ok := meta["annotations"].(map[string]interface{}); ok {
			if _, has := annotations[SpecHashAnnotation]; has {
				annotationsCopy := make(map[string]interface{}, len(annotations))
				for k, v := range annotations {
					if k != SpecHashAnnotation {
						annotationsCopy[k] = v
					}
				}
				if len(annotationsCopy) == 0 {
					delete(metaCopy, "annotations")
				} else {
					metaCopy["annotations"] = annotationsCopy
				}
			}
		}
		content["metadata"] = metaCopy
	}

	// encoding/json sorts map keys and prints integral float64s without a fraction, which
	// makes the encoding canonical for the JSON-shaped values unstructured objects hold.
	data, err := json.Marshal(content)
	if err != nil {
		return "", fmt.Errorf("failed to hash %s %q: %w", desired.GetKind(), desired.GetName(), err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:hashLength], nil
}

// SetHash computes Hash of desired and stores it in its SpecHashAnnotation.
func SetHash(desired *unstructured.Unstructured) error {
	h, err := Hash(desired)
	if err != nil {
		return err
	}
	annotations := desired.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[SpecHashAnnotation] = h
	desired.SetAnnotations(annotations)
	return nil
}

// NeedsApply reports whether desired must be applied over live, the object currently
// downstream, and why (for logs):
//   - "missing": there is no live object;
//   - "hash changed": desired carries a SpecHashAnnotation different from live's, i.e. the
//     upstream object or the transformation changed since the last apply;
//   - "drift at <path>": desired is not a semantic subset of live, i.e. something changed a
//     field the syncer owns downstream. Fields only live has (defaults, fields of other
//     field managers, status) are ignored.
//
// When nothing needs applying the reason is "".
func NeedsApply(desired, live *unstructured.Unstructured) (bool, string) {
	if live == nil {
		return true, "missing"
	}
	if want, ok := desired.GetAnnotations()[SpecHashAnnotation]; ok {
		if got := live.GetAnnotations()[SpecHashAnnotation]; got != want {
			return true, "hash changed"
		}
	}
	if ok, path := subset(desired.Object, live.Object, ""); !ok {
		return true, "drift at " + path
	}
	return false, ""
}
