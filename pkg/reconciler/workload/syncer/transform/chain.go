package transform

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// Context describes one object being synced.
type Context struct {
	// SyncTargetKey is the key of the SyncTarget (stKey) the object is synced to.
	SyncTargetKey string
	// SyncTargetName is the name of that SyncTarget.
	SyncTargetName string
	// UpstreamWorkspace is the logical-cluster path of the workload workspace.
	UpstreamWorkspace string
	// UpstreamNamespace is the upstream namespace, "" for cluster-scoped objects.
	UpstreamNamespace string
	// DownstreamNamespace is the downstream namespace, "" for cluster-scoped objects.
	DownstreamNamespace string
	// GVR is the resource type of the object.
	GVR schema.GroupVersionResource
	// Tenancy is what the SyncTarget's owner allows tenants to set (spec.tenancy); the zero
	// value allows nothing.
	Tenancy workloadv1alpha1.SyncTargetTenancy
}

// Validate reports a Context the caller built wrongly (a programming error, not the user's).
func (tc Context) Validate() error {
	if tc.SyncTargetKey == "" {
		return errors.New("transform context has an empty SyncTargetKey")
	}
	if (tc.UpstreamNamespace == "") != (tc.DownstreamNamespace == "") {
		return fmt.Errorf("transform context must set both or neither of UpstreamNamespace (%q) and DownstreamNamespace (%q)",
			tc.UpstreamNamespace, tc.DownstreamNamespace)
	}
	return nil
}

// Transformer changes the object to apply downstream. It may also refuse the object by
// returning a *FilteredError, and must return an *InvalidInputError when the upstream
// object's own content is at fault, so that the caller does not retry.
type Transformer interface {
	// Name identifies the transformer in errors and logs.
	Name() string
	// TransformDown edits downstream, the object being built. upstream is a private copy of
	// the upstream object; transformers read it and must not modify it.
	TransformDown(ctx context.Context, tc Context, upstream, downstream *unstructured.Unstructured) error
}

// Filter decides whether an upstream object is synced at all. When sync is false, reason
// explains why, for logs and Events. Filters must not modify upstream.
type Filter interface {
	// Name identifies the filter in errors and logs.
	Name() string
	// Filter returns whether upstream is synced, and why not.
	Filter(ctx context.Context, tc Context, upstream *unstructured.Unstructured) (sync bool, reason string)
}

// TransformerFunc adapts a function to the Transformer interface.
type TransformerFunc struct {
	// TransformerName is returned by Name.
	TransformerName string
	// Func is called by TransformDown.
	Func func(ctx context.Context, tc Context, upstream, downstream *unstructured.Unstructured) error
}

// Name implements Transformer.
func (f TransformerFunc) Name() string { return f.TransformerName }

// TransformDown implements Transformer.
func (f TransformerFunc) TransformDown(ctx context.Context, tc Context, upstream, downstream *unstructured.Unstructured) error {
	return f.Func(ctx, tc, upstream, downstream)
}

// FilterFunc adapts a function to the Filter interface.
type FilterFunc struct {
	// FilterName is returned by Name.
	FilterName string
	// Func is called by Filter.
	Func func(ctx context.Context, tc Context, upstream *unstructured.Unstructured) (bool, string)
}

// Name implements Filter.
func (f FilterFunc) Name() string { return f.FilterName }

// Filter implements Filter.
func (f FilterFunc) Filter(ctx context.Context, tc Context, upstream *unstructured.Unstructured) (bool, string) {
	return f.Func(ctx, tc, upstream)
}

// Chain is an ordered list of filters, then transformers. All filters run first, in order;
// the first that refuses the object stops the chain. Transformers then run in order on the
// object being built.
type Chain struct {
	Filters      []Filter
	Transformers []Transformer
}

// DefaultChain returns the built-in chain, in this order:
//
// Filters (BuiltinFilters, in filters.go):
//  1. ServiceAccountTokenSecretFilter: v1 Secrets of type kubernetes.io/service-account-token
//     are not synced; the downstream cluster's token controller owns such secrets.
//  2. SystemObjectFilter: the kube-root-ca.crt ConfigMap and the default ServiceAccount of
//     every namespace are not synced; the physical cluster keeps its own.
//  3. BuiltinControllerChildFilter: objects controlled by a Deployment, ReplicaSet,
//     StatefulSet, DaemonSet, Job, CronJob, ReplicationController, Service, Pod or Node are
//     not synced; the physical cluster's controllers create their own from the parent.
//
// Transformers (after the fixed clean-up described on Down):
//  1. MetadataTransformer: drops every per-target state label and the kcp, per-target,
//     last-applied and policy annotations; adds the ownership label.
//  2. AllocatedFieldsTransformer: drops fields the upstream apiserver allocated for its own
//     cluster (a Service's cluster IPs and node ports, a Job's generated selector), which
//     the physical cluster allocates itself and would reject.
//  3. SpecDiffTransformer: applies this target's experimental.spec-diff patch to .spec.
//  4. DownstreamOwnedFieldsTransformer: removes the fields downstream controllers own, so
//     that the policy wins over a spec-diff touching the same field.
//  5. ContainmentTransformer: drops the fields that would let one tenant reach what the
//     physical cluster shares between tenants (Service external IPs, PVC volume names and
//     bind annotations, pod node names). It runs last among the built-ins so that neither
//     the upstream object nor its spec-diff can put them back.
//  6. PodUpsyncTransformer: labels the pod templates of the built-in workload types with
//     this target's state label state.workload.kcp.io/<key>=Upsync, so that their Pods are
//     upsynced.
//
// Extensions added with With run after these (they are the operator's, not the tenant's),
// and filters added with WithFilter after the built-in filters.
func DefaultChain() *Chain {
	return &Chain{
		Filters: BuiltinFilters(),
		Transformers: []Transformer{
			MetadataTransformer{},
			AllocatedFieldsTransformer{},
			SpecDiffTransformer{},
			DownstreamOwnedFieldsTransformer{},
			ContainmentTransformer{},
			PodUpsyncTransformer{},
		},
	}
}

// With returns a copy of the chain with t appended to its transformers. c is not modified.
func (c *Chain) With(t ...Transformer) *Chain {
	out := c.clone()
	out.Transformers = append(out.Transformers, t...)
	return out
}

// WithFilter returns a copy of the chain with f appended to its filters. c is not modified.
func (c *Chain) WithFilter(f ...Filter) *Chain {
	out := c.clone()
	out.Filters = append(out.Filters, f...)
	return out
}

func (c *Chain) clone() *Chain {
	if c == nil {
		return &Chain{}
	}
	// Fresh backing arrays, so that appending to one copy never shows up in another.
	return &Chain{
		Filters:      append([]Filter(nil), c.Filters...),
		Transformers: append([]Transformer(nil), c.Transformers...),
	}
}

// Down builds the object to server-side-apply downstream from upstream. upstream is never
// modified: filters and transformers see a private deep copy of it.
//
// Before the transformers run, Down builds the starting object: apiVersion, kind,
// metadata.name, metadata.labels, metadata.annotations and every top-level field except
// metadata and status; metadata.namespace is tc.DownstreamNamespace (absent for cluster-scoped
// objects). Everything else in metadata (uid, resourceVersion, generation, timestamps,
// managedFields, ownerReferences, finalizers, generateName, selfLink) is dropped.
//
// After the transformers, Down enforces what the syncer relies on: the name, apiVersion and
// kind are unchanged (otherwise an error), metadata.namespace is tc.DownstreamNamespace and
// the ownership label is tc.SyncTargetKey. Empty label and annotation maps are removed.
//
// A refusal returns an error matching ErrFiltered (a *FilteredError); errors caused by the
// upstream object's content match ErrInvalidInput. Down does not set the spec hash: call
// SetHash on the result.
func (c *Chain) Down(ctx context.Context, tc Context, upstream *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	if err := tc.Validate(); err != nil {
		return nil, err
	}
	if upstream == nil {
		return nil, errors.New("failed to transform object: upstream object is nil")
	}
	if c == nil {
		c = &Chain{}
	}

	up := upstream.DeepCopy()
	for _, f := range c.Filters {
		if ok, reason := f.Filter(ctx, tc, up); !ok {
			return nil, &FilteredError{Filter: f.Name(), Reason: reason}
		}
	}

	desired := newDesired(tc, up)
	for _, t := range c.Transformers {
		if err := t.TransformDown(ctx, tc, up, desired); err != nil {
			return nil, fmt.Errorf("failed to transform %s %q with %s: %w", up.GetKind(), up.GetName(), t.Name(), err)
		}
	}

	// Checked against the caller's object: a transformer may have scribbled on up.
	if err := seal(tc, upstream, desired); err != nil {
		return nil, err
	}
	return desired, nil
}

// newDesired builds the starting object for the transformers: a deep copy of the parts of
// up that are sent downstream.
func newDesired(tc Context, up *unstructured.Unstructured) *unstructured.Unstructured {
	content := make(map[string]interface{}, len(up.Object))
	for k, v := range up.Object {
		if k == "metadata" || k == "status" {
			continue
		}
		content[k] = runtime.DeepCopyJSONValue(v)
	}
	desired := &unstructured.Unstructured{Object: content}
	desired.SetName(up.GetName())
	if tc.DownstreamNamespace != "" {
		desired.SetNamespace(tc.DownstreamNamespace)
	}
	// GetLabels/GetAnnotations return fresh maps.
	setLabels(desired, up.GetLabels())
	setAnnotations(desired, up.GetAnnotations())
	return desired
}

// seal enforces the invariants the syncer relies on, whatever the transformers did: it
// finds, owns and deletes downstream objects by name, namespace and ownership label.
func seal(tc Context, up, desired *unstructured.Unstructured) error {
	if desired.GetName() != up.GetName() {
		return fmt.Errorf("failed to transform %s %q: a transformer renamed it to %q", up.GetKind(), up.GetName(), desired.GetName())
	}
	if desired.GetAPIVersion() != up.GetAPIVersion() || desired.GetKind() != up.GetKind() {
		return fmt.Errorf("failed to transform %s %q: a transformer changed its type to %s %s",
			up.GetKind(), up.GetName(), desired.GetAPIVersion(), desired.GetKind())
	}
	if tc.DownstreamNamespace != "" {
		desired.SetNamespace(tc.DownstreamNamespace)
	} else {
		unstructured.RemoveNestedField(desired.Object, "metadata", "namespace")
	}
	labels := desired.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[workloadv1alpha1.InternalDownstreamClusterLabel] = tc.SyncTargetKey
	setLabels(desired, labels)
	setAnnotations(desired, desired.GetAnnotations())
	return nil
}

// setLabels sets the labels, removing the field when there are none.
func setLabels(obj *unstructured.Unstructured, labels map[string]string) {
	if len(labels) == 0 {
		unstructured.RemoveNestedField(obj.Object, "metadata", "labels")
		return
	}
	obj.SetLabels(labels)
}

// setAnnotations sets the annotations, removing the field when there are none.
func setAnnotations(obj *unstructured.Unstructured, annotations map[string]string) {
	if len(annotations) == 0 {
		unstructured.RemoveNestedField(obj.Object, "metadata", "annotations")
		return
	}
	obj.SetAnnotations(annotations)
}
