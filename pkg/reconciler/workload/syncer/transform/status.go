package transform

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// StatusEqual reports whether upstream and downstream have semantically equal .status:
// numbers compared numerically, quantities as quantities, and an absent status equal to an
// empty one (so that an empty downstream status is not written up again and again).
func StatusEqual(upstream, downstream *unstructured.Unstructured) bool {
	return equal(statusOf(upstream), statusOf(downstream))
}

// StatusForUpstream returns a copy of upstream whose .status is a copy of downstream's
// (removed when downstream has none), ready for an update of the upstream status
// subresource; upstream's metadata, including resourceVersion, is kept for optimistic
// concurrency. It returns false, and no object, when the statuses are already equal and no
// write is needed (or upstream is nil). Neither argument is modified.
func StatusForUpstream(upstream, downstream *unstructured.Unstructured) (*unstructured.Unstructured, bool) {
	if upstream == nil || StatusEqual(upstream, downstream) {
		return nil, false
	}
	out := upstream.DeepCopy()
	if status := statusOf(downstream); status != nil {
		out.Object["status"] = runtime.DeepCopyJSONValue(status)
	} else {
		delete(out.Object, "status")
	}
	return out, true
}

func statusOf(obj *unstructured.Unstructured) interface{} {
	if obj == nil {
		return nil
	}
	return obj.Object["status"]
}
