package syncer

import (
	"fmt"
	"maps"
	"reflect"
	"slices"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// validateChange checks that updated differs from current only in the metadata the syncer
// of target stKey writes upstream (pkg/reconciler/workload/syncer: spec.go ensureFinalizer,
// release.go releasePatch, status.go writeStatusAnnotation, type_release.go):
//
//   - its finalizer workload.kcp.io/syncer-<stKey>, added or removed;
//   - its state label state.workload.kcp.io/<stKey>, removed (the per-target release);
//   - its status annotation experimental.status.workload.kcp.io/<stKey>, set or removed;
//   - its deletion annotation deletion.internal.workload.kcp.io/<stKey>, removed;
//   - metadata.resourceVersion (the precondition).
//
// Both are whole objects as JSON maps. The error says what else changed.
func validateChange(current, updated map[string]any, stKey string) error {
	curMeta, _ := current["metadata"].(map[string]any)
	updMeta, _ := updated["metadata"].(map[string]any)
	for k := range unionKeys(current, updated) {
		if k != "metadata" && !reflect.DeepEqual(current[k], updated[k]) {
			return fmt.Errorf("the syncer may change only its own metadata, not %s", k)
		}
	}
	for k := range unionKeys(curMeta, updMeta) {
		var err error
		switch k {
		case "resourceVersion":
		case "finalizers":
			err = validateFinalizers(curMeta[k], updMeta[k], workloadv1alpha1.SyncerFinalizerName(stKey))
		case "labels":
			err = validateMap(curMeta[k], updMeta[k], map[string]keyRule{
				workloadv1alpha1.ClusterResourceStateLabel(stKey): mayRemove,
			})
		case "annotations":
			err = validateMap(curMeta[k], updMeta[k], map[string]keyRule{
				workloadv1alpha1.StatusAnnotation(stKey):   mayChange,
				workloadv1alpha1.DeletionAnnotation(stKey): mayRemove,
			})
		default:
			if !reflect.DeepEqual(curMeta[k], updMeta[k]) {
				err = fmt.Errorf("the syncer may not change metadata.%s", k)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// keyRule is what the syncer may do to one label or annotation.
type keyRule int

const (
	mayRemove keyRule = iota + 1
	mayChange
)

func validateMap(current, updated any, rules map[string]keyRule) error {
	cur, err := stringMap(current)
	if err != nil {
		return err
	}
	upd, err := stringMap(updated)
	if err != nil {
		return err
	}
	for k := range unionKeys(cur, upd) {
		curValue, had := cur[k]
		updValue, has := upd[k]
		if had == has && curValue == updValue {
			continue
		}
		switch rules[k] {
		case mayChange:
		case mayRemove:
			if has {
				return fmt.Errorf("the syncer may only remove %s", k)
			}
		default:
			return fmt.Errorf("the syncer may not change %s", k)
		}
	}
	return nil
}

// validateFinalizers allows adding or removing own and nothing else; the order of the
// other finalizers is kept.
func validateFinalizers(current, updated any, own string) error {
	cur, err := stringList(current)
	if err != nil {
		return err
	}
	upd, err := stringList(updated)
	if err != nil {
		return err
	}
	others := func(l []string) []string {
		return slices.DeleteFunc(slices.Clone(l), func(f string) bool { return f == own })
	}
	if !slices.Equal(others(cur), others(upd)) {
		return fmt.Errorf("the syncer may add or remove only its finalizer %s", own)
	}
	return nil
}

func stringMap(v any) (map[string]string, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("expected a map, got %T", v)
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("expected a string value of %s, got %T", k, x)
		}
		out[k] = s
	}
	return out, nil
}

func stringList(v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("expected a list, got %T", v)
	}
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("expected a string list, got %T", x)
		}
		out = append(out, s)
	}
	return out, nil
}

func unionKeys[V any](a, b map[string]V) map[string]struct{} {
	out := make(map[string]struct{}, len(a)+len(b))
	for k := range maps.Keys(a) {
		out[k] = struct{}{}
	}
	for k := range maps.Keys(b) {
		out[k] = struct{}{}
	}
	return out
}
