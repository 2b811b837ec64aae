package localenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
)

// wildcardObject is an object of a watch or list, raw, with the metadata the wildcard
// endpoint needs.
type wildcardObject struct {
	raw  json.RawMessage
	meta struct {
		Name            string            `json:"name"`
		Namespace       string            `json:"namespace"`
		ResourceVersion string            `json:"resourceVersion"`
		Labels          map[string]string `json:"labels"`
	}
}

func parseWildcardObject(raw json.RawMessage) (wildcardObject, error) {
	obj := wildcardObject{raw: raw}
	var m struct {
		Metadata *json.RawMessage `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return obj, fmt.Errorf("failed to decode an object: %w", err)
	}
	if m.Metadata == nil {
		return obj, errors.New("an object without metadata")
	}
	if err := json.Unmarshal(*m.Metadata, &obj.meta); err != nil {
		return obj, fmt.Errorf("failed to decode an object's metadata: %w", err)
	}
	return obj, nil
}

func (o wildcardObject) revision() int64 {
	rv, _ := strconv.ParseInt(o.meta.ResourceVersion, 10, 64)
	return rv
}

// watchFilter applies a watch's label and field selectors to the unfiltered events of every
// workspace with the apiserver's semantics: an object that starts matching is ADDED, one
// that stops matching is DELETED (with its last matching content at the new
// resourceVersion), others pass or drop. It remembers the matching objects to know.
type watchFilter struct {
	labels   labels.Selector
	fields   fields.Selector
	matching map[string]wildcardObject // by workspace/namespace/name
}

// newWatchFilter parses the selectors. Field selectors may only use metadata.name and
// metadata.namespace: the proxy evaluates them itself and knows no other field.
func newWatchFilter(labelSelector, fieldSelector string) (*watchFilter, error) {
	ls, err := labels.Parse(labelSelector)
	if err != nil {
		return nil, fmt.Errorf("invalid labelSelector %q: %w", labelSelector, err)
	}
	fs, err := fields.ParseSelector(fieldSelector)
	if err != nil {
		return nil, fmt.Errorf("invalid fieldSelector %q: %w", fieldSelector, err)
	}
	for _, r := range fs.Requirements() {
		if r.Field != "metadata.name" && r.Field != "metadata.namespace" {
			return nil, fmt.Errorf("fieldSelector %q: a watch of /clusters/%s/ only selects on metadata.name and metadata.namespace", fieldSelector, wildcardCluster)
		}
	}
	return &watchFilter{labels: ls, fields: fs, matching: map[string]wildcardObject{}}, nil
}

func (f *watchFilter) matches(obj wildcardObject) bool {
	return f.labels.Matches(labels.Set(obj.meta.Labels)) &&
		f.fields.Matches(fields.Set{"metadata.name": obj.meta.Name, "metadata.namespace": obj.meta.Namespace})
}

func filterKey(workspace string, obj wildcardObject) string {
	return workspace + "/" + obj.meta.Namespace + "/" + obj.meta.Name
}

// seed records obj, of the list the watch starts from, as matching or not.
func (f *watchFilter) seed(workspace string, obj wildcardObject) {
	if f.matches(obj) {
		f.matching[filterKey(workspace, obj)] = obj
	}
}

// apply returns the event the caller sees for an unfiltered event of workspace, if any.
func (f *watchFilter) apply(workspace, eventType string, obj wildcardObject) (string, json.RawMessage, bool, error) {
	key := filterKey(workspace, obj)
	prev, matched := f.matching[key]
	now := eventType != "DELETED" && f.matches(obj)
	if now {
		f.matching[key] = obj
	} else {
		delete(f.matching, key)
	}
	switch {
	case now && matched:
		return "MODIFIED", obj.raw, true, nil
	case now:
		return "ADDED", obj.raw, true, nil
	case matched && eventType == "DELETED":
		return "DELETED", obj.raw, true, nil
	case matched:
		// As the apiserver does: the last content the watcher saw, at the new version.
		raw, err := withResourceVersion(prev.raw, obj.meta.ResourceVersion)
		return "DELETED", raw, true, err
	default:
		return "", nil, false, nil
	}
}

// withResourceVersion returns raw with metadata.resourceVersion set to rv.
func withResourceVersion(raw json.RawMessage, rv string) (json.RawMessage, error) {
	return editObject(raw, func(m map[string]any) {
		meta, _ := m["metadata"].(map[string]any)
		if meta == nil {
			meta = map[string]any{}
			m["metadata"] = meta
		}
		meta["resourceVersion"] = rv
	})
}

// withKind returns raw with kind and apiVersion set, as list items lack them.
func withKind(raw json.RawMessage, kind, apiVersion string) (json.RawMessage, error) {
	return editObject(raw, func(m map[string]any) {
		m["kind"], m["apiVersion"] = kind, apiVersion
	})
}

func editObject(raw json.RawMessage, edit func(map[string]any)) (json.RawMessage, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("failed to decode an object: %w", err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("failed to encode an object: %w", err)
	}
	return b, nil
}
