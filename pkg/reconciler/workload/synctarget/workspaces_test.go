package synctarget

import (
	"context"
	"reflect"
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tmc-dev/tmc/pkg/workspaces"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// wantApply is the exact apply body for SyncTarget east with the given paths.
func wantApply(paths ...string) map[string]any {
	refs := []any{}
	for _, p := range paths {
		refs = append(refs, map[string]any{"path": p})
	}
	return map[string]any{
		"apiVersion": "workload.kcp.io/v1alpha1",
		"kind":       "SyncTarget",
		"metadata":   map[string]any{"name": "east", "uid": "east-uid"},
		"status": map[string]any{
			"workspaces":     refs,
			"workspaceCount": float64(len(paths)),
		},
	}
}

func TestSyncTargetWorkspacesReconcile(t *testing.T) {
	sync := workloadv1alpha1.ResourceStateSync
	placed := func(name string) *corev1.Namespace {
		return newNamespace(name, map[string]string{eastLabel: sync}, nil)
	}
	tests := []struct {
		name     string
		current  []string // status.workspaces of SyncTarget east
		count    *int32   // status.workspaceCount when it differs from len(current)
		fixtures map[string]workloadFixture
		// noObjects builds the controller without the resource controller.
		noObjects bool
		want      map[string]any // nil: no write
	}{
		{
			name: "sorted list of the workspaces with placed namespaces",
			fixtures: map[string]workloadFixture{
				wsB: {namespaces: []*corev1.Namespace{placed("web"), placed("api")}},
				wsA: {namespaces: []*corev1.Namespace{placed("web")}},
			},
			want: wantApply(wsA, wsB),
		},
		{
			name: "any label value and the deletion annotation count",
			fixtures: map[string]workloadFixture{
				wsA: {namespaces: []*corev1.Namespace{newNamespace("leaving", nil, map[string]string{eastDeletion: "2026-03-01T11:00:00Z"})}},
				wsB: {namespaces: []*corev1.Namespace{newNamespace("pending", map[string]string{eastLabel: ""}, nil)}},
			},
			want: wantApply(wsA, wsB),
		},
		{
			name: "namespaces of other targets are ignored; nothing to write",
			fixtures: map[string]workloadFixture{
				wsA: {namespaces: []*corev1.Namespace{newNamespace("web", map[string]string{westLabel: sync}, nil)}},
			},
		},
		{
			name:    "a workspace is removed when its last namespace loses the label",
			current: []string{wsA, wsB},
			fixtures: map[string]workloadFixture{
				wsA: {namespaces: []*corev1.Namespace{newNamespace("web", nil, nil)}},
				wsB: {namespaces: []*corev1.Namespace{placed("web")}},
			},
			want: wantApply(wsB),
		},
		{
			name:    "removing the last workspace applies an empty list and a zero count",
			current: []string{wsA},
			fixtures: map[string]workloadFixture{
				wsA: {namespaces: []*corev1.Namespace{newNamespace("web", nil, nil)}},
			},
			want: wantApply(),
		},
		{
			name:    "kept while objects are still labelled for the target",
			current: []string{wsA},
			fixtures: map[string]workloadFixture{
				wsA: {
					namespaces: []*corev1.Namespace{newNamespace("web", nil, nil)},
					objects:    []*unstructured.Unstructured{configMap("web", "cfg", map[string]string{eastLabel: sync})},
				},
			},
		},
		{
			name:    "objects alone make a workspace appear",
			current: nil,
			fixtures: map[string]workloadFixture{
				wsB: {objects: []*unstructured.Unstructured{configMap("web", "cfg", map[string]string{eastLabel: sync})}},
			},
			want: wantApply(wsB),
		},
		{
			name:    "without the resource controller only namespaces count",
			current: []string{wsA},
			fixtures: map[string]workloadFixture{
				wsA: {objects: []*unstructured.Unstructured{configMap("web", "cfg", map[string]string{eastLabel: sync})}},
			},
			noObjects: true,
			want:      wantApply(),
		},
		{
			name:    "no write when unchanged",
			current: []string{wsA, wsB},
			fixtures: map[string]workloadFixture{
				wsA: {namespaces: []*corev1.Namespace{placed("web")}},
				wsB: {namespaces: []*corev1.Namespace{placed("web")}},
			},
		},
		{
			name:    "a wrong count alone is corrected",
			current: []string{wsA},
			count:   new(int32),
			fixtures: map[string]workloadFixture{
				wsA: {namespaces: []*corev1.Namespace{placed("web")}},
			},
			want: wantApply(wsA),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newSyncTarget("east", tt.current...)
			if tt.count != nil {
				st.Status.WorkspaceCount = *tt.count
			}
			env := newTestEnv(t, []*workloadv1alpha1.SyncTarget{st, newSyncTarget("west")}, tt.fixtures, tt.noObjects)
			if err := env.c.reconcile(t.Context(), syncTargetKey{workspace: testLocation, name: "east"}); err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			applies := env.recordedApplies()
			if tt.want == nil {
				if len(applies) != 0 {
					t.Fatalf("want no write, got %v", applies)
				}
				return
			}
			if len(applies) != 1 {
				t.Fatalf("want exactly one apply, got %v", applies)
			}
			got := applies[0]
			if got.name != "east" || got.subresource != "status" {
				t.Errorf("applied to %s/%s, want east/status", got.name, got.subresource)
			}
			if got.options.FieldManager != WorkspacesFieldManager || got.options.Force == nil || !*got.options.Force {
				t.Errorf("apply options = %+v, want field manager %s and force", got.options, WorkspacesFieldManager)
			}
			if !reflect.DeepEqual(got.body, tt.want) {
				t.Errorf("apply body =\n%v\nwant only its own fields\n%v", got.body, tt.want)
			}
		})
	}
}

func TestSyncTargetWorkspacesSkipsMissingSyncTarget(t *testing.T) {
	env := newTestEnv(t, nil, map[string]workloadFixture{wsA: {namespaces: []*corev1.Namespace{newNamespace("web", map[string]string{eastLabel: "Sync"}, nil)}}}, false)
	for _, key := range []syncTargetKey{{workspace: testLocation, name: "east"}, {workspace: "root:unknown", name: "east"}} {
		if err := env.c.reconcile(t.Context(), key); err != nil {
			t.Errorf("reconcile %s: %v", key, err)
		}
	}
	if applies := env.recordedApplies(); len(applies) != 0 {
		t.Errorf("want no write, got %v", applies)
	}
}

func TestSyncTargetWorkspacesValidation(t *testing.T) {
	if _, err := NewWorkspacesController(nil, nil); err == nil {
		t.Error("want an error for a nil set")
	}
	noClients := &workspaces.Set{Location: map[string]*workspaces.Workspace{testLocation: {Path: testLocation}}}
	if _, err := NewWorkspacesController(noClients, nil); err == nil {
		t.Error("want an error for a location workspace without clients")
	}
	noInformers := &workspaces.Set{Workload: map[string]*workspaces.Workspace{wsA: {Path: wsA}}}
	if _, err := NewWorkspacesController(noInformers, nil); err == nil {
		t.Error("want an error for a workload workspace without informers")
	}
}

// queued drains the queue without processing and returns the keys.
func queued(env *testEnv) []syncTargetKey {
	return env.c.queue.Drain()
}

func TestSyncTargetWorkspacesEventFilters(t *testing.T) {
	env := newTestEnv(t, []*workloadv1alpha1.SyncTarget{newSyncTarget("east"), newSyncTarget("west")}, nil, true)
	poll(t, "the initial adds", func() bool { return env.c.queue.Len() == 2 })
	queued(env)
	all := []syncTargetKey{{workspace: testLocation, name: "east"}, {workspace: testLocation, name: "west"}}
	east := []syncTargetKey{{workspace: testLocation, name: "east"}}

	withRV := func(st *workloadv1alpha1.SyncTarget, rv string) *workloadv1alpha1.SyncTarget {
		st.ResourceVersion = rv
		return st
	}
	heartbeat := withRV(newSyncTarget("east", wsA), "2")
	heartbeat.Status.LastSyncerHeartbeatTime = &metav1.Time{}
	stHandler := env.c.syncTargetHandler(testLocation)
	nsHandler := env.c.namespaceHandler()
	placed := newNamespace("web", map[string]string{"team": "a", eastLabel: "Sync"}, nil)
	tests := []struct {
		name  string
		event func()
		want  []syncTargetKey
	}{
		{"heartbeat", func() { stHandler.OnUpdate(withRV(newSyncTarget("east", wsA), "1"), heartbeat) }, nil},
		{"resync", func() { stHandler.OnUpdate(heartbeat, heartbeat) }, east},
		{"workspaces changed by someone else", func() {
			stHandler.OnUpdate(withRV(newSyncTarget("east", wsA), "1"), withRV(newSyncTarget("east", wsB), "2"))
		}, east},
		{"count changed", func() {
			changed := withRV(newSyncTarget("east", wsA), "2")
			changed.Status.WorkspaceCount = 0
			stHandler.OnUpdate(withRV(newSyncTarget("east", wsA), "1"), changed)
		}, east},
		{"new SyncTarget", func() { stHandler.OnAdd(newSyncTarget("east"), false) }, east},
		{"unplaced namespace added", func() { nsHandler.OnAdd(newNamespace("web", map[string]string{"team": "a"}, nil), false) }, nil},
		{"label change that is not about placement", func() {
			nsHandler.OnUpdate(newNamespace("web", nil, nil), newNamespace("web", map[string]string{"team": "a"}, nil))
		}, nil},
		{"namespace placed", func() { nsHandler.OnUpdate(newNamespace("web", map[string]string{"team": "a"}, nil), placed) }, all},
		// Membership depends only on which keys a namespace has a label or annotation for.
		{"deletion annotation added to a placed namespace", func() {
			nsHandler.OnUpdate(placed, newNamespace("web", placed.Labels, map[string]string{eastDeletion: "2026-03-01T11:00:00Z"}))
		}, nil},
		{"label and deletion annotation removed", func() {
			nsHandler.OnUpdate(newNamespace("web", placed.Labels, map[string]string{eastDeletion: "2026-03-01T11:00:00Z"}), newNamespace("web", nil, nil))
		}, all},
		{"moved to another target", func() {
			nsHandler.OnUpdate(placed, newNamespace("web", map[string]string{eastLabel: "Sync", westLabel: "Sync"}, nil))
		}, all},
		{"placed namespace added", func() { nsHandler.OnAdd(placed, false) }, all},
		{"placed namespace deleted", func() { nsHandler.OnDelete(placed) }, all},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.event()
			got := queued(env)
			sort.Slice(got, func(i, j int) bool { return got[i].name < got[j].name })
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("queued %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSyncTargetWorkspacesRequeuesOnPlacementAndObjects(t *testing.T) {
	env := newTestEnv(t, []*workloadv1alpha1.SyncTarget{newSyncTarget("east"), newSyncTarget("west")},
		map[string]workloadFixture{
			wsA: {namespaces: []*corev1.Namespace{newNamespace("web", nil, nil)}},
			wsB: {objects: []*unstructured.Unstructured{configMap("web", "cfg", nil)}},
		}, false)
	ctx := t.Context()
	poll(t, "the initial adds", func() bool { return env.c.queue.Len() == 2 })
	queued(env)

	if _, err := env.kube[wsA].CoreV1().Namespaces().Update(ctx, newNamespace("web", map[string]string{eastLabel: "Sync"}, nil), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "both SyncTargets to be queued after a placement change", func() bool { return env.c.queue.Len() == 2 })
	queued(env)

	// An object gaining a state label reaches it through the resource controller.
	if _, err := env.dynamic[wsB].Resource(configMapsGVR).Namespace("web").Update(ctx, configMap("web", "cfg", map[string]string{eastLabel: "Sync"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "both SyncTargets to be queued after an object change", func() bool { return env.c.queue.Len() == 2 })
}

func TestSyncTargetWorkspacesRunFollowsRelease(t *testing.T) {
	// Namespace already unplaced, but the syncer has not released the object yet.
	env := newTestEnv(t, []*workloadv1alpha1.SyncTarget{newSyncTarget("east", wsA)},
		map[string]workloadFixture{
			wsA: {
				namespaces: []*corev1.Namespace{newNamespace("web", nil, nil)},
				objects:    []*unstructured.Unstructured{configMap("web", "cfg", map[string]string{eastLabel: "Sync"})},
			},
		}, false)
	poll(t, "the initial add", func() bool { return env.c.queue.Len() == 1 })
	env.drain(t.Context())
	if applies := env.recordedApplies(); len(applies) != 0 {
		t.Fatalf("workspace with a labelled object must be kept, got %v", applies)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		env.c.Run(ctx, 1)
	}()
	defer func() {
		cancel()
		<-done
	}()
	// The syncer releases the object: the workspace goes.
	if _, err := env.dynamic[wsA].Resource(configMapsGVR).Namespace("web").Update(ctx, configMap("web", "cfg", nil), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The fake apply does not change the SyncTarget in the cache, so Run's own initial pass
	// may apply the same result a second time.
	poll(t, "the workspace to be removed", func() bool { return len(env.recordedApplies()) > 0 })
	for _, got := range env.recordedApplies() {
		if !reflect.DeepEqual(got.body, wantApply()) {
			t.Errorf("apply body = %v, want %v", got.body, wantApply())
		}
	}
}
