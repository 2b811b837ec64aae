package placement

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/clock"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// placedIndex indexes namespaces by the keys of the targets they are placed on (labelled
// Sync and not being removed), so that counting a target's load is cheap.
const placedIndex = "placement.tmc.dev/placed-on"

func placedIndexFunc(obj any) ([]string, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return nil, nil
	}
	return placedKeys(ns), nil
}

// placedKeys returns, sorted, the keys of the targets a namespace is placed on: state label
// Sync and no deletion annotation.
func placedKeys(ns *corev1.Namespace) []string {
	var out []string
	for k, v := range ns.Labels {
		key, ok := workloadv1alpha1.SyncTargetKeyFromLabel(workloadv1alpha1.ClusterResourceStateLabelPrefix, k)
		if !ok || v != workloadv1alpha1.ResourceStateSync {
			continue
		}
		if _, removing := ns.Annotations[workloadv1alpha1.DeletionAnnotation(key)]; removing {
			continue
		}
		out = append(out, key)
	}
	sort.Strings(out)
	return out
}

// removingKeys returns, sorted, the keys with a deletion annotation on the namespace.
func removingKeys(ns *corev1.Namespace) []string {
	var out []string
	for k := range ns.Annotations {
		if key, ok := workloadv1alpha1.SyncTargetKeyFromLabel(workloadv1alpha1.InternalClusterDeletionTimestampAnnotationPrefix, k); ok {
			out = append(out, key)
		}
	}
	sort.Strings(out)
	return out
}

// touchedKeys returns the keys the namespace has a state label (any value) or a deletion
// annotation for: a target that must not be chosen again until its removal completes.
func touchedKeys(ns *corev1.Namespace) map[string]bool {
	out := map[string]bool{}
	for k := range ns.Labels {
		if key, ok := workloadv1alpha1.SyncTargetKeyFromLabel(workloadv1alpha1.ClusterResourceStateLabelPrefix, k); ok {
			out[key] = true
		}
	}
	for _, key := range removingKeys(ns) {
		out[key] = true
	}
	return out
}

func hasStateLabel(l map[string]string) bool {
	for k := range l {
		if strings.HasPrefix(k, workloadv1alpha1.ClusterResourceStateLabelPrefix) {
			return true
		}
	}
	return false
}

// metaPatch is a set of label and annotation writes on a namespace (nil value: remove).
// Writes that would not change the base namespace are not recorded, so an empty patch
// means nothing to do.
type metaPatch struct {
	base        *corev1.Namespace
	labels      map[string]*string
	annotations map[string]*string
}

func newMetaPatch(base *corev1.Namespace) *metaPatch {
	return &metaPatch{base: base, labels: map[string]*string{}, annotations: map[string]*string{}}
}

func write(m map[string]*string, current map[string]string, key string, value *string) {
	cur, exists := current[key]
	if (value == nil && !exists) || (value != nil && exists && cur == *value) {
		delete(m, key)
		return
	}
	m[key] = value
}

func (p *metaPatch) setLabel(k, v string)      { write(p.labels, p.base.Labels, k, &v) }
func (p *metaPatch) removeLabel(k string)      { write(p.labels, p.base.Labels, k, nil) }
func (p *metaPatch) setAnnotation(k, v string) { write(p.annotations, p.base.Annotations, k, &v) }
func (p *metaPatch) removeAnnotation(k string) { write(p.annotations, p.base.Annotations, k, nil) }
func (p *metaPatch) empty() bool               { return len(p.labels) == 0 && len(p.annotations) == 0 }

// value returns annotation k as the patch leaves it ("" if absent).
func (p *metaPatch) value(k string) string {
	if v, written := p.annotations[k]; written {
		if v == nil {
			return ""
		}
		return *v
	}
	return p.base.Annotations[k]
}

// json returns the JSON merge patch: metadata labels and annotations only.
func (p *metaPatch) json() ([]byte, error) {
	meta := map[string]any{}
	if len(p.labels) > 0 {
		meta["labels"] = p.labels
	}
	if len(p.annotations) > 0 {
		meta["annotations"] = p.annotations
	}
	b, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return nil, fmt.Errorf("failed to build namespace patch: %w", err)
	}
	return b, nil
}

// applyTo returns a copy of ns with the writes applied.
func (p *metaPatch) applyTo(ns *corev1.Namespace) *corev1.Namespace {
	out := ns.DeepCopy()
	out.Labels = applyWrites(out.Labels, p.labels)
	out.Annotations = applyWrites(out.Annotations, p.annotations)
	return out
}

func applyWrites(current map[string]string, writes map[string]*string) map[string]string {
	if len(writes) == 0 {
		return current
	}
	if current == nil {
		current = map[string]string{}
	}
	for k, v := range writes {
		if v == nil {
			delete(current, k)
		} else {
			current[k] = *v
		}
	}
	return current
}

// reflectedIn reports whether ns already shows every write.
func (p *metaPatch) reflectedIn(ns *corev1.Namespace) bool {
	return writesReflected(ns.Labels, p.labels) && writesReflected(ns.Annotations, p.annotations)
}

func writesReflected(current map[string]string, writes map[string]*string) bool {
	for k, v := range writes {
		cur, exists := current[k]
		if (v == nil && exists) || (v != nil && (!exists || cur != *v)) {
			return false
		}
	}
	return true
}

// assumeTTL bounds how long a write is overlaid when the informer never shows it (for
// example because someone changed the same keys right after us).
const assumeTTL = time.Minute

type assumedWrite struct {
	patch *metaPatch
	at    time.Time
}

// assumeCache overlays the namespace writes of this controller on the informer cache until
// the informer shows them, as kube-scheduler "assumes" its bindings: a namespace requeued
// before the cache caught up is not scheduled twice, and the next decision counts it.
type assumeCache struct {
	clock   clock.Clock
	mu      sync.Mutex
	entries map[queueKey]assumedWrite
}

func newAssumeCache(c clock.Clock) *assumeCache {
	return &assumeCache{clock: c, entries: map[queueKey]assumedWrite{}}
}

// assume records a patch that was just applied; it is merged with a pending one.
func (a *assumeCache) assume(workspace, name string, p *metaPatch) {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := queueKey{workspace: workspace, name: name}
	merged := &metaPatch{labels: map[string]*string{}, annotations: map[string]*string{}}
	if prev, ok := a.entries[key]; ok {
		for k, v := range prev.patch.labels {
			merged.labels[k] = v
		}
		for k, v := range prev.patch.annotations {
			merged.annotations[k] = v
		}
	}
	for k, v := range p.labels {
		merged.labels[k] = v
	}
	for k, v := range p.annotations {
		merged.annotations[k] = v
	}
	a.entries[key] = assumedWrite{patch: merged, at: a.clock.Now()}
}

// observe drops the overlay of a namespace the informer now shows as written.
func (a *assumeCache) observe(workspace string, ns *corev1.Namespace) {
	a.view(workspace, ns)
}

// view returns ns with the pending writes applied (ns itself when there are none).
func (a *assumeCache) view(workspace string, ns *corev1.Namespace) *corev1.Namespace {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := queueKey{workspace: workspace, name: ns.Name}
	e, ok := a.entries[key]
	if !ok {
		return ns
	}
	if e.patch.reflectedIn(ns) || a.clock.Since(e.at) > assumeTTL {
		delete(a.entries, key)
		return ns
	}
	return e.patch.applyTo(ns)
}

func (a *assumeCache) pending() []queueKey {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]queueKey, 0, len(a.entries))
	for k := range a.entries {
		out = append(out, k)
	}
	return out
}

// getNamespace returns the namespace as this controller knows it, or nil if it is gone.
func (c *Controller) getNamespace(wl *workloadWorkspace, name string) (*corev1.Namespace, error) {
	obj, exists, err := wl.nsIndexer.GetByKey(name)
	if err != nil || !exists {
		return nil, err
	}
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return nil, nil
	}
	return c.assumed.view(wl.path, ns), nil
}

// listNamespaces returns the namespaces of a workspace as this controller knows them,
// sorted by name.
func (c *Controller) listNamespaces(wl *workloadWorkspace) []*corev1.Namespace {
	list, _ := wl.namespaces.List(labels.Everything())
	out := make([]*corev1.Namespace, 0, len(list))
	for _, ns := range list {
		out = append(out, c.assumed.view(wl.path, ns))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// load returns the number of namespaces, across all workload workspaces, placed on the
// target with key stKey.
func (c *Controller) load(stKey string) int {
	n := 0
	for _, wl := range c.workloadWorkspaces() {
		objs, _ := wl.nsIndexer.ByIndex(placedIndex, stKey)
		n += len(objs)
	}
	for _, key := range c.assumed.pending() {
		wl, ok := c.workloadWorkspace(key.workspace)
		if !ok {
			continue
		}
		obj, exists, _ := wl.nsIndexer.GetByKey(key.name)
		if !exists {
			continue
		}
		base, ok := obj.(*corev1.Namespace)
		if !ok {
			continue
		}
		n += countKey(placedKeys(c.assumed.view(key.workspace, base)), stKey) - countKey(placedKeys(base), stKey)
	}
	return n
}

func countKey(keys []string, key string) int {
	for _, k := range keys {
		if k == key {
			return 1
		}
	}
	return 0
}
