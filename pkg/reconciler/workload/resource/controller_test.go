package resource

import (
	"context"
	"reflect"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	"github.com/tmc-dev/tmc/pkg/workspaces"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func deployment(namespace, name string, mutate ...func(*unstructured.Unstructured)) *unstructured.Unstructured {
	return newObject(deploymentsGVR, "Deployment", namespace, name, mutate...)
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestResourceNewControllerValidation(t *testing.T) {
	if _, err := NewController(nil, nil, nil); err == nil {
		t.Error("want an error for a nil set")
	}
	incomplete := &workspaces.Set{Workload: map[string]*workspaces.Workspace{testWorkspace: {Path: testWorkspace}}}
	if _, err := NewController(incomplete, nil, nil); err == nil {
		t.Error("want an error for a workspace without clients")
	}
	if _, err := NewController(&workspaces.Set{}, []workloadv1alpha1.ResourceToSync{{Group: "apps"}}, nil); err == nil {
		t.Error("want an error for an empty resource name")
	}
	c, err := NewController(&workspaces.Set{}, nil, nil)
	if err != nil {
		t.Fatalf("NewController without workspaces: %v", err)
	}
	if !reflect.DeepEqual(c.resources, workloadv1alpha1.DefaultResources()) {
		t.Errorf("resources = %v, want the defaults", c.resources)
	}
}

func TestResourceNamespaceChangeEnqueuesItsObjects(t *testing.T) {
	env := newTestEnv(t, nil,
		[]*corev1.Namespace{newNamespace(testNamespace, nil, nil), newNamespace("other", nil, nil)},
		[]*unstructured.Unstructured{
			configMap(testNamespace, "a"), configMap(testNamespace, "b"), deployment(testNamespace, "web"),
			configMap("other", "c"),
		}, nil)
	ctx := t.Context()
	env.drain(ctx) // the initial adds: nothing to do in unplaced namespaces
	if patches := env.patches(t); len(patches) != 0 {
		t.Fatalf("unplaced namespaces must not be written to, got %v", patches)
	}

	// A change that is not about placement queues nothing.
	ns := newNamespace(testNamespace, map[string]string{"team": "a"}, nil)
	if _, err := env.kube.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ns.Labels[eastLabel] = workloadv1alpha1.ResourceStateSync
	if _, err := env.kube.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "three queued objects", func() bool { return env.c.queue.Len() == 3 })
	var got []string
	for _, key := range env.c.queue.Drain() {
		got = append(got, key.String())
		env.c.queue.Add(key)
	}
	sort.Strings(got)
	want := []string{
		testWorkspace + "|configmaps|web/a",
		testWorkspace + "|configmaps|web/b",
		testWorkspace + "|deployments.apps|web/web",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("queued %v, want %v", got, want)
	}
	env.drain(ctx)
	if patches := env.patches(t); len(patches) != 3 {
		t.Errorf("want 3 patches, got %v", patches)
	}
}

func TestResourceRunPropagatesAndStaysQuiet(t *testing.T) {
	env := newTestEnv(t, nil, []*corev1.Namespace{newNamespace(testNamespace, nil, nil)}, []*unstructured.Unstructured{configMap(testNamespace, "cm")}, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		env.c.Run(ctx, 2)
	}()
	stop := func() {
		cancel()
		<-done
	}
	defer stop()

	ns := newNamespace(testNamespace, map[string]string{eastLabel: workloadv1alpha1.ResourceStateSync}, nil)
	if _, err := env.kube.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.dynamic.Resource(deploymentsGVR).Namespace(testNamespace).Create(ctx, deployment(testNamespace, "web"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labelled := func(gvr, name string) func() bool {
		return func() bool {
			g := configMapsGVR
			if gvr == "deployments" {
				g = deploymentsGVR
			}
			obj, err := env.dynamic.Resource(g).Namespace(testNamespace).Get(ctx, name, metav1.GetOptions{})
			return err == nil && obj.GetLabels()[eastLabel] == workloadv1alpha1.ResourceStateSync
		}
	}
	poll(t, "the configmap to be labelled", labelled("configmaps", "cm"))
	poll(t, "the deployment to be labelled", labelled("deployments", "web"))
	poll(t, "the queue to drain", func() bool { return env.c.queue.Len() == 0 })
	// The fake tracker does not enforce the resourceVersion precondition, so a key queued
	// twice may have been patched twice from a stale cache; a real server answers that
	// second patch with a conflict. Once the caches caught up, nothing is written again.
	poll(t, "the caches to catch up", func() bool {
		for _, t := range env.c.typesOf(testWorkspace) {
			for _, obj := range t.informer.GetStore().List() {
				if obj.(*unstructured.Unstructured).GetLabels()[eastLabel] != workloadv1alpha1.ResourceStateSync {
					return false
				}
			}
		}
		return true
	})
	settled := len(env.patches(t))
	env.c.enqueueNamespace(testWorkspace, testNamespace)
	poll(t, "the queue to drain again", func() bool { return env.c.queue.Len() == 0 })
	stop() // waits for the workers, so an item in flight has finished
	if n := len(env.patches(t)); n != settled {
		t.Errorf("objects that already follow their namespace were written again: %d patches, want %d", n, settled)
	}
}

func TestResourceConflictIsRetried(t *testing.T) {
	env := newTestEnv(t, nil,
		[]*corev1.Namespace{newNamespace(testNamespace, map[string]string{eastLabel: workloadv1alpha1.ResourceStateSync}, nil)},
		[]*unstructured.Unstructured{configMap(testNamespace, "cm")}, nil)
	var calls atomic.Int32
	env.dynamic.PrependReactor("patch", "configmaps", func(clienttesting.Action) (bool, runtime.Object, error) {
		if calls.Add(1) == 1 {
			return true, nil, apierrors.NewConflict(configMapsGVR.GroupResource(), "cm", nil)
		}
		return false, nil, nil
	})
	key := objectKey{workspace: testWorkspace, gvr: configMapsGVR, namespace: testNamespace, name: "cm"}
	env.c.queue.Drain() // drop the initial adds
	env.c.queue.Add(key)
	env.c.queue.ProcessNext(t.Context())
	if got := env.c.queue.Failures(key); got != 1 {
		t.Fatalf("requeues after a conflict = %d, want 1", got)
	}
	poll(t, "the retry", func() bool { return env.c.queue.Len() == 1 })
	env.c.queue.ProcessNext(t.Context())
	if got := env.c.queue.Failures(key); got != 0 {
		t.Errorf("requeues after success = %d, want 0 (forgotten)", got)
	}
	if calls.Load() != 2 {
		t.Errorf("patch calls = %d, want 2", calls.Load())
	}
}

func TestResourceTypesInUse(t *testing.T) {
	env := newTestEnv(t, nil,
		[]*corev1.Namespace{newNamespace(testNamespace, nil, nil), newNamespace("empty", nil, nil), newNamespace("cms", nil, nil)},
		[]*unstructured.Unstructured{
			deployment(testNamespace, "web"), configMap(testNamespace, "cfg"), configMap("cms", "cfg"),
			// Every namespace holds one; it must not make configmaps a type in use.
			configMap(testNamespace, "kube-root-ca.crt"), configMap("empty", "kube-root-ca.crt"),
		}, nil)
	if !env.c.HasSynced() {
		t.Fatal("HasSynced = false after the caches synced")
	}
	tests := []struct {
		workspace, namespace string
		want                 []workloadv1alpha1.ResourceToSync
	}{
		{testWorkspace, testNamespace, []workloadv1alpha1.ResourceToSync{{Resource: "configmaps"}, {Group: "apps", Resource: "deployments"}}},
		{testWorkspace, "cms", []workloadv1alpha1.ResourceToSync{{Resource: "configmaps"}}},
		{testWorkspace, "empty", nil},
		{"root:unknown", testNamespace, nil},
	}
	for _, tt := range tests {
		if got := env.c.TypesInUse(tt.workspace, tt.namespace); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("TypesInUse(%s, %s) = %v, want %v", tt.workspace, tt.namespace, got, tt.want)
		}
	}
}

func TestResourceWorkspacesWithObjectsFor(t *testing.T) {
	env := newTestEnv(t, nil, []*corev1.Namespace{newNamespace(testNamespace, nil, nil)},
		[]*unstructured.Unstructured{
			configMap(testNamespace, "cm", withLabels(map[string]string{eastLabel: workloadv1alpha1.ResourceStatePendingValue})),
			deployment(testNamespace, "web", withAnnotations(map[string]string{westDeletion: nsDeletionTime})),
		}, nil)
	if got, want := env.c.WorkspacesWithObjectsFor(stKeyEast), []string{testWorkspace}; !reflect.DeepEqual(got, want) {
		t.Errorf("WorkspacesWithObjectsFor(east) = %v, want %v", got, want)
	}
	// A deletion annotation without the label does not hold the workspace.
	if got := env.c.WorkspacesWithObjectsFor(stKeyWest); len(got) != 0 {
		t.Errorf("WorkspacesWithObjectsFor(west) = %v, want none", got)
	}
}

func TestResourceObjectStateHandler(t *testing.T) {
	env := newTestEnv(t, nil, []*corev1.Namespace{newNamespace(testNamespace, nil, nil)}, []*unstructured.Unstructured{configMap(testNamespace, "cm")}, nil)
	var calls atomic.Int32
	env.c.AddObjectStateHandler(func(workspace string) {
		if workspace == testWorkspace {
			calls.Add(1)
		}
	})
	ctx := t.Context()
	client := env.dynamic.Resource(configMapsGVR).Namespace(testNamespace)
	// Not a state label: no call.
	if _, err := client.Update(ctx, configMap(testNamespace, "cm", withLabels(map[string]string{"app": "web"})), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Update(ctx, configMap(testNamespace, "cm", withLabels(map[string]string{"app": "web", eastLabel: "Sync"})), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the label change", func() bool { return calls.Load() == 1 })
	if err := client.Delete(ctx, "cm", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the labelled object's deletion", func() bool { return calls.Load() == 2 })
}

func TestResourceDiscoveryResolvesOtherGroups(t *testing.T) {
	resources := []workloadv1alpha1.ResourceToSync{
		{Resource: "configmaps"},
		{Group: "example.com", Resource: "widgets"},
		{Group: "example.com", Resource: "clusterthing"},
		{Group: "example.com", Resource: "gadgets"},
		{Group: "missing.example.com", Resource: "things"},
	}
	discovery := []*metav1.APIResourceList{{
		GroupVersion: widgetsGVR.GroupVersion().String(),
		APIResources: []metav1.APIResource{
			{Name: "widgets", Namespaced: true, Kind: "Widget"},
			{Name: "clusterthing", Namespaced: false, Kind: "ClusterThing"},
		},
	}}
	widget := newObject(widgetsGVR, "Widget", testNamespace, "w1")
	env := newTestEnv(t, resources, []*corev1.Namespace{newNamespace(testNamespace, nil, nil)}, []*unstructured.Unstructured{widget}, discovery)

	if got := env.c.TypesInUse(testWorkspace, testNamespace); len(got) != 0 {
		t.Fatalf("before discovery TypesInUse = %v, want none", got)
	}
	ctx := t.Context()
	if pending := env.c.resolveTypes(ctx); !pending {
		t.Error("unserved types must stay pending for a later retry")
	}
	_, widgets := env.c.lookup(testWorkspace, widgetsGVR)
	if widgets == nil {
		t.Fatal("widgets.example.com was not resolved to its preferred version")
	}
	if !cache.WaitForCacheSync(ctx.Done(), widgets.synced) {
		t.Fatal("widget informer did not sync")
	}
	want := []workloadv1alpha1.ResourceToSync{{Group: "example.com", Resource: "widgets"}}
	if got := env.c.TypesInUse(testWorkspace, testNamespace); !reflect.DeepEqual(got, want) {
		t.Errorf("TypesInUse = %v, want %v", got, want)
	}
	state := env.c.workspaces[testWorkspace]
	if len(state.unresolved) != 3 || len(state.reported) != 3 {
		t.Errorf("unresolved = %v, reported = %v; want the 3 unserved types", state.unresolved, state.reported)
	}
	// A second pass resolves nothing new and starts nothing twice.
	if pending := env.c.resolveTypes(ctx); !pending {
		t.Error("still pending")
	}
}

func TestResourceEventFilters(t *testing.T) {
	env := newTestEnv(t, nil, []*corev1.Namespace{newNamespace(testNamespace, nil, nil)}, []*unstructured.Unstructured{configMap(testNamespace, "cm")}, nil)
	poll(t, "the initial add", func() bool { return env.c.queue.Len() == 1 })
	take := func() []string {
		var out []string
		for _, key := range env.c.queue.Drain() {
			out = append(out, key.String())
		}
		return out
	}
	take()
	withRV := func(u *unstructured.Unstructured, rv string) *unstructured.Unstructured {
		u.SetResourceVersion(rv)
		return u
	}
	cmKey := []string{testWorkspace + "|configmaps|web/cm"}
	objHandler := env.c.objectHandler(testWorkspace, configMapsGVR)
	nsHandler := env.c.namespaceHandler(testWorkspace)
	placed := newNamespace(testNamespace, map[string]string{eastLabel: "Sync"}, nil)
	tests := []struct {
		name  string
		event func()
		want  []string
	}{
		{"status-only update", func() {
			objHandler.OnUpdate(withRV(configMap(testNamespace, "cm"), "1"), withRV(configMap(testNamespace, "cm"), "2"))
		}, nil},
		{"resync", func() { objHandler.OnUpdate(configMap(testNamespace, "cm"), configMap(testNamespace, "cm")) }, cmKey},
		{"label change", func() {
			objHandler.OnUpdate(withRV(configMap(testNamespace, "cm"), "1"), withRV(configMap(testNamespace, "cm", withLabels(map[string]string{"a": "b"})), "2"))
		}, cmKey},
		{"annotation change", func() {
			objHandler.OnUpdate(withRV(configMap(testNamespace, "cm"), "1"), withRV(configMap(testNamespace, "cm", withAnnotations(map[string]string{"a": "b"})), "2"))
		}, cmKey},
		{"object deleted", func() { objHandler.OnDelete(configMap(testNamespace, "cm")) }, nil},
		{"unplaced namespace added", func() { nsHandler.OnAdd(newNamespace(testNamespace, nil, nil), false) }, nil},
		{"namespace change that is not about placement", func() {
			nsHandler.OnUpdate(newNamespace(testNamespace, nil, nil), newNamespace(testNamespace, map[string]string{"team": "a"}, map[string]string{"note": "x"}))
		}, nil},
		{"namespace placed", func() { nsHandler.OnUpdate(newNamespace(testNamespace, nil, nil), placed) }, cmKey},
		{"namespace deletion annotation added", func() {
			nsHandler.OnUpdate(placed, newNamespace(testNamespace, placed.Labels, map[string]string{eastDeletion: nsDeletionTime}))
		}, cmKey},
		{"placed namespace added", func() { nsHandler.OnAdd(placed, false) }, cmKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.event()
			if got := take(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("queued %v, want %v", got, tt.want)
			}
		})
	}
}

func TestResourceDiscoveryFailureIsRetried(t *testing.T) {
	resources := []workloadv1alpha1.ResourceToSync{{Group: "example.com", Resource: "widgets"}}
	env := newTestEnv(t, resources, nil, nil, []*metav1.APIResourceList{{
		GroupVersion: widgetsGVR.GroupVersion().String(),
		APIResources: []metav1.APIResource{{Name: "widgets", Namespaced: true, Kind: "Widget"}},
	}})
	var fail atomic.Bool
	fail.Store(true)
	env.kube.PrependReactor("get", "group", func(clienttesting.Action) (bool, runtime.Object, error) {
		if fail.Load() {
			return true, nil, apierrors.NewServiceUnavailable("workspace is starting")
		}
		return false, nil, nil
	})
	if pending := env.c.resolveTypes(t.Context()); !pending {
		t.Fatal("a failed discovery must be retried")
	}
	if _, widgets := env.c.lookup(testWorkspace, widgetsGVR); widgets != nil {
		t.Fatal("widgets resolved although discovery failed")
	}
	fail.Store(false)
	if pending := env.c.resolveTypes(t.Context()); pending {
		t.Error("nothing should be pending once discovery answers")
	}
	if _, widgets := env.c.lookup(testWorkspace, widgetsGVR); widgets == nil {
		t.Error("widgets not resolved on retry")
	}
}
