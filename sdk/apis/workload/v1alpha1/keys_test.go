package v1alpha1

import (
	"testing"
	"time"
)

// The expected keys were computed independently (Python hashlib + base-62 conversion with
// Go's big.Int digit alphabet), not with this package.
func TestToSyncTargetKey(t *testing.T) {
	for _, tc := range []struct{ cluster, name, want string }{
		{"root:org:locations", "cluster-1", "en6bwqnRb18FqFXz3f568KMXxWktLDHcZkE04"},
		{"root", "st", "95kSw1OUiwv6AT3FIFPe4QelxDPiYbkiZKyOhY"},
		{"2x9ok3p1l0q8y7z", "us-east", "4CV9NfAvlbmT4z6ry1QDdxFJqcSDBF35Z07VAh"},
	} {
		if got := ToSyncTargetKey(tc.cluster, tc.name); got != tc.want {
			t.Errorf("ToSyncTargetKey(%q, %q) = %q, want %q", tc.cluster, tc.name, got, tc.want)
		}
	}
	if ToSyncTargetKey("root:a", "b") == ToSyncTargetKey("root", "a:b") {
		// Both hash "root:a:b"; kcp has the same property. Document it by test so a change is
		// deliberate.
		t.Log("keys of (root:a, b) and (root, a:b) coincide, as in kcp")
	}
}

func TestKeyBuilders(t *testing.T) {
	const k = "abc123"
	for got, want := range map[string]string{
		ClusterResourceStateLabel(k): "state.workload.kcp.io/abc123",
		SyncerFinalizerName(k):       "workload.kcp.io/syncer-abc123",
		DeletionAnnotation(k):        "deletion.internal.workload.kcp.io/abc123",
		SoftFinalizersAnnotation(k):  "finalizers.workload.kcp.io/abc123",
		SpecDiffAnnotation(k):        "experimental.spec-diff.workload.kcp.io/abc123",
		StatusAnnotation(k):          "experimental.status.workload.kcp.io/abc123",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if key, ok := SyncTargetKeyFromLabel(ClusterResourceStateLabelPrefix, "state.workload.kcp.io/abc123"); !ok || key != k {
		t.Errorf("SyncTargetKeyFromLabel = %q, %v", key, ok)
	}
	for _, bad := range []string{"state.workload.kcp.io/", "other.io/abc", ""} {
		if _, ok := SyncTargetKeyFromLabel(ClusterResourceStateLabelPrefix, bad); ok {
			t.Errorf("SyncTargetKeyFromLabel(%q) must fail", bad)
		}
	}
}

func TestSoftFinalizers(t *testing.T) {
	got := SoftFinalizers(" a,b,,a , c ")
	want := []string{"a", "b", "c"}
	if len(got) != len(want) {
		t.Fatalf("SoftFinalizers = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("SoftFinalizers = %v, want %v", got, want)
		}
	}
	if got := SoftFinalizers(""); len(got) != 0 {
		t.Errorf("SoftFinalizers(\"\") = %v", got)
	}
}

func TestParseDeletionTimestamp(t *testing.T) {
	ts, err := ParseDeletionTimestamp("2026-11-26T10:00:00Z")
	if err != nil || !ts.Equal(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("ParseDeletionTimestamp = %v, %v", ts, err)
	}
	if _, err := ParseDeletionTimestamp("yesterday"); err == nil {
		t.Errorf("expected an error")
	}
}

func TestParseResourceToSync(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    ResourceToSync
		wantErr bool
	}{
		{in: "configmaps", want: ResourceToSync{Resource: "configmaps"}},
		{in: "deployments.apps", want: ResourceToSync{Group: "apps", Resource: "deployments"}},
		{in: "ingresses.networking.k8s.io", want: ResourceToSync{Group: "networking.k8s.io", Resource: "ingresses"}},
		{in: " services ", want: ResourceToSync{Resource: "services"}},
		{in: "", wantErr: true},
		{in: "Deployments.apps", wantErr: true},
		{in: ".apps", wantErr: true},
	} {
		got, err := ParseResourceToSync(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseResourceToSync(%q) = %+v, %v", tc.in, got, err)
		}
		if err == nil {
			if back, _ := ParseResourceToSync(got.String()); back != got {
				t.Errorf("round trip of %q gave %+v", tc.in, back)
			}
		}
	}
	if n := len(DefaultResources()); n != 10 {
		t.Errorf("DefaultResources has %d entries, want 10", n)
	}
}

// kcp computes a SyncTarget's key from the logical-cluster name of its workspace (the
// kcp.io/cluster annotation), not from the path it was read at; expected values computed
// independently (Python hashlib + base-62).
func TestSyncTargetKeyOfUsesTheLogicalClusterName(t *testing.T) {
	st := &SyncTarget{}
	st.Name = "cluster-1"
	st.Annotations = map[string]string{"kcp.io/cluster": "1ls1e2d5ho7fnvra"}
	if got, want := SyncTargetKeyOf(st, "root:org:locations"), "5TRv7z5j6B8jAJ6qxZ8Dok7v0IvZ7ZIsDPF2uv"; got != want {
		t.Errorf("SyncTargetKeyOf(annotated SyncTarget at root:org:locations) = %q, want %q (the key of the logical-cluster name)", got, want)
	}
	if got := SyncTargetCluster(st, "root:org:locations"); got != "1ls1e2d5ho7fnvra" {
		t.Errorf("SyncTargetCluster() = %q, want the annotation's name", got)
	}
	// Without the annotation (a plain hub) the workspace given is the cluster.
	st.Annotations = nil
	if got, want := SyncTargetKeyOf(st, "root:org:locations"), "en6bwqnRb18FqFXz3f568KMXxWktLDHcZkE04"; got != want {
		t.Errorf("SyncTargetKeyOf(unannotated) = %q, want %q", got, want)
	}
}
