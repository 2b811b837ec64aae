package transform

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// recorder builds filters and transformers that record the order they ran in.
type recorder struct{ calls []string }

func (r *recorder) transformer(name string, fn func(up, down *unstructured.Unstructured) error) Transformer {
	return TransformerFunc{TransformerName: name, Func: func(_ context.Context, _ Context, up, down *unstructured.Unstructured) error {
		r.calls = append(r.calls, name)
		if fn != nil {
			return fn(up, down)
		}
		return nil
	}}
}

func (r *recorder) filter(name string, sync bool) Filter {
	return FilterFunc{FilterName: name, Func: func(context.Context, Context, *unstructured.Unstructured) (bool, string) {
		r.calls = append(r.calls, name)
		return sync, name + " says no"
	}}
}

func TestChainNames(t *testing.T) {
	var names []string
	c := DefaultChain()
	for _, f := range c.Filters {
		names = append(names, f.Name())
	}
	for _, tr := range c.Transformers {
		names = append(names, tr.Name())
	}
	want := []string{"service-account-token-secret", "per-namespace-system-object", "builtin-controller-child", "metadata", "allocated-fields", "spec-diff", "downstream-owned-fields", "containment", "pod-upsync"}
	if !slices.Equal(names, want) {
		t.Errorf("DefaultChain() = %v, want %v", names, want)
	}
}

func TestChainExtension(t *testing.T) {
	configMap := `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default",
	  "labels": {"state.workload.kcp.io/STKEY": "Sync"}, "annotations": {"kcp.io/cluster": "x"}}, "data": {"a": "b"}}`

	t.Run("filters then transformers, built-ins first, in order", func(t *testing.T) {
		r := &recorder{}
		var sawCleanLabels bool
		c := DefaultChain().
			WithFilter(r.filter("f1", true), r.filter("f2", true)).
			With(r.transformer("t1", func(_, down *unstructured.Unstructured) error {
				// Runs after the built-ins: the state label is already gone.
				_, hasState := down.GetLabels()["state.workload.kcp.io/"+stKey]
				sawCleanLabels = !hasState
				return nil
			})).
			With(r.transformer("t2", func(_, down *unstructured.Unstructured) error {
				return unstructured.SetNestedField(down.Object, "added", "data", "extra")
			}))
		got, err := c.Down(t.Context(), namespacedContext(configMapsGVR), obj(t, configMap))
		if err != nil {
			t.Fatalf("Down() error = %v", err)
		}
		if want := []string{"f1", "f2", "t1", "t2"}; !slices.Equal(r.calls, want) {
			t.Errorf("calls = %v, want %v", r.calls, want)
		}
		if !sawCleanLabels {
			t.Error("an extension saw the object before the built-in transformers ran")
		}
		if v, _, _ := unstructured.NestedString(got.Object, "data", "extra"); v != "added" {
			t.Errorf("data.extra = %q, want the extension's value", v)
		}
	})

	t.Run("With and WithFilter do not modify the receiver or each other", func(t *testing.T) {
		r := &recorder{}
		base := DefaultChain()
		a := base.With(r.transformer("a", nil))
		b := base.With(r.transformer("b", nil))
		_ = base.WithFilter(r.filter("no", false))
		if len(base.Transformers) != 6 || len(base.Filters) != len(BuiltinFilters()) {
			t.Fatalf("base chain modified: %d filters, %d transformers", len(base.Filters), len(base.Transformers))
		}
		if a.Transformers[6].Name() != "a" || b.Transformers[6].Name() != "b" {
			t.Errorf("extensions of one base chain overwrote each other: %s, %s", a.Transformers[6].Name(), b.Transformers[6].Name())
		}
		if _, err := base.Down(t.Context(), namespacedContext(configMapsGVR), obj(t, configMap)); err != nil {
			t.Errorf("base chain Down() error = %v", err)
		}
	})

	t.Run("first refusing filter stops the chain", func(t *testing.T) {
		r := &recorder{}
		c := (&Chain{}).
			WithFilter(r.filter("yes", true), r.filter("no", false), r.filter("never", true)).
			With(r.transformer("never-t", nil))
		_, err := c.Down(t.Context(), namespacedContext(configMapsGVR), obj(t, configMap))
		var fe *FilteredError
		if !errors.As(err, &fe) || fe.Filter != "no" || fe.Reason != "no says no" {
			t.Fatalf("Down() error = %v, want a FilteredError from %q", err, "no")
		}
		if want := []string{"yes", "no"}; !slices.Equal(r.calls, want) {
			t.Errorf("calls = %v, want %v", r.calls, want)
		}
	})

	t.Run("a transformer can refuse the object", func(t *testing.T) {
		r := &recorder{}
		c := DefaultChain().With(r.transformer("refuse", func(_, _ *unstructured.Unstructured) error {
			return &FilteredError{Filter: "refuse", Reason: "not today"}
		}), r.transformer("never", nil))
		_, err := c.Down(t.Context(), namespacedContext(configMapsGVR), obj(t, configMap))
		if !IsFiltered(err) {
			t.Fatalf("Down() error = %v, want ErrFiltered", err)
		}
		if slices.Contains(r.calls, "never") {
			t.Error("a transformer ran after an earlier one failed")
		}
	})

	t.Run("a transformer's invalid input stays recognisable", func(t *testing.T) {
		c := DefaultChain().With(TransformerFunc{TransformerName: "strict", Func: func(context.Context, Context, *unstructured.Unstructured, *unstructured.Unstructured) error {
			return &InvalidInputError{Annotation: "example.com/policy", Reason: "bad"}
		}})
		_, err := c.Down(t.Context(), namespacedContext(configMapsGVR), obj(t, configMap))
		expectInvalidInput(t, err, "example.com/policy", "bad")
		if !strings.Contains(err.Error(), "strict") {
			t.Errorf("error %q does not name the transformer", err)
		}
	})

	t.Run("transformers cannot modify upstream", func(t *testing.T) {
		upstream := obj(t, configMap)
		before := upstream.DeepCopy()
		c := DefaultChain().With(TransformerFunc{TransformerName: "vandal", Func: func(_ context.Context, _ Context, up, _ *unstructured.Unstructured) error {
			up.SetName("vandalised")
			up.Object["data"] = nil
			return nil
		}})
		if _, err := c.Down(t.Context(), namespacedContext(configMapsGVR), upstream); err != nil {
			t.Fatalf("Down() error = %v", err)
		}
		expectUnchanged(t, before, upstream)
	})

	t.Run("invariants are enforced after the transformers", func(t *testing.T) {
		c := DefaultChain().With(TransformerFunc{TransformerName: "sloppy", Func: func(_ context.Context, _ Context, _, down *unstructured.Unstructured) error {
			down.SetNamespace("elsewhere")
			down.SetLabels(map[string]string{"internal.workload.kcp.io/cluster": "other"})
			down.SetAnnotations(map[string]string{})
			return nil
		}})
		got, err := c.Down(t.Context(), namespacedContext(configMapsGVR), obj(t, configMap))
		if err != nil {
			t.Fatalf("Down() error = %v", err)
		}
		want := obj(t, `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "kcp-0123456789ab",
		  "labels": {"internal.workload.kcp.io/cluster": "STKEY"}}, "data": {"a": "b"}}`)
		expectObject(t, got, want)
	})

	renames := []struct {
		name string
		fn   func(down *unstructured.Unstructured)
	}{
		{name: "rename", fn: func(down *unstructured.Unstructured) { down.SetName("other") }},
		{name: "kind change", fn: func(down *unstructured.Unstructured) { down.SetKind("Secret") }},
	}
	for _, rn := range renames {
		t.Run("a transformer's "+rn.name+" is an error", func(t *testing.T) {
			c := DefaultChain().With(TransformerFunc{TransformerName: rn.name, Func: func(_ context.Context, _ Context, _, down *unstructured.Unstructured) error {
				rn.fn(down)
				return nil
			}})
			_, err := c.Down(t.Context(), namespacedContext(configMapsGVR), obj(t, configMap))
			if err == nil || IsInvalidInput(err) || IsFiltered(err) {
				t.Errorf("Down() error = %v, want a programming error", err)
			}
		})
	}

	t.Run("nil and empty chains still set the namespace and ownership label", func(t *testing.T) {
		for _, c := range []*Chain{nil, {}} {
			got, err := c.Down(t.Context(), namespacedContext(configMapsGVR), obj(t, configMap))
			if err != nil {
				t.Fatalf("Down() error = %v", err)
			}
			if got.GetNamespace() != "kcp-0123456789ab" || got.GetLabels()["internal.workload.kcp.io/cluster"] != stKey {
				t.Errorf("Down() = %v, want the downstream namespace and ownership label", got.Object)
			}
		}
	})

	t.Run("nil upstream", func(t *testing.T) {
		if _, err := DefaultChain().Down(t.Context(), namespacedContext(configMapsGVR), nil); err == nil {
			t.Error("Down(nil) error = nil")
		}
	})
}
