package syncer

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	"github.com/tmc-dev/tmc/pkg/cliplugins/workload/sync/syncerrbac"
	"github.com/tmc-dev/tmc/pkg/reconciler/queue"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// rootCA is a ConfigMap kube-root-ca.crt in namespace ns holding caBundle.
func rootCA(ns, caBundle string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: transform.RootCAConfigMapName, Namespace: ns, UID: types.UID("root-ca-" + ns)},
		Data:       map[string]string{hubCAKey: caBundle},
	}
}

// hubCACopy is our kcp-root-ca.crt in downstream namespace ns holding caBundle.
func hubCACopy(ns, caBundle string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name: transform.HubCAConfigMapName, Namespace: ns, UID: types.UID("hub-ca-" + ns), ResourceVersion: "7",
			Labels: map[string]string{workloadv1alpha1.InternalDownstreamClusterLabel: testStKey},
		},
		Data: map[string]string{hubCAKey: caBundle},
	}
}

// hubCACopyObject is hubCACopy as the dynamic caches hold it.
func hubCACopyObject(ns, caBundle string) *unstructured.Unstructured {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(hubCACopy(ns, caBundle))
	if err != nil {
		panic(err)
	}
	u := &unstructured.Unstructured{Object: obj}
	u.SetAPIVersion("v1")
	u.SetKind("ConfigMap")
	return u
}

// hubCAEnv is a testEnv whose publisher reads upstreamCAs from testWorkspace's
// kube-root-ca.crt cache and ownCopies from its downstream copy cache (also live).
type hubCAEnv struct {
	*testEnv
	upstreamCAs cache.Indexer
	copies      cache.Indexer
}

func newHubCAEnv(t *testing.T, objs testObjects, upstreamCAs []*corev1.ConfigMap, ownCopies []*corev1.ConfigMap) *hubCAEnv {
	t.Helper()
	for _, c := range ownCopies {
		objs.downstreamKubeLiveOnly = append(objs.downstreamKubeLiveOnly, c.DeepCopy())
	}
	env := &hubCAEnv{testEnv: newTestEnv(t, objs), upstreamCAs: newIndexer(), copies: newIndexer()}
	for _, ca := range upstreamCAs {
		if err := env.upstreamCAs.Add(ca); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range ownCopies {
		if err := env.copies.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	env.engine.upstreamWorkspaces[testWorkspace].rootCA = &informerHandle{
		lister:    cache.NewGenericLister(env.upstreamCAs, rootCAConfigMapsResource),
		hasSynced: env.informersSynced.Load,
		stop:      func() {},
		done:      make(chan struct{}),
	}
	env.hubCA.downstreamCopies = corelisters.NewConfigMapLister(env.copies)
	return env
}

// expectNoRootCAWrite fails if any recorded action touched the physical cluster's own
// kube-root-ca.crt.
func expectNoRootCAWrite(t *testing.T, actions []clienttesting.Action) {
	t.Helper()
	for _, a := range actions {
		if named, ok := a.(interface{ GetName() string }); ok && named.GetName() == transform.RootCAConfigMapName {
			t.Errorf("the physical cluster's %s was touched: %s", transform.RootCAConfigMapName, a.GetVerb())
		}
	}
}

func TestHubCAPublisherReconcile(t *testing.T) {
	dsNS := downstreamNamespaceFor(t, testWorkspace, testNamespace)
	physicalCA := rootCA(dsNS, "physical cluster CA")
	owned := func(t *testing.T) testObjects {
		return testObjects{namespaces: []*corev1.Namespace{ownedNamespace(t)}, downstreamKubeLiveOnly: []runtime.Object{physicalCA.DeepCopy()}}
	}
	hubCA := []*corev1.ConfigMap{rootCA(testNamespace, "hub CA")}
	otherLocator := workloadv1alpha1.NewNamespaceLocator(testLocationWorkspace, "west", "west-uid", testWorkspace, testNamespace)
	otherNS, err := otherLocator.DownstreamNamespaceName()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		objs        func(t *testing.T) testObjects
		namespace   string // dsNS when empty
		upstreamCAs []*corev1.ConfigMap
		ownCopies   []*corev1.ConfigMap
		liveOnly    []*corev1.ConfigMap
		notSynced   bool
		wantApply   string // the ca.crt applied; "" means no write at all
		wantConflct float64
	}{
		{name: "no copy yet: published", objs: owned, upstreamCAs: hubCA, wantApply: "hub CA"},
		{name: "stale copy: updated", objs: owned, upstreamCAs: hubCA, ownCopies: []*corev1.ConfigMap{hubCACopy(dsNS, "old hub CA")}, wantApply: "hub CA"},
		{name: "copy up to date: no write", objs: owned, upstreamCAs: hubCA, ownCopies: []*corev1.ConfigMap{hubCACopy(dsNS, "hub CA")}},
		{name: "our copy not cached yet (live read), up to date: no write", objs: owned, upstreamCAs: hubCA, liveOnly: []*corev1.ConfigMap{hubCACopy(dsNS, "hub CA")}},
		{name: "upstream namespace without kube-root-ca.crt (plain hub): nothing written", objs: owned},
		{name: "upstream cache not synced: nothing written yet", objs: owned, upstreamCAs: hubCA, notSynced: true},
		{name: "upstream kube-root-ca.crt without ca.crt: nothing written", objs: owned, upstreamCAs: []*corev1.ConfigMap{rootCA(testNamespace, "")}},
		{
			name: "pre-existing kcp-root-ca.crt without our label: left alone, reported", objs: owned, upstreamCAs: hubCA,
			liveOnly:    []*corev1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Name: transform.HubCAConfigMapName, Namespace: dsNS, UID: "theirs"}, Data: map[string]string{hubCAKey: "theirs"}}},
			wantConflct: 1,
		},
		{
			name: "downstream namespace being deleted: nothing written", upstreamCAs: hubCA,
			objs: func(t *testing.T) testObjects {
				ns := ownedNamespace(t)
				ns.DeletionTimestamp = &metav1.Time{Time: time.Now()}
				return testObjects{namespaces: []*corev1.Namespace{ns}}
			},
		},
		{
			name: "downstream namespace of another SyncTarget: nothing written", upstreamCAs: hubCA, namespace: otherNS,
			objs: func(t *testing.T) testObjects {
				return testObjects{namespaces: []*corev1.Namespace{downstreamNamespace(t, otherNS, otherLocator)}}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs := tc.objs(t)
			for _, c := range tc.liveOnly {
				objs.downstreamKubeLiveOnly = append(objs.downstreamKubeLiveOnly, c)
			}
			env := newHubCAEnv(t, objs, tc.upstreamCAs, tc.ownCopies)
			env.informersSynced.Store(!tc.notSynced)
			name := tc.namespace
			if name == "" {
				name = dsNS
			}
			if _, err := env.hubCA.reconcile(t.Context(), name); err != nil {
				t.Fatal(err)
			}
			actions := env.downstreamKube.Actions()
			expectNoRootCAWrite(t, actions)
			if tc.wantApply == "" {
				expectWrites(t, "downstream kube", actions, nil)
			} else {
				expectWrites(t, "downstream kube", actions, []string{"patch configmaps"})
				patch := findAction[clienttesting.PatchActionImpl](t, actions, "patch", "configmaps")
				if patch.GetPatchType() != types.ApplyPatchType || patch.GetName() != transform.HubCAConfigMapName || patch.GetNamespace() != dsNS {
					t.Errorf("got %s patch of %s/%s, want a server-side apply of %s/%s", patch.GetPatchType(), patch.GetNamespace(), patch.GetName(), dsNS, transform.HubCAConfigMapName)
				}
				applied := decodePatch(t, patch.GetPatch())
				data, _, _ := unstructured.NestedStringMap(applied.Object, "data")
				if !maps1(data, hubCAKey, tc.wantApply) || applied.GetLabels()[workloadv1alpha1.InternalDownstreamClusterLabel] != testStKey {
					t.Errorf("applied labels %v data %v, want the ownership label and ca.crt %q only", applied.GetLabels(), data, tc.wantApply)
				}
			}
			got := testutil.ToFloat64(env.metrics.conflicts.WithLabelValues(env.metrics.clusterName, testWorkspace, hubCAConflictLabel))
			if got != tc.wantConflct {
				t.Errorf("conflicts = %v, want %v", got, tc.wantConflct)
			}
		})
	}
}

// maps1 reports whether m holds exactly key=value.
func maps1(m map[string]string, key, value string) bool {
	return len(m) == 1 && m[key] == value
}

func TestHubCAPublisherReportsAPreexistingCopyOnce(t *testing.T) {
	dsNS := downstreamNamespaceFor(t, testWorkspace, testNamespace)
	theirs := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: transform.HubCAConfigMapName, Namespace: dsNS, UID: "theirs"}}
	env := newHubCAEnv(t, testObjects{namespaces: []*corev1.Namespace{ownedNamespace(t)}, downstreamKubeLiveOnly: []runtime.Object{theirs}},
		[]*corev1.ConfigMap{rootCA(testNamespace, "hub CA")}, nil)
	for range 3 {
		if _, err := env.hubCA.reconcile(t.Context(), dsNS); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(env.metrics.conflicts.WithLabelValues(env.metrics.clusterName, testWorkspace, hubCAConflictLabel)); got != 1 {
		t.Errorf("conflicts = %v after three looks at the same object, want 1", got)
	}
	expectWrites(t, "downstream kube", env.downstreamKube.Actions(), nil)
}

// TestHubCAPublisherRestartWritesNothing runs the publisher's real downstream informer on a
// fake physical cluster holding N up-to-date copies: every namespace is looked at and
// nothing is written; a changed hub CA afterwards is written once.
func TestHubCAPublisherRestartWritesNothing(t *testing.T) {
	const n = 20
	var (
		namespaces []*corev1.Namespace
		cas        []*corev1.ConfigMap
		live       []runtime.Object
	)
	for i := range n {
		upstreamNamespace := "team-" + string(rune('a'+i))
		loc := testLocator(testWorkspace, upstreamNamespace)
		name := downstreamNamespaceFor(t, testWorkspace, upstreamNamespace)
		namespaces = append(namespaces, downstreamNamespace(t, name, loc))
		cas = append(cas, rootCA(upstreamNamespace, "hub CA"))
		live = append(live, hubCACopy(name, "hub CA"), rootCA(name, "physical cluster CA"))
	}
	env := newHubCAEnv(t, testObjects{namespaces: namespaces, downstreamKubeLiveOnly: live}, cas, nil)
	var reconciled atomic.Int32
	p := env.hubCA
	p.queue = queue.New(p.reconcile, queue.Options[string]{
		Name: "hub-ca-test", Component: "syncer", Recovery: env.recovery,
		OnSuccess: func(context.Context, string, time.Duration) { reconciled.Add(1) },
	})
	for _, ns := range namespaces {
		p.namespaceAdded(ns.Name) // what the namespace informer does at start
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { p.run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	eventuallyTrue(t, "not every namespace was reconciled", func() bool { return reconciled.Load() >= n })
	expectWrites(t, "downstream kube", env.downstreamKube.Actions(), nil)

	changed := cas[3].DeepCopy()
	changed.Data[hubCAKey] = "rotated hub CA"
	if err := env.upstreamCAs.Update(changed); err != nil {
		t.Fatal(err)
	}
	p.upstreamChanged(testWorkspace, changed.Namespace)
	eventuallyTrue(t, "the rotated hub CA was not published", func() bool {
		return slices.Equal(writes(env.downstreamKube.Actions()), []string{"patch configmaps"})
	})
	expectNoRootCAWrite(t, env.downstreamKube.Actions())
}

// TestHubCACopyIsNoSyncedObject: a downstream kcp-root-ca.crt is never counted as a synced
// object nor mapped to an upstream object, and the spec controller never removes it.
func TestHubCACopyIsNoSyncedObject(t *testing.T) {
	dsNS := downstreamNamespaceFor(t, testWorkspace, testNamespace)
	t.Run("not counted in its namespace", func(t *testing.T) {
		other := syncedCopy(t, upstreamConfigMap("web"))
		env := newTestEnv(t, testObjects{namespaces: []*corev1.Namespace{ownedNamespace(t)},
			downstream: []*unstructured.Unstructured{hubCACopyObject(dsNS, "hub CA"), other}})
		if got := env.engine.downstreamObjectsIn(dsNS); got != 1 {
			t.Errorf("downstreamObjectsIn = %d, want 1 (the synced ConfigMap, not kcp-root-ca.crt)", got)
		}
	})
	t.Run("no spec or status key from its events", func(t *testing.T) {
		env := newTestEnv(t, testObjects{namespaces: []*corev1.Namespace{ownedNamespace(t)}})
		for _, deleted := range []bool{false, true} {
			env.engine.downstreamChanged(configMapsGVR, hubCACopyObject(dsNS, "hub CA"), deleted)
		}
		if env.spec.queue.Len() != 0 || env.status.queue.Len() != 0 {
			t.Errorf("queued %v spec and %v status keys, want none", env.spec.queue.Drain(), env.status.queue.Drain())
		}
		env.engine.downstreamChanged(configMapsGVR, syncedCopy(t, upstreamConfigMap("web")), false)
		if env.spec.queue.Len() != 1 || env.status.queue.Len() != 1 {
			t.Error("a synced ConfigMap's event must queue its spec and status keys (the test would not tell)")
		}
	})
	t.Run("never removed as the copy of an upstream ConfigMap of that name", func(t *testing.T) {
		// An upstream kcp-root-ca.crt no longer placed here: the spec controller removes
		// the copy of a placed object, never the hub CA copy.
		upstreamObj := upstreamConfigMap(transform.HubCAConfigMapName)
		upstreamObj.SetLabels(nil)
		env := newTestEnv(t, testObjects{
			namespaces:         []*corev1.Namespace{ownedNamespace(t)},
			upstreamLiveOnly:   []*unstructured.Unstructured{upstreamObj},
			downstreamLiveOnly: []*unstructured.Unstructured{hubCACopyObject(dsNS, "hub CA")},
		})
		key := specKey{workspace: testWorkspace, gvr: configMapsGVR, upstreamNamespace: testNamespace, name: transform.HubCAConfigMapName}
		if _, err := env.spec.reconcile(t.Context(), key); err != nil {
			t.Fatal(err)
		}
		for _, w := range writes(env.downstreamDynamic.Actions()) {
			t.Errorf("downstream write %s: the hub CA copy must never be removed by the spec controller", w)
		}
		if _, err := env.downstreamDynamic.Resource(configMapsGVR).Namespace(dsNS).Get(t.Context(), transform.HubCAConfigMapName, metav1.GetOptions{}); err != nil {
			t.Errorf("the hub CA copy is gone: %v", err)
		}
	})
}

// TestDownstreamConfigMapCacheExcludesHubCACopy: the engine's downstream ConfigMap
// informer asks the physical cluster for everything but kcp-root-ca.crt; other types are
// not narrowed.
func TestDownstreamConfigMapCacheExcludesHubCACopy(t *testing.T) {
	downstreamDynamic := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), testListKinds)
	var (
		mu     sync.Mutex
		fields = map[schema.GroupVersionResource]string{}
	)
	downstreamDynamic.PrependReactor("list", "*", func(action clienttesting.Action) (bool, runtime.Object, error) {
		if list, ok := action.(clienttesting.ListAction); ok {
			mu.Lock()
			fields[list.GetResource()] = list.GetListRestrictions().Fields.String()
			mu.Unlock()
		}
		return false, nil, nil
	})
	e := newEngine(testStKey, downstreamDynamic, kubefake.NewClientset(), nil, 0, engineEvents{}, newSyncerMetrics(testSyncTargetName))
	e.mu.Lock()
	err := e.reconcileDownstreamLocked(t.Context(), map[schema.GroupVersionResource]resourceInfo{
		configMapsGVR: {gvr: configMapsGVR}, deploymentsGVR: {gvr: deploymentsGVR},
	})
	e.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	defer e.stopAll()
	eventuallyTrue(t, "the downstream informers did not list", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(fields) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	if got := fields[configMapsGVR]; got != "metadata.name!="+transform.HubCAConfigMapName {
		t.Errorf("downstream ConfigMaps listed with field selector %q, want kcp-root-ca.crt excluded", got)
	}
	if got := fields[deploymentsGVR]; got != "" {
		t.Errorf("downstream Deployments listed with field selector %q, want none", got)
	}
}

// The RBAC that `workload sync` generates grants exactly the names the syncer uses.
func TestHubCARBACNamesTheSyncersConfigMaps(t *testing.T) {
	if syncerrbac.HubCAConfigMapName != transform.HubCAConfigMapName || syncerrbac.WorkspaceRootCAConfigMapName != transform.RootCAConfigMapName {
		t.Errorf("syncerrbac grants %s and %s, the syncer uses %s and %s", syncerrbac.HubCAConfigMapName, syncerrbac.WorkspaceRootCAConfigMapName,
			transform.HubCAConfigMapName, transform.RootCAConfigMapName)
	}
}

// TestUpstreamRootCAInformerFollowsTheWorkspace starts the engine's real informers on a
// fake upstream: kube-root-ca.crt is served once synced, a change of its ca.crt queues the
// namespace, and the informer stops with the workspace.
func TestUpstreamRootCAInformerFollowsTheWorkspace(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	upstreamKube := kubefake.NewClientset(upstreamNS(), rootCA(testNamespace, "hub CA"))
	var (
		mu      sync.Mutex
		changed []string
	)
	env := newTestEnv(t, testObjects{})
	e := newEngine(testStKey, env.downstreamDynamic, env.downstreamKube, func(context.Context, string) (*upstreamWorkspace, error) {
		return &upstreamWorkspace{dynamic: env.upstreamDynamic, kube: upstreamKube, stopEvents: func() {}}, nil
	}, 0, engineEvents{rootCAChanged: func(ws, ns string) {
		mu.Lock()
		defer mu.Unlock()
		changed = append(changed, ws+"/"+ns)
	}}, env.metrics)
	if err := e.reconcile(ctx, nil, nil, []string{testWorkspace}, nil); err != nil {
		t.Fatal(err)
	}
	eventuallyTrue(t, "the upstream kube-root-ca.crt is not served from the cache", func() bool {
		ca, ok := e.upstreamRootCA(testWorkspace, testNamespace)
		return ok && ca.Data[hubCAKey] == "hub CA"
	})
	if _, ok := e.upstreamRootCA("root:org:other", testNamespace); ok {
		t.Error("a workspace that is not watched must not serve a kube-root-ca.crt")
	}
	rotated := rootCA(testNamespace, "rotated hub CA")
	mu.Lock()
	changed = nil
	mu.Unlock()
	if _, err := upstreamKube.CoreV1().ConfigMaps(testNamespace).Update(ctx, rotated, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventuallyTrue(t, "the rotated hub CA did not queue its namespace", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(changed, testWorkspace+"/"+testNamespace)
	})

	e.mu.RLock()
	h := e.upstreamWorkspaces[testWorkspace].rootCA
	e.mu.RUnlock()
	if err := e.reconcile(ctx, nil, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the upstream kube-root-ca.crt informer did not stop with its workspace")
	}
	if _, ok := e.upstreamRootCA(testWorkspace, testNamespace); ok {
		t.Error("a workspace that is no longer watched must not serve a kube-root-ca.crt")
	}
}
