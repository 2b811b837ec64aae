package synctarget

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	"github.com/tmc-dev/tmc/pkg/workspaces"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcfake "github.com/tmc-dev/tmc/sdk/client/clientset/versioned/fake"
	tmcinformers "github.com/tmc-dev/tmc/sdk/client/informers/externalversions"
)

const (
	shard1 = "https://vw-1.example.com:6443"
	shard2 = "https://vw-2.example.com/"
)

// patchRecord is one patch the controller sent.
type patchRecord struct {
	name        string
	subresource string
	patchType   types.PatchType
	body        map[string]any
	options     metav1.PatchOptions
}

type vwEnv struct {
	c       *VirtualWorkspacesController
	metrics *tmc.TMCMetrics
	mu      sync.Mutex
	patches []patchRecord
}

// newVWEnv builds one location workspace holding syncTargets on fake clients, the
// controller for serverURLs, starts the informers and waits for them.
func newVWEnv(t *testing.T, serverURLs []string, syncTargets ...*workloadv1alpha1.SyncTarget) *vwEnv {
	t.Helper()
	env := &vwEnv{metrics: tmc.NewTMCMetrics("test")}
	var objs []runtime.Object
	for _, st := range syncTargets {
		objs = append(objs, st.DeepCopy())
	}
	tmcClient := tmcfake.NewSimpleClientset(objs...)
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds())
	dyn.PrependReactor("patch", "synctargets", func(action clienttesting.Action) (bool, runtime.Object, error) {
		patch := action.(clienttesting.PatchActionImpl)
		body := map[string]any{}
		if err := json.Unmarshal(patch.GetPatch(), &body); err != nil {
			return true, nil, err
		}
		env.mu.Lock()
		env.patches = append(env.patches, patchRecord{name: patch.GetName(), subresource: patch.GetSubresource(),
			patchType: patch.GetPatchType(), body: body, options: patch.PatchOptions})
		env.mu.Unlock()
		return true, &unstructured.Unstructured{Object: body}, nil
	})
	location := &workspaces.Workspace{Path: testLocation, Dynamic: dyn, TMC: tmcClient, TMCInformers: tmcinformers.NewSharedInformerFactory(tmcClient, 0)}
	set := &workspaces.Set{Location: map[string]*workspaces.Workspace{testLocation: location}}
	c, err := NewVirtualWorkspacesController(set, serverURLs, env.metrics)
	if err != nil {
		t.Fatalf("NewVirtualWorkspacesController: %v", err)
	}
	env.c = c
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); location.TMCInformers.Shutdown() })
	location.TMCInformers.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		t.Fatal("caches did not sync")
	}
	return env
}

func (env *vwEnv) drain(ctx context.Context) {
	for env.c.queue.Len() > 0 {
		env.c.queue.ProcessNext(ctx)
	}
}

func (env *vwEnv) recordedPatches() []patchRecord {
	env.mu.Lock()
	defer env.mu.Unlock()
	return append([]patchRecord(nil), env.patches...)
}

// withVirtualWorkspaces sets one entry per syncer URL, with the upsyncer URL of the same
// server beside it.
func withVirtualWorkspaces(st *workloadv1alpha1.SyncTarget, syncerURLs ...string) *workloadv1alpha1.SyncTarget {
	for _, u := range syncerURLs {
		st.Status.VirtualWorkspaces = append(st.Status.VirtualWorkspaces, workloadv1alpha1.VirtualWorkspace{SyncerURL: u, UpsyncerURL: upsyncerURLOf(u)})
	}
	return st
}

// upsyncerURLOf is the upsyncer view URL beside a syncer view URL.
func upsyncerURLOf(syncerURL string) string {
	return strings.Replace(syncerURL, "/services/syncer/", "/services/upsyncer/", 1)
}

// withSyncerURLOnly sets entries with a syncer URL and no upsyncer URL (as written before
// the upsyncer view existed).
func withSyncerURLOnly(st *workloadv1alpha1.SyncTarget, syncerURLs ...string) *workloadv1alpha1.SyncTarget {
	for _, u := range syncerURLs {
		st.Status.VirtualWorkspaces = append(st.Status.VirtualWorkspaces, workloadv1alpha1.VirtualWorkspace{SyncerURL: u})
	}
	return st
}

func inCluster(st *workloadv1alpha1.SyncTarget, cluster string) *workloadv1alpha1.SyncTarget {
	st.Annotations = map[string]string{logicalcluster.AnnotationKey: cluster}
	return st
}

// wantVWPatch is the exact patch body for SyncTarget east with the given syncer URLs (none:
// the field removed).
func wantVWPatch(syncerURLs ...string) map[string]any {
	var list any
	if len(syncerURLs) > 0 {
		entries := []any{}
		for _, u := range syncerURLs {
			entries = append(entries, map[string]any{"syncerURL": u, "upsyncerURL": upsyncerURLOf(u)})
		}
		list = entries
	}
	return map[string]any{
		"metadata": map[string]any{"uid": "east-uid"},
		"status":   map[string]any{"virtualWorkspaces": list},
	}
}

func TestVirtualWorkspacesReconcile(t *testing.T) {
	const cluster = "2x7k9m"
	url1 := shard1 + "/services/syncer/" + cluster + "/east/east-uid"
	url2 := "https://vw-2.example.com/services/syncer/" + cluster + "/east/east-uid"
	byPath := shard1 + "/services/syncer/" + testLocation + "/east/east-uid"
	tests := []struct {
		name       string
		serverURLs []string
		st         *workloadv1alpha1.SyncTarget
		want       map[string]any // nil: no write
	}{
		{name: "one URL per server, in flag order, from the kcp.io/cluster annotation",
			serverURLs: []string{shard1, shard2}, st: inCluster(newSyncTarget("east"), cluster), want: wantVWPatch(url1, url2)},
		{name: "no annotation: the location workspace names the cluster",
			serverURLs: []string{shard1}, st: newSyncTarget("east"), want: wantVWPatch(byPath)},
		{name: "up to date: no write",
			serverURLs: []string{shard1, shard2}, st: withVirtualWorkspaces(inCluster(newSyncTarget("east"), cluster), url1, url2)},
		{name: "wrong order is rewritten",
			serverURLs: []string{shard1, shard2}, st: withVirtualWorkspaces(inCluster(newSyncTarget("east"), cluster), url2, url1), want: wantVWPatch(url1, url2)},
		{name: "a foreign or stale entry is removed",
			serverURLs: []string{shard1}, st: withVirtualWorkspaces(inCluster(newSyncTarget("east"), cluster), url1, "https://old/services/syncer/x/east/east-uid"), want: wantVWPatch(url1)},
		{name: "an entry without its upsyncer URL gets it",
			serverURLs: []string{shard1}, st: withSyncerURLOnly(inCluster(newSyncTarget("east"), cluster), url1), want: wantVWPatch(url1)},
		{name: "no server URL: the field is removed",
			st: withVirtualWorkspaces(inCluster(newSyncTarget("east"), cluster), url1), want: wantVWPatch()},
		{name: "no server URL and no field: no write", st: newSyncTarget("east")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newVWEnv(t, tt.serverURLs, tt.st)
			env.drain(t.Context())
			patches := env.recordedPatches()
			if tt.want == nil {
				if len(patches) != 0 {
					t.Fatalf("wrote %d times, want no write: %v", len(patches), patches[0].body)
				}
				return
			}
			if len(patches) != 1 {
				t.Fatalf("wrote %d times, want once", len(patches))
			}
			p := patches[0]
			if p.name != "east" || p.subresource != "status" || p.patchType != types.MergePatchType {
				t.Errorf("patch of %s/%s with %s, want east/status with a merge patch", p.name, p.subresource, p.patchType)
			}
			if p.options.FieldManager != VirtualWorkspacesFieldManager {
				t.Errorf("field manager = %q, want %q", p.options.FieldManager, VirtualWorkspacesFieldManager)
			}
			if !reflect.DeepEqual(p.body, tt.want) {
				t.Errorf("patch =\n  %v\nwant\n  %v", p.body, tt.want)
			}
			if got := testutil.ToFloat64(env.metrics.CounterVec(VirtualWorkspacesWritesMetric).WithLabelValues(testLocation)); got != 1 {
				t.Errorf("%s = %v, want 1", VirtualWorkspacesWritesMetric, got)
			}
		})
	}
}

func TestVirtualWorkspacesGoneSyncTargetIsDropped(t *testing.T) {
	env := newVWEnv(t, []string{shard1})
	env.c.queue.Add(syncTargetKey{workspace: testLocation, name: "east"})
	env.drain(t.Context())
	if n := len(env.recordedPatches()); n != 0 {
		t.Errorf("wrote %d times for a SyncTarget that is gone", n)
	}
	if f := env.c.queue.Failures(syncTargetKey{workspace: testLocation, name: "east"}); f != 0 {
		t.Errorf("failures = %d, want 0", f)
	}
}

func TestVirtualWorkspacesHandlerIgnoresHeartbeats(t *testing.T) {
	env := newVWEnv(t, []string{shard1})
	handler := env.c.syncTargetHandler(testLocation)
	oldST := withVirtualWorkspaces(newSyncTarget("east"), "https://a")
	beat := oldST.DeepCopy()
	beat.ResourceVersion = "2"
	beat.Status.LastSyncerHeartbeatTime = &metav1.Time{}
	handler.OnUpdate(oldST, beat)
	if keys := env.c.queue.Drain(); len(keys) != 0 {
		t.Errorf("a heartbeat queued %v", keys)
	}
	edited := beat.DeepCopy()
	edited.ResourceVersion = "3"
	edited.Status.VirtualWorkspaces = nil
	handler.OnUpdate(beat, edited)
	resync := edited.DeepCopy()
	handler.OnUpdate(edited, resync)
	want := []syncTargetKey{{workspace: testLocation, name: "east"}}
	if keys := env.c.queue.Drain(); !reflect.DeepEqual(keys, want) {
		t.Errorf("queued %v, want %v (an edit of the field and a resync)", keys, want)
	}
}

func TestNewVirtualWorkspacesControllerChecksWorkspaces(t *testing.T) {
	if _, err := NewVirtualWorkspacesController(nil, nil, nil); err == nil {
		t.Error("nil set accepted")
	}
	set := &workspaces.Set{Location: map[string]*workspaces.Workspace{testLocation: {Path: testLocation}}}
	if _, err := NewVirtualWorkspacesController(set, nil, nil); err == nil || !strings.Contains(err.Error(), testLocation) {
		t.Errorf("a workspace without clients: err = %v", err)
	}
}
