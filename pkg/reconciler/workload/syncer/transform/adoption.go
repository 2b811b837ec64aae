package transform

import (
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// policyPrefix is the prefix of TMC's policy annotations (deletion and conflict policy):
// they say how the syncer treats an object, not what the object is.
const policyPrefix = "workload.tmc.dev/"

// AdoptionDifferences compares desired, the object the syncer would apply, with live, a
// downstream object that exists without the syncer's ownership label, and returns the
// first paths (at most limit, at least one; sorted, in the notation of NeedsApply's "drift
// at") where live does not already hold what desired sets. The rules are those of
// NeedsApply's drift check: fields only live has do not count, values are compared
// semantically. None means the apply would change nothing the user wrote: the syncer's
// own keys (the ownership label, internal.workload.kcp.io/* such as the spec hash) and
// TMC's policy annotations (workload.tmc.dev/*) are left out of the comparison, since
// taking ownership adds them anyway.
func AdoptionDifferences(desired, live *unstructured.Unstructured, limit int) []string {
	limit = max(limit, 1)
	var liveContent map[string]interface{}
	if live != nil {
		liveContent = live.Object
	}
	return differences(withoutBookkeeping(desired), liveContent, "", limit, nil)
}

// withoutBookkeeping returns a shallow copy of desired's content without the syncer's own
// labels and annotations and TMC's policy annotations (desired is not modified).
func withoutBookkeeping(desired *unstructured.Unstructured) map[string]interface{} {
	content := make(map[string]interface{}, len(desired.Object))
	for k, v := range desired.Object {
		content[k] = v
	}
	meta, ok := desired.Object["metadata"].(map[string]interface{})
	if !ok {
		return content
	}
	metaCopy := make(map[string]interface{}, len(meta))
	for k, v := range meta {
		metaCopy[k] = v
	}
	for _, field := range []string{"labels", "annotations"} {
		keys, ok := meta[field].(map[string]interface{})
		if !ok {
			continue
		}
		kept := make(map[string]interface{}, len(keys))
		for k, v := range keys {
			if !strings.HasPrefix(k, internalPrefix) && !strings.HasPrefix(k, policyPrefix) {
				kept[k] = v
			}
		}
		metaCopy[field] = kept
	}
	content["metadata"] = metaCopy
	return content
}

// differences appends to out the paths where desired is not a subset of live, descending
// into maps to find more than the first, until out holds limit paths. Lists and scalars
// count as one path each (subset's first difference inside them).
func differences(desired, live interface{}, path string, limit int, out []string) []string {
	ok, at := subset(desired, live, path)
	if ok {
		return out
	}
	desiredMap, isMap := desired.(map[string]interface{})
	liveMap, liveIsMap := live.(map[string]interface{})
	if !isMap || !liveIsMap {
		return append(out, at)
	}
	found := len(out)
	for _, k := range sortedKeys(desiredMap) {
		if len(out) >= limit {
			break
		}
		liveValue, inLive := liveMap[k]
		if !inLive && isZero(desiredMap[k]) {
			continue // as in subset: an empty field matches an absent one
		}
		out = differences(desiredMap[k], liveValue, joinPath(path, k), limit, out)
	}
	if len(out) == found {
		out = append(out, at)
	}
	return out
}
