package syncer

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const (
	upsyncDownstreamNamespace = "tmc-ours"
	upsyncUpstreamNamespace   = "shop"
	upsyncCluster             = "team-a-cluster"
)

// upsyncEnv is an upsync controller over in-memory caches and a fake upstream client.
type upsyncEnv struct {
	c                *upsyncController
	downstream       cache.Indexer
	upstream         cache.Indexer
	upstreamClient   *dynamicfake.FakeDynamicClient
	downstreamSynced bool
	upstreamSynced   bool
	deleting         bool
}

func newUpsyncEnv(t *testing.T, downstreamObjs, upstreamObjs []*unstructured.Unstructured) *upsyncEnv {
	t.Helper()
	env := &upsyncEnv{downstreamSynced: true, upstreamSynced: true,
		downstream: cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}),
		upstream:   cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})}
	var live []runtime.Object
	for _, o := range downstreamObjs {
		_ = env.downstream.Add(o)
	}
	for _, o := range upstreamObjs {
		_ = env.upstream.Add(o)
		live = append(live, o.DeepCopy())
	}
	env.upstreamClient = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{podsGVR: "PodList", persistentVolumesGVR: "PersistentVolumeList"}, live...)
	target := syncTarget{workspace: testLocationWorkspace, cluster: testLocationCluster, name: testSyncTargetName, key: testStKey, uid: testSyncTargetUID}
	env.c = &upsyncController{
		target: target,
		rules: upsyncRules{stKey: testStKey, downstream: func(schema.GroupVersionResource) (downstreamView, bool) { return downstreamView{}, false },
			locatorOf: func(ns string) (workloadv1alpha1.NamespaceLocator, bool) {
				return target.locator(upsyncCluster, upsyncUpstreamNamespace), ns == upsyncDownstreamNamespace
			}},
		source: func(gvr schema.GroupVersionResource) (upsyncSource, bool) {
			src := upsyncSource{gvr: gvr, hasStatus: true, lister: cache.NewGenericLister(env.downstream, gvr.GroupResource()),
				synced: func() bool { return env.downstreamSynced }}
			return src, gvr == podsGVR || gvr == persistentVolumesGVR
		},
		copies: func(ws string, gvr schema.GroupVersionResource) (cache.GenericLister, func() bool, bool) {
			return cache.NewGenericLister(env.upstream, gvr.GroupResource()), func() bool { return env.upstreamSynced }, ws == testWorkspace
		},
		client: func(_ string, gvr schema.GroupVersionResource) (dynamic.NamespaceableResourceInterface, error) {
			return env.upstreamClient.Resource(gvr), nil
		},
		workspaceOf:      func(cluster string) (string, bool) { return testWorkspace, cluster == upsyncCluster },
		clusterName:      func(string) (string, bool) { return upsyncCluster, true },
		downstreamName:   func(workloadv1alpha1.NamespaceLocator) (string, error) { return upsyncDownstreamNamespace, nil },
		namespacesSynced: func() bool { return true },
		targetDeleting:   func() bool { return env.deleting },
		metrics:          newSyncerMetrics("test"),
		origins:          map[upsyncKey]upsyncOrigin{},
	}
	for _, o := range upstreamObjs {
		env.c.origins[upsyncKey{gvr: podsGVR, downstreamNamespace: upsyncDownstreamNamespace, name: o.GetName()}] = upsyncOrigin{workspace: testWorkspace, upstreamNamespace: o.GetNamespace()}
	}
	return env
}

// reconcile reconciles the pod key name and returns the upstream writes.
func (env *upsyncEnv) reconcile(t *testing.T, name string) ([]string, time.Duration) {
	t.Helper()
	env.upstreamClient.ClearActions()
	requeue, err := env.c.reconcile(t.Context(), upsyncKey{gvr: podsGVR, downstreamNamespace: upsyncDownstreamNamespace, name: name})
	if err != nil {
		t.Fatalf("reconcile() error = %v", err)
	}
	return writes(env.upstreamClient.Actions()), requeue
}

func downstreamPod(name, rv, phase string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{
			"name": name, "namespace": upsyncDownstreamNamespace, "uid": "downstream-uid", "resourceVersion": rv, "generation": int64(1),
			"creationTimestamp": "2026-01-01T00:00:00Z",
			"labels":            map[string]any{"app": "web", testStateKey: workloadv1alpha1.ResourceStateUpsync},
			"ownerReferences":   []any{map[string]any{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "rs-uid"}},
			"managedFields":     []any{map[string]any{"manager": "kube-controller-manager"}},
			"finalizers":        []any{"downstream.example/keep"},
		},
		"spec":   map[string]any{"nodeName": "kwok-node-0", "containers": []any{map[string]any{"name": "app", "image": "nginx"}}},
		"status": map[string]any{"phase": phase},
	}}
	return u
}

// upstreamCopy is the copy the controller would have written of downstreamObj.
func upstreamCopy(t *testing.T, downstreamObj *unstructured.Unstructured, opts ...objectOption) *unstructured.Unstructured {
	t.Helper()
	u, err := upsyncedObject(testStKey, downstreamObj, upsyncUpstreamNamespace, nil)
	if err != nil {
		t.Fatal(err)
	}
	u.SetUID("upstream-uid")
	u.SetResourceVersion("7")
	for _, o := range opts {
		o(u)
	}
	return u
}

func TestUpsyncedObject(t *testing.T) {
	got := upstreamCopy(t, downstreamPod("web-1", "100", "Running"))
	if got.GetNamespace() != upsyncUpstreamNamespace {
		t.Errorf("namespace = %q, want %q", got.GetNamespace(), upsyncUpstreamNamespace)
	}
	for _, field := range []string{"generation", "creationTimestamp", "ownerReferences", "managedFields"} {
		if _, found, _ := unstructured.NestedFieldNoCopy(got.Object, "metadata", field); found {
			t.Errorf("metadata.%s went up", field)
		}
	}
	if f := got.GetFinalizers(); !slices.Equal(f, []string{testFinalize}) {
		t.Errorf("finalizers = %v, want only the syncer's", f)
	}
	if got.GetAnnotations()[workloadv1alpha1.UpsyncResourceVersionAnnotation] != "100" {
		t.Errorf("annotations = %v, want the downstream resourceVersion 100", got.GetAnnotations())
	}
	if got.GetLabels()[testStateKey] != workloadv1alpha1.ResourceStateUpsync || got.GetLabels()["app"] != "web" {
		t.Errorf("labels = %v", got.GetLabels())
	}
	owned := downstreamPod("web-2", "1", "Running")
	owned.SetLabels(map[string]string{workloadv1alpha1.InternalDownstreamClusterLabel: testStKey})
	if _, ok := upstreamCopy(t, owned).GetLabels()[workloadv1alpha1.InternalDownstreamClusterLabel]; ok {
		t.Error("the ownership label went up")
	}

	pv := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "PersistentVolume",
		"metadata": map[string]any{"name": "pv-1", "resourceVersion": "5"},
		"spec":     map[string]any{"claimRef": map[string]any{"kind": "PersistentVolumeClaim", "namespace": upsyncDownstreamNamespace, "name": "data", "uid": "claim-uid", "resourceVersion": "3"}}}}
	locator := workloadv1alpha1.NewNamespaceLocator(testLocationCluster, testSyncTargetName, testSyncTargetUID, upsyncCluster, upsyncUpstreamNamespace)
	upPV, err := upsyncedObject(testStKey, pv, "", &locator)
	if err != nil {
		t.Fatal(err)
	}
	claimRef, _, _ := unstructured.NestedStringMap(upPV.Object, "spec", "claimRef")
	if claimRef["namespace"] != upsyncUpstreamNamespace || claimRef["uid"] != "" || claimRef["resourceVersion"] != "" || claimRef["name"] != "data" {
		t.Errorf("claimRef = %v, want the upstream namespace without the downstream uid", claimRef)
	}
	if parsed, err := workloadv1alpha1.ParseNamespaceLocator(upPV.GetAnnotations()[workloadv1alpha1.NamespaceLocatorAnnotation]); err != nil || parsed.Namespace != upsyncUpstreamNamespace {
		t.Errorf("namespace locator = %v (%v), want the claim's", parsed, err)
	}
	if upPV.GetNamespace() != "" {
		t.Errorf("a PersistentVolume copy got namespace %q", upPV.GetNamespace())
	}
}

func TestUpsyncWrites(t *testing.T) {
	pod := downstreamPod("web-1", "100", "Pending")
	t.Run("new pod: create and status", func(t *testing.T) {
		env := newUpsyncEnv(t, []*unstructured.Unstructured{pod}, nil)
		got, _ := env.reconcile(t, "web-1")
		if want := []string{"create pods", "update pods/status"}; !slices.Equal(got, want) {
			t.Errorf("writes = %v, want %v", got, want)
		}
	})
	t.Run("unchanged: no write", func(t *testing.T) {
		env := newUpsyncEnv(t, []*unstructured.Unstructured{pod}, []*unstructured.Unstructured{upstreamCopy(t, pod)})
		if got, _ := env.reconcile(t, "web-1"); len(got) != 0 {
			t.Errorf("writes = %v, want none", got)
		}
		if got := testutil.ToFloat64(env.c.metrics.skippedWrites.WithLabelValues("test", directionUp)); got != 1 {
			t.Errorf("skipped writes up = %v, want 1", got)
		}
	})
	t.Run("status changed: status then object", func(t *testing.T) {
		running := downstreamPod("web-1", "101", "Running")
		env := newUpsyncEnv(t, []*unstructured.Unstructured{running}, []*unstructured.Unstructured{upstreamCopy(t, pod)})
		got, _ := env.reconcile(t, "web-1")
		if want := []string{"update pods/status", "update pods"}; !slices.Equal(got, want) {
			t.Errorf("writes = %v, want %v", got, want)
		}
	})
	t.Run("a status write that failed is retried although the rv annotation matches", func(t *testing.T) {
		stale := upstreamCopy(t, downstreamPod("web-1", "100", "Pending"))
		running := downstreamPod("web-1", "100", "Running")
		env := newUpsyncEnv(t, []*unstructured.Unstructured{running}, []*unstructured.Unstructured{stale})
		if got, _ := env.reconcile(t, "web-1"); !slices.Equal(got, []string{"update pods/status"}) {
			t.Errorf("writes = %v, want the status alone", got)
		}
	})
	t.Run("scheduled after its copy was created: bound, not updated", func(t *testing.T) {
		unbound := upstreamCopy(t, pod, func(u *unstructured.Unstructured) { unstructured.RemoveNestedField(u.Object, "spec", "nodeName") })
		scheduled := downstreamPod("web-1", "101", "Pending")
		env := newUpsyncEnv(t, []*unstructured.Unstructured{scheduled}, []*unstructured.Unstructured{unbound})
		if got, _ := env.reconcile(t, "web-1"); !slices.Equal(got, []string{"create pods/binding"}) {
			t.Errorf("writes = %v, want the binding alone (a pod's node cannot be updated)", got)
		}
	})
	t.Run("binding refused: the copy goes, to be created again bound", func(t *testing.T) {
		unbound := upstreamCopy(t, pod, func(u *unstructured.Unstructured) { unstructured.RemoveNestedField(u.Object, "spec", "nodeName") })
		env := newUpsyncEnv(t, []*unstructured.Unstructured{downstreamPod("web-1", "101", "Pending")}, []*unstructured.Unstructured{unbound})
		env.upstreamClient.PrependReactor("create", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
			if a.GetSubresource() != "binding" {
				return false, nil, nil
			}
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods/binding"}, "web-1", errors.New("no subresources"))
		})
		if got, _ := env.reconcile(t, "web-1"); !slices.Equal(got, []string{"create pods/binding", "update pods", "delete pods"}) {
			t.Errorf("writes = %v, want the refused binding, then the copy deleted", got)
		}
	})
	t.Run("a pod in a namespace not ours never goes up", func(t *testing.T) {
		foreign := downstreamPod("web-1", "100", "Running")
		foreign.SetNamespace("someone-elses")
		env := newUpsyncEnv(t, []*unstructured.Unstructured{foreign}, nil)
		env.upstreamClient.ClearActions()
		if _, err := env.c.reconcile(t.Context(), upsyncKey{gvr: podsGVR, downstreamNamespace: "someone-elses", name: "web-1"}); err != nil {
			t.Fatal(err)
		}
		if got := writes(env.upstreamClient.Actions()); len(got) != 0 {
			t.Errorf("writes = %v, want none", got)
		}
	})
}

func TestUpsyncRecreatesAfterUpstreamDelete(t *testing.T) {
	pod := downstreamPod("web-1", "100", "Running")
	deleted := upstreamCopy(t, pod, func(u *unstructured.Unstructured) {
		now := metav1.Now()
		u.SetDeletionTimestamp(&now)
	})
	env := newUpsyncEnv(t, []*unstructured.Unstructured{pod}, []*unstructured.Unstructured{deleted})
	got, _ := env.reconcile(t, "web-1")
	if !slices.Equal(got, []string{"update pods", "delete pods"}) {
		t.Fatalf("writes = %v, want the finalizer released and the deletion finished", got)
	}
	actions := env.upstreamClient.Actions()
	released := findAction[clienttesting.UpdateActionImpl](t, actions, "update", "pods").GetObject().(*unstructured.Unstructured)
	if slices.Contains(released.GetFinalizers(), testFinalize) {
		t.Errorf("finalizers = %v, want the syncer's released", released.GetFinalizers())
	}
	// No kubelet upstream ever finishes a graceful pod deletion.
	if grace := findAction[clienttesting.DeleteActionImpl](t, actions, "delete", "pods").GetDeleteOptions().GracePeriodSeconds; grace == nil || *grace != 0 {
		t.Errorf("deletion grace = %v, want 0", grace)
	}
	// Gone upstream (the delete completed): created again.
	_ = env.upstream.Delete(deleted)
	if got, _ := env.reconcile(t, "web-1"); !slices.Equal(got, []string{"create pods", "update pods/status"}) {
		t.Errorf("writes = %v, want the copy created again", got)
	}
}

func TestUpsyncDeletesCopies(t *testing.T) {
	pod := downstreamPod("web-1", "100", "Running")
	copyOf := upstreamCopy(t, pod)
	t.Run("never before the downstream cache synced", func(t *testing.T) {
		env := newUpsyncEnv(t, nil, []*unstructured.Unstructured{copyOf})
		env.downstreamSynced = false
		got, requeue := env.reconcile(t, "web-1")
		if len(got) != 0 || requeue == 0 {
			t.Errorf("writes = %v, requeue = %v; want none, requeued", got, requeue)
		}
	})
	t.Run("never before the upstream cache synced", func(t *testing.T) {
		env := newUpsyncEnv(t, nil, []*unstructured.Unstructured{copyOf})
		env.upstreamSynced = false
		if got, requeue := env.reconcile(t, "web-1"); len(got) != 0 || requeue == 0 {
			t.Errorf("writes = %v, requeue = %v; want none, requeued", got, requeue)
		}
	})
	t.Run("downstream pod gone: released, deleted", func(t *testing.T) {
		env := newUpsyncEnv(t, nil, []*unstructured.Unstructured{copyOf})
		if got, _ := env.reconcile(t, "web-1"); !slices.Equal(got, []string{"update pods", "delete pods"}) {
			t.Errorf("writes = %v, want the finalizer released, then the copy deleted", got)
		}
	})
	t.Run("an object labelled Upsync upstream that the syncer did not write: kept", func(t *testing.T) {
		foreign := copyOf.DeepCopy()
		foreign.SetAnnotations(nil)
		env := newUpsyncEnv(t, nil, []*unstructured.Unstructured{foreign})
		if got, _ := env.reconcile(t, "web-1"); len(got) != 0 {
			t.Errorf("writes = %v, want none", got)
		}
	})
	t.Run("downstream pod terminating: deleted", func(t *testing.T) {
		terminating := pod.DeepCopy()
		now := metav1.Now()
		terminating.SetDeletionTimestamp(&now)
		env := newUpsyncEnv(t, []*unstructured.Unstructured{terminating}, []*unstructured.Unstructured{copyOf})
		if got, _ := env.reconcile(t, "web-1"); !slices.Equal(got, []string{"update pods", "delete pods"}) {
			t.Errorf("writes = %v, want the copy deleted", got)
		}
	})
	t.Run("SyncTarget deleting: deleted", func(t *testing.T) {
		env := newUpsyncEnv(t, []*unstructured.Unstructured{pod}, []*unstructured.Unstructured{copyOf})
		env.deleting = true
		if got, _ := env.reconcile(t, "web-1"); !slices.Equal(got, []string{"update pods", "delete pods"}) {
			t.Errorf("writes = %v, want the copy deleted", got)
		}
	})
}

func TestUpsyncUpstreamEventsFindCopies(t *testing.T) {
	env := newUpsyncEnv(t, nil, nil)
	env.c.queue = newSyncerQueue("upsync", env.c.reconcile, env.c.metrics, newErrorLog(), tmc.RecoveryOptions{})
	copyOf := upstreamCopy(t, downstreamPod("web-1", "100", "Running"))
	env.c.upstreamChanged(testWorkspace, podsGVR, copyOf, false)
	key := upsyncKey{gvr: podsGVR, downstreamNamespace: upsyncDownstreamNamespace, name: "web-1"}
	if o, ok := env.c.origin(key); !ok || o.workspace != testWorkspace || o.upstreamNamespace != upsyncUpstreamNamespace {
		t.Errorf("origin = %v, %v; want the copy's workspace and namespace", o, ok)
	}
	if keys := env.c.keys(); !slices.Equal(keys, []upsyncKey{key}) {
		t.Errorf("keys() = %v, want %v", keys, key)
	}
	env.c.upstreamChanged(testWorkspace, podsGVR, copyOf, true)
	if _, ok := env.c.origin(key); ok {
		t.Error("a deleted copy is still remembered")
	}
}
