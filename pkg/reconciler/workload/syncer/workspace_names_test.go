package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
)

// namespaceListServer serves GET /clusters/<ws>/api/v1/namespaces with items, counting
// the requests.
func namespaceListServer(t *testing.T, items ...corev1.Namespace) (*rest.Config, *atomic.Int32) {
	t.Helper()
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.URL.Path != "/clusters/root:org:team-a/api/v1/namespaces" || r.URL.Query().Get("limit") != "1" {
			http.Error(w, "unexpected request "+r.URL.String(), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&corev1.NamespaceList{TypeMeta: metav1.TypeMeta{Kind: "NamespaceList", APIVersion: "v1"}, Items: items})
	}))
	t.Cleanup(srv.Close)
	return &rest.Config{Host: srv.URL}, &requests
}

func TestClusterNameResolver(t *testing.T) {
	annotated := corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default", Annotations: map[string]string{"kcp.io/cluster": "2x8h3kqzt1a5b9cd"}}}
	cfg, requests := namespaceListServer(t, annotated)
	if got, err := clusterNameResolver(cfg)(t.Context(), "root:org:team-a"); err != nil || got != "2x8h3kqzt1a5b9cd" {
		t.Errorf("resolved %q, %v; want the kcp.io/cluster name of the workspace's namespaces", got, err)
	}
	if requests.Load() != 1 {
		t.Errorf("%d requests to learn one name, want 1", requests.Load())
	}

	cfg, _ = namespaceListServer(t, corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
	if got, err := clusterNameResolver(cfg)(t.Context(), "root:org:team-a"); err != nil || got != "root:org:team-a" {
		t.Errorf("without the annotation resolved %q, %v; want the path", got, err)
	}

	// No namespace to read the name from: no name, never a guess.
	cfg, _ = namespaceListServer(t)
	if got, err := clusterNameResolver(cfg)(t.Context(), "root:org:team-a"); err == nil {
		t.Errorf("an empty workspace resolved to %q, want an error", got)
	}

	// A plain hub needs no request.
	cfg, requests = namespaceListServer(t, annotated)
	if got, err := clusterNameResolver(cfg)(t.Context(), hubWorkspace); err != nil || got != hubWorkspace || requests.Load() != 0 {
		t.Errorf("hub resolved %q, %v after %d requests; want %q and none", got, err, requests.Load(), hubWorkspace)
	}
}

// A workspace whose logical-cluster name cannot be learned gets no upstream informer (so no
// spec is synced and no locator is computed from a guess) and never counts as synced (so
// its downstream namespaces are never cleaned up); once the name is known it is watched.
func TestUnnamedWorkspaceIsNotWatched(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	env := newTestEnv(t, testObjects{})
	upstreamKube := kubefake.NewClientset(upstreamNS())
	e := newEngine(testStKey, env.downstreamDynamic, env.downstreamKube, func(context.Context, string) (*upstreamWorkspace, error) {
		return &upstreamWorkspace{dynamic: env.upstreamDynamic, kube: upstreamKube, stopEvents: func() {}}, nil
	}, 0, engineEvents{upstreamNamespaceChanged: func(string, string) {}}, env.metrics)
	e.namespacesSynced = func() bool { return true }
	var readable atomic.Bool
	e.resolveClusterName = func(_ context.Context, ws string) (string, error) {
		if !readable.Load() {
			return "", errors.New("workspace unavailable")
		}
		return testClusterName(ws), nil
	}
	accepted := []resourceInfo{{gvr: configMapsGVR, kind: "ConfigMap"}}
	served := map[upstreamInformerKey]bool{{workspace: testWorkspace, gvr: configMapsGVR}: true}
	if err := e.reconcile(ctx, accepted, nil, []string{testWorkspace}, served); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.upstream(testWorkspace, configMapsGVR); ok {
		t.Error("a workspace without a logical-cluster name is watched")
	}
	if e.upstreamSynced(testWorkspace) {
		t.Error("a workspace without a logical-cluster name counts as synced")
	}
	if _, ok := e.workspaceOf(testClusterName(testWorkspace)); ok {
		t.Error("an unknown name maps to a workspace")
	}

	readable.Store(true)
	if err := e.reconcile(ctx, accepted, nil, []string{testWorkspace}, served); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.upstream(testWorkspace, configMapsGVR); !ok {
		t.Error("the workspace is not watched once its name is known")
	}
	if ws, ok := e.workspaceOf(testClusterName(testWorkspace)); !ok || ws != testWorkspace {
		t.Errorf("workspaceOf(%q) = %q, %v; want %q", testClusterName(testWorkspace), ws, ok, testWorkspace)
	}
	if name, ok := e.clusterName(testWorkspace); !ok || name != testClusterName(testWorkspace) {
		t.Errorf("clusterName(%q) = %q, %v", testWorkspace, name, ok)
	}

	// The workspace goes: so does its name.
	if err := e.reconcile(ctx, accepted, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.workspaceOf(testClusterName(testWorkspace)); ok {
		t.Error("the name of a workspace no longer watched still maps to it")
	}
	e.stopAll()
}

// A workspace whose name cannot be learned says why in status.workspaceHealth, classified
// like any failed read (here Forbidden: no RBAC there), instead of looking merely empty.
func TestUnnamedWorkspaceHealthSaysWhy(t *testing.T) {
	env := newTestEnv(t, testObjects{})
	const ws = "root:org:no-rbac"
	env.engine.resolveClusterName = func(context.Context, string) (string, error) {
		return "", fmt.Errorf("failed to read the logical-cluster name of workspace %s: %w", ws, forbiddenToList("namespaces"))
	}
	env.engine.mu.Lock()
	env.engine.upstreamWorkspaces[ws] = &upstreamWorkspace{dynamic: env.upstreamDynamic, recorder: record.NewFakeRecorder(10), stopEvents: func() {}}
	env.engine.mu.Unlock()
	env.engine.nameWorkspaces(t.Context(), []string{ws})
	checker := newWorkspaceHealthChecker(syncTarget{workspace: testLocationWorkspace, name: testSyncTargetName, key: testStKey, uid: testSyncTargetUID})
	for _, h := range checker.check(t.Context(), env.engine.workspaceSyncStates()) {
		if h.Path != ws {
			continue
		}
		if h.Ready || h.Reason != workloadv1alpha1.WorkspaceForbidden || !strings.Contains(h.Message, "logical-cluster name") {
			t.Errorf("health of %s = %+v, want Forbidden naming the logical-cluster name", ws, h)
		}
		return
	}
	t.Fatalf("no health reported for %s", ws)
}
