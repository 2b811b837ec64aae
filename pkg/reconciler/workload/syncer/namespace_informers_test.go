package syncer

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func TestUpstreamNamespaceHandler(t *testing.T) {
	placed := upstreamNS()
	tests := []struct {
		name string
		call func(h cache.ResourceEventHandlerFuncs)
		want bool
	}{
		{name: "placed namespace added (initial list): nothing", call: func(h cache.ResourceEventHandlerFuncs) { h.OnAdd(placed, true) }},
		{name: "namespace added while being removed: queued", call: func(h cache.ResourceEventHandlerFuncs) { h.OnAdd(upstreamNS(beingRemoved), true) }, want: true},
		{name: "namespace added pending: queued", call: func(h cache.ResourceEventHandlerFuncs) { h.OnAdd(upstreamNS(pendingState), false) }, want: true},
		{name: "placed → deletion annotation: queued", call: func(h cache.ResourceEventHandlerFuncs) { h.OnUpdate(placed, upstreamNS(beingRemoved)) }, want: true},
		{name: "placed → state label not Sync: queued", call: func(h cache.ResourceEventHandlerFuncs) { h.OnUpdate(placed, upstreamNS(pendingState)) }, want: true},
		{name: "removing → placed again: queued", call: func(h cache.ResourceEventHandlerFuncs) { h.OnUpdate(upstreamNS(beingRemoved), placed) }, want: true},
		{
			name: "other changes (labels, resourceVersion): nothing",
			call: func(h cache.ResourceEventHandlerFuncs) {
				h.OnUpdate(placed, upstreamNS(func(ns *corev1.Namespace) { ns.Labels["team"] = "a"; ns.ResourceVersion = "9" }))
			},
		},
		{name: "deleted (or state label removed): queued", call: func(h cache.ResourceEventHandlerFuncs) { h.OnDelete(placed) }, want: true},
		{
			name: "deleted, final state unknown: queued",
			call: func(h cache.ResourceEventHandlerFuncs) {
				h.OnDelete(cache.DeletedFinalStateUnknown{Key: testNamespace, Obj: placed})
			},
			want: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			tc.call(upstreamNamespaceHandler(testStKey, func(ns *corev1.Namespace) { got = append(got, ns.Name) }))
			if want := tc.want; want != (len(got) == 1 && got[0] == testNamespace) || len(got) > 1 {
				t.Errorf("queued %q, want queued: %v", got, want)
			}
		})
	}
}

// TestUpstreamNamespaceInformerFollowsTheWorkspace starts the engine's real informers on a
// fake upstream: the namespace cache serves upstreamNamespace once synced, its events queue
// the cleanup check, and it stops with the workspace.
func TestUpstreamNamespaceInformerFollowsTheWorkspace(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	upstreamKube := kubefake.NewClientset(upstreamNS())
	var (
		mu      sync.Mutex
		changed []string
	)
	env := newTestEnv(t, testObjects{})
	e := newEngine(testStKey, env.downstreamDynamic, env.downstreamKube, func(context.Context, string) (*upstreamWorkspace, error) {
		return &upstreamWorkspace{dynamic: env.upstreamDynamic, kube: upstreamKube, stopEvents: func() {}}, nil
	}, 0, engineEvents{upstreamNamespaceChanged: func(ws, ns string) {
		mu.Lock()
		defer mu.Unlock()
		changed = append(changed, ws+"/"+ns)
	}}, env.metrics)
	e.namespacesSynced = func() bool { return true }

	if err := e.reconcile(ctx, nil, nil, []string{testWorkspace}, nil); err != nil {
		t.Fatal(err)
	}
	eventuallyTrue(t, "the upstream namespace cache did not sync", func() bool { return e.upstreamSynced(testWorkspace) })
	eventuallyTrue(t, "the placed upstream namespace is not served from the cache", func() bool {
		ns, ok := e.upstreamNamespace(testWorkspace, testNamespace)
		return ok && placedOnTarget(testStKey, ns)
	})
	if _, ok := e.upstreamNamespace("root:org:other", testNamespace); ok {
		t.Error("a workspace that is not watched must not serve namespaces")
	}
	client, ok := e.upstreamNamespaces(testWorkspace)
	if !ok {
		t.Fatal("no live namespace client for a watched workspace")
	}
	if _, err := client.Update(ctx, upstreamNS(beingRemoved), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventuallyTrue(t, "the deletion annotation did not queue the cleanup check", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(changed, testWorkspace+"/"+testNamespace)
	})

	e.mu.RLock()
	h := e.upstreamWorkspaces[testWorkspace].namespaces
	e.mu.RUnlock()
	if err := e.reconcile(ctx, nil, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the upstream namespace informer did not stop with its workspace")
	}
	if e.upstreamSynced(testWorkspace) {
		t.Error("a workspace that is no longer watched must not count as synced")
	}
	if _, ok := e.upstreamNamespace(testWorkspace, testNamespace); ok {
		t.Error("a workspace that is no longer watched must not serve namespaces")
	}
}

// eventuallyTrue waits until cond holds, failing the test after a generous deadline.
func eventuallyTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 10*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		t.Fatal(what)
	}
}

func TestPlacedOnTarget(t *testing.T) {
	for _, tc := range []struct {
		name string
		ns   *corev1.Namespace
		want bool
	}{
		{name: "state label Sync", ns: upstreamNS(), want: true},
		{name: "state label pending", ns: upstreamNS(pendingState)},
		{name: "no state label", ns: upstreamNS(withoutStateLabel)},
		{name: "being removed", ns: upstreamNS(beingRemoved)},
		{name: "another target's deletion annotation", ns: upstreamNS(func(ns *corev1.Namespace) {
			ns.Annotations[workloadv1alpha1.DeletionAnnotation(otherStKey)] = "x"
		}), want: true},
	} {
		if got := placedOnTarget(testStKey, tc.ns); got != tc.want {
			t.Errorf("%s: placedOnTarget = %v, want %v", tc.name, got, tc.want)
		}
	}
}
