package v1alpha1

import "testing"

// BenchmarkToSyncTargetKey measures the SyncTarget key (SHA-224 and base-62), computed for
// every per-target label, annotation and finalizer name.
func BenchmarkToSyncTargetKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = ToSyncTargetKey("root:org:locations", "cluster-1")
	}
}

// BenchmarkDownstreamNamespaceName measures the namespace mapping (locator JSON, SHA-224 and
// base-36), computed once per processed object by the spec controller.
func BenchmarkDownstreamNamespaceName(b *testing.B) {
	l := NewNamespaceLocator("root:org:locations", "cluster-1", testUID, "root:org:team-a", "shop")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.DownstreamNamespaceName(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseNamespaceLocator measures reading a downstream namespace's locator
// annotation, done for every downstream event and status key.
func BenchmarkParseNamespaceLocator(b *testing.B) {
	value, err := NewNamespaceLocator("root:org:locations", "cluster-1", testUID, "root:org:team-a", "shop").MarshalAnnotation()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseNamespaceLocator(value); err != nil {
			b.Fatal(err)
		}
	}
}
