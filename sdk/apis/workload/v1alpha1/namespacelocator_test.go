package v1alpha1

import (
	"strings"
	"testing"
)

const testUID = "8a3f2c1e-0000-4000-8000-000000000001"

// The expected annotation values and namespace names were computed independently (Python
// hashlib sha224 + base-36), not with this package.
func TestNamespaceLocatorKnownAnswers(t *testing.T) {
	for _, tc := range []struct {
		cluster, namespace, wantJSON, wantNS string
	}{
		{
			cluster: "root:org:team-a", namespace: "default",
			wantJSON: `{"syncTarget":{"cluster":"root:org:locations","name":"cluster-1","uid":"8a3f2c1e-0000-4000-8000-000000000001"},"cluster":"root:org:team-a","namespace":"default"}`,
			wantNS:   "kcp-u40r6y86jyuj",
		},
		{
			cluster: "root:org:team-b", namespace: "default",
			wantJSON: `{"syncTarget":{"cluster":"root:org:locations","name":"cluster-1","uid":"8a3f2c1e-0000-4000-8000-000000000001"},"cluster":"root:org:team-b","namespace":"default"}`,
			wantNS:   "kcp-2yed592ddsyl",
		},
		// sha224 of these locators starts with a zero byte (00c78b…, 00f60f…): kcp's base36
		// (github.com/martinlindhe/base36) writes one "0" per leading zero byte, which
		// big.Int.Text(36) drops. Expected values computed outside Go (Python hashlib and
		// a base36 written from the multibase definition).
		{
			cluster: "root:org:team-a", namespace: "ns-12",
			wantJSON: `{"syncTarget":{"cluster":"root:org:locations","name":"cluster-1","uid":"8a3f2c1e-0000-4000-8000-000000000001"},"cluster":"root:org:team-a","namespace":"ns-12"}`,
			wantNS:   "kcp-0cre0ebentbd",
		},
		{
			cluster: "root:org:team-a", namespace: "ns-278",
			wantJSON: `{"syncTarget":{"cluster":"root:org:locations","name":"cluster-1","uid":"8a3f2c1e-0000-4000-8000-000000000001"},"cluster":"root:org:team-a","namespace":"ns-278"}`,
			wantNS:   "kcp-0fqh6inuuw2z",
		},
	} {
		l := NewNamespaceLocator("root:org:locations", "cluster-1", testUID, tc.cluster, tc.namespace)
		got, err := l.MarshalAnnotation()
		if err != nil || got != tc.wantJSON {
			t.Errorf("MarshalAnnotation() = %s, %v; want %s", got, err, tc.wantJSON)
		}
		ns, err := l.DownstreamNamespaceName()
		if err != nil || ns != tc.wantNS {
			t.Errorf("DownstreamNamespaceName() = %q, %v; want %q", ns, err, tc.wantNS)
		}
		if len(ns) != len("kcp-")+12 {
			t.Errorf("namespace name %q has the wrong length", ns)
		}
	}
}

// On kcp a locator names logical clusters, not paths: the SyncTarget's workspace and the
// object's workspace by their kcp.io/cluster names. Expected values computed independently
// (Python hashlib sha224 + base-36).
func TestNamespaceLocatorOfLogicalClusterNames(t *testing.T) {
	l := NewNamespaceLocator("1ls1e2d5ho7fnvra", "cluster-1", testUID, "2x8h3kqzt1a5b9cd", "default")
	const wantJSON = `{"syncTarget":{"cluster":"1ls1e2d5ho7fnvra","name":"cluster-1","uid":"8a3f2c1e-0000-4000-8000-000000000001"},"cluster":"2x8h3kqzt1a5b9cd","namespace":"default"}`
	if got, err := l.MarshalAnnotation(); err != nil || got != wantJSON {
		t.Errorf("MarshalAnnotation() = %s, %v; want %s", got, err, wantJSON)
	}
	if ns, err := l.DownstreamNamespaceName(); err != nil || ns != "kcp-249kfh757sqp" {
		t.Errorf("DownstreamNamespaceName() = %q, %v; want kcp-249kfh757sqp", ns, err)
	}
}

func TestParseNamespaceLocator(t *testing.T) {
	want := NewNamespaceLocator("root:org:locations", "cluster-1", testUID, "root:org:team-a", "default")
	for _, tc := range []struct {
		name, in string
		wantErr  bool
	}{
		{name: "current", in: `{"syncTarget":{"cluster":"root:org:locations","name":"cluster-1","uid":"8a3f2c1e-0000-4000-8000-000000000001"},"cluster":"root:org:team-a","namespace":"default"}`},
		{name: "unknown fields", in: `{"syncTarget":{"cluster":"root:org:locations","name":"cluster-1","uid":"8a3f2c1e-0000-4000-8000-000000000001","shard":"s1"},"cluster":"root:org:team-a","namespace":"default","future":{"x":1}}`},
		{name: "legacy path", in: `{"syncTarget":{"path":"root:org:locations","name":"cluster-1","uid":"8a3f2c1e-0000-4000-8000-000000000001"},"cluster":"root:org:team-a","namespace":"default"}`},
		{name: "not json", in: `kcp`, wantErr: true},
		{name: "array", in: `[]`, wantErr: true},
		{name: "missing name", in: `{"syncTarget":{"cluster":"root"},"cluster":"root:a","namespace":"x"}`, wantErr: true},
		{name: "missing cluster", in: `{"syncTarget":{"cluster":"root","name":"st"},"namespace":"x"}`, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseNamespaceLocator(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("expected an error, got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
			// A locator read in any spelling names the same downstream namespace.
			ns, _ := got.DownstreamNamespaceName()
			if ns != "kcp-u40r6y86jyuj" {
				t.Errorf("namespace = %q", ns)
			}
		})
	}
}

func TestNamespaceLocatorDistinct(t *testing.T) {
	base := NewNamespaceLocator("root:loc", "st", testUID, "root:a", "default")
	names := map[string]string{}
	for _, l := range []NamespaceLocator{
		base,
		NewNamespaceLocator("root:loc", "st", testUID, "root:b", "default"),
		NewNamespaceLocator("root:loc", "st", testUID, "root:a", "other"),
		NewNamespaceLocator("root:loc", "st2", testUID, "root:a", "default"),
		NewNamespaceLocator("root:loc", "st", "another-uid", "root:a", "default"),
	} {
		ns, err := l.DownstreamNamespaceName()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(ns, "kcp-") {
			t.Errorf("namespace %q lacks the kcp- prefix", ns)
		}
		key, _ := l.MarshalAnnotation()
		if prev, dup := names[ns]; dup {
			t.Errorf("locators %s and %s share namespace %s", prev, key, ns)
		}
		names[ns] = key
	}
	if !base.SameSyncTarget(NewNamespaceLocator("root:loc", "st", testUID, "root:z", "y")) {
		t.Errorf("SameSyncTarget must ignore the upstream side")
	}
	if base.SameSyncTarget(NewNamespaceLocator("root:loc", "st", "other", "root:a", "default")) {
		t.Errorf("SameSyncTarget must compare the UID")
	}
}

func TestLegacyDownstreamNamespaceName(t *testing.T) {
	zeroHash := NewNamespaceLocator("root:org:locations", "cluster-1", testUID, "root:org:team-a", "ns-12")
	legacy, differs, err := zeroHash.LegacyDownstreamNamespaceName()
	if err != nil || !differs || legacy != "kcp-cre0ebentbd2" {
		t.Errorf("LegacyDownstreamNamespaceName() = %q, %v, %v; want the name without kcp's leading zero, kcp-cre0ebentbd2", legacy, differs, err)
	}
	for _, name := range []string{"kcp-0cre0ebentbd", "kcp-cre0ebentbd2"} {
		if !zeroHash.IsDownstreamNamespaceName(name) {
			t.Errorf("IsDownstreamNamespaceName(%q) = false, want true", name)
		}
	}
	if zeroHash.IsDownstreamNamespaceName("kcp-u40r6y86jyuj") {
		t.Error("another locator's namespace accepted")
	}
	plain := NewNamespaceLocator("root:org:locations", "cluster-1", testUID, "root:org:team-a", "default")
	if _, differs, _ := plain.LegacyDownstreamNamespaceName(); differs {
		t.Error("a hash without a leading zero byte has a legacy name")
	}
}
