package syncer

import (
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/rest"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// With syncer views, copies are written and watched through the upsyncer view of the
// workspace's shard, never the syncer view or the workspace's own URL.
func TestUpsyncUpstreamThroughTheUpsyncerView(t *testing.T) {
	const syncerURL, upsyncerURL = "https://vw.example/services/syncer/loc/east/uid", "https://vw.example/services/upsyncer/loc/east/uid"
	st := &workloadv1alpha1.SyncTarget{Status: workloadv1alpha1.SyncTargetStatus{VirtualWorkspaces: []workloadv1alpha1.VirtualWorkspace{
		{SyncerURL: syncerURL, UpsyncerURL: upsyncerURL}, {SyncerURL: "https://other/services/syncer/x"}}}}
	var mu sync.Mutex
	var hosts []string
	u := newUpsyncUpstream(testStKey, &rest.Config{Host: "https://hub.example"}, 0)
	u.shardOf = func(ws string) (string, bool) { return syncerURL, ws == upsyncCluster }
	u.newDynamic = func(cfg *rest.Config) (dynamic.Interface, error) {
		mu.Lock()
		defer mu.Unlock()
		hosts = append(hosts, cfg.Host)
		return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{podsGVR: "PodList"}), nil
	}
	if err := u.reconcile(t.Context(), nil, []schema.GroupVersionResource{podsGVR}, upsyncerViewURLs(st)); err != nil {
		t.Fatal(err)
	}
	defer u.stopAll()
	if _, _, ok := u.copies(upsyncCluster, podsGVR); !ok {
		t.Error("no cache of the workspace's copies")
	}
	if _, err := u.client(upsyncCluster, podsGVR); err != nil {
		t.Fatal(err)
	}
	if _, err := u.client("not-on-any-shard", podsGVR); err == nil {
		t.Error("a client for a workspace without an upsyncer view")
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{upsyncerURL + "/clusters/*", upsyncerURL + "/clusters/" + upsyncCluster}
	if len(hosts) != 2 || hosts[0] != want[0] || hosts[1] != want[1] {
		t.Errorf("clients built for %v, want %v", hosts, want)
	}
}
