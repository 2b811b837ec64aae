package syncer

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	metadatafake "k8s.io/client-go/metadata/fake"
	"k8s.io/client-go/tools/cache"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func claimMeta(namespace, name string) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app": "db"}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kcm"}}},
	}
}

// startClaims runs downstreamClaims over the given claims; downstream namespaces "kcp-*"
// are ours and map to the upstream namespaces of locators.
func startClaims(t *testing.T, locators map[string]workloadv1alpha1.NamespaceLocator, claims ...runtime.Object) *downstreamClaims {
	t.Helper()
	scheme := metadatafake.NewTestScheme()
	if err := metav1.AddMetaToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := newDownstreamClaims(metadatafake.NewSimpleMetadataClient(scheme, claims...), 0, func(downstreamNamespace string) (workloadv1alpha1.NamespaceLocator, bool) {
		l, ok := locators[downstreamNamespace]
		return l, ok
	}, func(cluster string) (string, bool) {
		ws, ok := map[string]string{"lc-a": "root:org:a", "lc-b": "root:org:b"}[cluster]
		return ws, ok
	})
	go c.run(t.Context())
	if !cache.WaitForCacheSync(t.Context().Done(), c.informer.HasSynced) {
		t.Fatal("claims cache did not sync")
	}
	return c
}

func TestDownstreamClaimsByWorkspace(t *testing.T) {
	locators := map[string]workloadv1alpha1.NamespaceLocator{
		"kcp-a1": {ClusterName: "lc-a", Namespace: "db"},
		"kcp-a2": {ClusterName: "lc-a", Namespace: "cache"},
		"kcp-a3": {ClusterName: "lc-a", Namespace: "web"},
		"kcp-b1": {ClusterName: "lc-b", Namespace: "db"},
	}
	c := startClaims(t, locators,
		claimMeta("kcp-a1", "data-db-0"), claimMeta("kcp-a1", "data-db-1"),
		claimMeta("kcp-a2", "made-by-an-operator"),
		claimMeta("kcp-b1", "data"),
		claimMeta("kube-system", "not-ours"))

	got, known := c.byWorkspace()
	if !known {
		t.Fatal("byWorkspace says unknown with the cache synced")
	}
	want := map[string][]string{"root:org:a": {"cache", "db"}, "root:org:b": {"db"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("byWorkspace = %v, want %v (namespaces without claims and namespaces not ours left out)", got, want)
	}
	for _, obj := range c.informer.GetStore().List() {
		if m := obj.(*metav1.PartialObjectMetadata); len(m.Labels) > 0 || len(m.ManagedFields) > 0 {
			t.Errorf("the cache keeps more than namespace and name of %s/%s: %+v", m.Namespace, m.Name, m.ObjectMeta)
		}
	}
}

// A namespace of ours whose logical cluster maps to no watched workspace (its name not
// learned yet after a restart) makes the whole answer unknown: leaving it out would read
// as "no data there" and allow a failover away from its volumes.
func TestDownstreamClaimsUnknownWorkspace(t *testing.T) {
	c := startClaims(t, map[string]workloadv1alpha1.NamespaceLocator{
		"kcp-a1": {ClusterName: "lc-a", Namespace: "db"},
		"kcp-x1": {ClusterName: "lc-not-watched", Namespace: "db"},
	}, claimMeta("kcp-a1", "data"), claimMeta("kcp-x1", "data"))
	if got, known := c.byWorkspace(); known {
		t.Errorf("byWorkspace = %v, known, with a claim in a namespace of an unmapped logical cluster", got)
	}
}

func TestDownstreamClaimsUnknownUntilSynced(t *testing.T) {
	var c *downstreamClaims
	if _, known := c.byWorkspace(); known {
		t.Error("a nil claims watcher claims to know")
	}
	scheme := metadatafake.NewTestScheme()
	c = newDownstreamClaims(metadatafake.NewSimpleMetadataClient(scheme), time.Minute, func(string) (workloadv1alpha1.NamespaceLocator, bool) {
		return workloadv1alpha1.NamespaceLocator{}, false
	}, func(string) (string, bool) { return "", false })
	if _, known := c.byWorkspace(); known {
		t.Error("byWorkspace says known before the cache was started")
	}
}

func TestPersistentNamespacesReport(t *testing.T) {
	previous := &workloadv1alpha1.WorkspaceHealth{Path: "root:org:a", PersistentNamespaces: []string{"db"}}
	many := make([]string, maxPersistentNamespaces+1)
	for i := range many {
		many[i] = fmt.Sprintf("ns-%03d", i)
	}
	tests := []struct {
		name          string
		claims        map[string][]string
		known         bool
		previous      *workloadv1alpha1.WorkspaceHealth
		want          []string
		wantTruncated bool
	}{
		{name: "known claims replace the last report", claims: map[string][]string{"root:org:a": {"cache"}}, known: true, previous: previous, want: []string{"cache"}},
		{name: "known and none: the list empties", claims: map[string][]string{}, known: true, previous: previous},
		// The guard: a restart (cache not synced) or claims that cannot be listed must not
		// erase the last report, or a target that dies right then loses its hold.
		{name: "unknown keeps the last report", known: false, previous: previous, want: []string{"db"}},
		{name: "unknown without a last report reports none", known: false},
		{name: "too many are truncated and say so", claims: map[string][]string{"root:org:a": many}, known: true, want: many[:maxPersistentNamespaces], wantTruncated: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := workloadv1alpha1.WorkspaceHealth{Path: "root:org:a"}
			persistentNamespaces(&h, tt.claims, tt.known, tt.previous)
			if !reflect.DeepEqual(h.PersistentNamespaces, tt.want) && (len(h.PersistentNamespaces) != 0 || len(tt.want) != 0) {
				t.Errorf("persistentNamespaces = %v, want %v", h.PersistentNamespaces, tt.want)
			}
			if h.PersistentNamespacesTruncated != tt.wantTruncated {
				t.Errorf("truncated = %v, want %v", h.PersistentNamespacesTruncated, tt.wantTruncated)
			}
		})
	}
}

func TestWorkspaceHealthReportsPersistentNamespaces(t *testing.T) {
	env := newTestEnv(t, testObjects{})
	env.addWorkspace(t, brokenWorkspace, true, nil)
	checker := newWorkspaceHealthChecker(syncTarget{workspace: testLocationWorkspace, name: testSyncTargetName, key: testStKey, uid: testSyncTargetUID})
	checker.claims = startClaims(t, map[string]workloadv1alpha1.NamespaceLocator{"kcp-b1": {ClusterName: "lc-b", Namespace: "db"}}, claimMeta("kcp-b1", "data"))
	checker.claims.workspaceOf = func(cluster string) (string, bool) { return brokenWorkspace, cluster == "lc-b" }
	got := checker.check(t.Context(), env.engine.workspaceSyncStates())
	found := false
	for _, h := range got {
		if h.Path == brokenWorkspace {
			found = true
			if !reflect.DeepEqual(h.PersistentNamespaces, []string{"db"}) {
				t.Errorf("workspace %s reports persistent namespaces %v, want [db]", h.Path, h.PersistentNamespaces)
			}
		}
	}
	if !found {
		t.Fatalf("no health reported for %s: %+v", brokenWorkspace, got)
	}
}
