package syncer

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/tmc-dev/tmc/pkg/reconciler/queue"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcfake "github.com/tmc-dev/tmc/sdk/client/clientset/versioned/fake"
)

const (
	testSyncTargetName    = "east"
	testSyncTargetUID     = types.UID("synctarget-uid")
	testLocationWorkspace = "root:org:locations"
	testWorkspace         = "root:org:team-a"
	testNamespace         = "default"
	// testLocationCluster is the location workspace's logical-cluster name: as on kcp, names
	// differ from paths, and locators and keys use names (testClusterName).
	testLocationCluster = "lc-locations"
)

// testClusterName is the logical-cluster name of test workspace ws: distinct from the path,
// so that a locator computed from a path names another namespace than the tests expect.
func testClusterName(ws string) string { return "lc-" + strings.ReplaceAll(ws, ":", "-") }

var (
	configMapsGVR  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	deploymentsGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	testListKinds  = map[schema.GroupVersionResource]string{
		configMapsGVR:  "ConfigMapList",
		deploymentsGVR: "DeploymentList",
	}
	testStKey    = workloadv1alpha1.ToSyncTargetKey(testLocationCluster, testSyncTargetName)
	otherStKey   = workloadv1alpha1.ToSyncTargetKey(testLocationCluster, "west")
	testStateKey = workloadv1alpha1.ClusterResourceStateLabel(testStKey)
	testFinalize = workloadv1alpha1.SyncerFinalizerName(testStKey)
)

// testObjects is the state of both sides before a test case runs. Objects "in cache" are
// also stored in the matching fake client; "live only" objects are only in the fake client
// (an informer that lags, or an object the label-filtered informer does not see).
type testObjects struct {
	upstream               []*unstructured.Unstructured
	upstreamLiveOnly       []*unstructured.Unstructured
	downstream             []*unstructured.Unstructured
	downstreamLiveOnly     []*unstructured.Unstructured
	namespaces             []*corev1.Namespace
	namespacesLiveOnly     []*corev1.Namespace
	downstreamKubeLiveOnly []runtime.Object
	// upstreamNamespaces are upstream namespaces of testWorkspace in the label-filtered
	// upstream namespace cache (and live); upstreamNamespacesLiveOnly only live.
	upstreamNamespaces         []*corev1.Namespace
	upstreamNamespacesLiveOnly []*corev1.Namespace
}

// testEnv is the syncer's data path wired by newDataPath to fake clients and plain-indexer
// informer caches: one watched workspace (testWorkspace) and two accepted types
// (configmaps without and deployments with a status subresource).
type testEnv struct {
	engine     *engine
	spec       *specController
	status     *statusController
	namespaces *namespaceManager
	breaker    *deletionBreaker
	// typeReleases is the live release of types no longer synced.
	typeReleases *typeReleaser
	// rejections forwards the FailedCreate Events of StatefulSets and Jobs.
	rejections *podRejections
	reporter   *statusReporter
	metrics    *syncerMetrics
	errors     *errorLog
	started    *atomic.Bool
	recovery   tmc.RecoveryOptions
	hubCA      *hubCAPublisher

	upstreamDynamic   *dynamicfake.FakeDynamicClient
	upstreamKube      *kubefake.Clientset
	downstreamDynamic *dynamicfake.FakeDynamicClient
	downstreamKube    *kubefake.Clientset
	locationClient    *tmcfake.Clientset
	recorder          *record.FakeRecorder

	upstreamCaches   map[schema.GroupVersionResource]cache.Indexer
	downstreamCaches map[schema.GroupVersionResource]cache.Indexer
	namespaceCache   cache.Indexer
	// upstreamNamespaceCache is testWorkspace's upstream namespace cache.
	upstreamNamespaceCache cache.Indexer

	// informersSynced and namespacesSynced drive hasSynced of the fake informers.
	informersSynced  *atomic.Bool
	namespacesSynced *atomic.Bool
}

func newIndexer() cache.Indexer {
	return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}

func newTestEnv(t *testing.T, objs testObjects) *testEnv {
	t.Helper()
	env := &testEnv{
		upstreamCaches:         map[schema.GroupVersionResource]cache.Indexer{},
		downstreamCaches:       map[schema.GroupVersionResource]cache.Indexer{},
		namespaceCache:         newIndexer(),
		upstreamNamespaceCache: newIndexer(),
		informersSynced:        &atomic.Bool{},
		namespacesSynced:       &atomic.Bool{},
		started:                &atomic.Bool{},
		recorder:               record.NewFakeRecorder(100),
		metrics:                newSyncerMetrics(testSyncTargetName),
		errors:                 newErrorLog(),
		// Jitter-free, and long enough that a loaded machine cannot see the re-queue before
		// the test looks at the queue, short enough to wait for it.
		recovery: tmc.RecoveryOptions{Backoff: tmc.BackoffConfig{BaseDelay: time.Second, MaxDelay: 2 * time.Second}},
	}
	env.informersSynced.Store(true)
	env.namespacesSynced.Store(true)
	env.newClients(objs)

	target := syncTarget{workspace: testLocationWorkspace, cluster: testLocationCluster, name: testSyncTargetName, key: testStKey, uid: testSyncTargetUID}
	cfg := &Config{
		UpstreamConfig:                &rest.Config{Host: "https://upstream.invalid"},
		SyncTargetName:                testSyncTargetName,
		Workers:                       1,
		HeartbeatInterval:             time.Second,
		DownstreamNamespaceCleanDelay: time.Hour,
		PodName:                       "tmc-system/syncer-0",
	}
	d := newDataPath(target, transform.DefaultChain(), cfg, env.downstreamDynamic, env.downstreamKube, env.metrics, env.errors, env.recovery)
	env.engine, env.spec, env.status, env.namespaces, env.breaker, env.typeReleases = d.engine, d.spec, d.status, d.namespaces, d.breaker, d.typeReleases
	// The fake upstream serves no namespaces to learn names from: workspaces are named by
	// testClusterName, and testWorkspace is known from the start.
	d.engine.resolveClusterName = func(_ context.Context, ws string) (string, error) { return testClusterName(ws), nil }
	d.engine.clusterNames[testWorkspace], d.engine.workspacesByName[testClusterName(testWorkspace)] = testClusterName(testWorkspace), testWorkspace
	env.rejections = d.rejections
	env.hubCA = d.hubCA
	env.reporter = &statusReporter{
		target:          target,
		interval:        cfg.HeartbeatInterval,
		podName:         cfg.PodName,
		downstreamNodes: env.downstreamKube.CoreV1().Nodes(),
		caches:          d.engine,
		started:         env.started.Load,
		errors:          env.errors,
		metrics:         env.metrics,
		startTime:       metav1.NewTime(time.Now().Truncate(time.Second)),
	}
	env.fakeInformers()
	t.Cleanup(func() {
		env.spec.queue.ShutDown()
		env.status.queue.ShutDown()
		env.namespaces.queue.ShutDown()
		env.typeReleases.queue.ShutDown()
		env.rejections.queue.ShutDown()
		env.hubCA.queue.ShutDown()
	})

	for _, o := range objs.upstream {
		env.addToCache(t, env.upstreamCaches, o)
	}
	for _, o := range objs.downstream {
		env.addToCache(t, env.downstreamCaches, o)
	}
	for _, ns := range objs.namespaces {
		if err := env.namespaceCache.Add(ns.DeepCopy()); err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range objs.upstreamNamespaces {
		if err := env.upstreamNamespaceCache.Add(ns.DeepCopy()); err != nil {
			t.Fatal(err)
		}
	}
	return env
}

// newClients builds the fake clients holding the objects of both sides.
func (env *testEnv) newClients(objs testObjects) {
	var upstreamLive, downstreamLive []runtime.Object
	for _, o := range append(slices.Clone(objs.upstream), objs.upstreamLiveOnly...) {
		upstreamLive = append(upstreamLive, o.DeepCopy())
	}
	for _, o := range append(slices.Clone(objs.downstream), objs.downstreamLiveOnly...) {
		downstreamLive = append(downstreamLive, o.DeepCopy())
	}
	env.upstreamDynamic = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), testListKinds, upstreamLive...)
	env.downstreamDynamic = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), testListKinds, downstreamLive...)
	// The fake tracker cannot server-side apply: answer apply patches with the applied
	// object. The action is still recorded for the assertions.
	env.downstreamDynamic.PrependReactor("patch", "*", func(action clienttesting.Action) (bool, runtime.Object, error) {
		patch, ok := action.(clienttesting.PatchAction)
		if !ok || patch.GetPatchType() != types.ApplyPatchType {
			return false, nil, nil
		}
		applied := &unstructured.Unstructured{}
		if err := applied.UnmarshalJSON(patch.GetPatch()); err != nil {
			return true, nil, err
		}
		return true, applied, nil
	})
	var kubeObjs []runtime.Object
	for _, ns := range append(slices.Clone(objs.namespaces), objs.namespacesLiveOnly...) {
		kubeObjs = append(kubeObjs, ns.DeepCopy())
	}
	env.downstreamKube = kubefake.NewClientset(append(kubeObjs, objs.downstreamKubeLiveOnly...)...)
	var upstreamKubeObjs []runtime.Object
	for _, ns := range append(slices.Clone(objs.upstreamNamespaces), objs.upstreamNamespacesLiveOnly...) {
		upstreamKubeObjs = append(upstreamKubeObjs, ns.DeepCopy())
	}
	env.upstreamKube = kubefake.NewClientset(upstreamKubeObjs...)
	env.locationClient = tmcfake.NewSimpleClientset(&workloadv1alpha1.SyncTarget{
		ObjectMeta: metav1.ObjectMeta{Name: testSyncTargetName, UID: testSyncTargetUID},
	})
}

// fakeInformers puts plain indexers where the engine keeps its informers.
func (env *testEnv) fakeInformers() {
	e := env.engine
	e.resources = map[schema.GroupVersionResource]resourceInfo{
		configMapsGVR:  {gvr: configMapsGVR, kind: "ConfigMap"},
		deploymentsGVR: {gvr: deploymentsGVR, kind: "Deployment", hasStatus: true},
	}
	for gvr := range e.resources {
		env.upstreamCaches[gvr] = newIndexer()
		env.downstreamCaches[gvr] = newIndexer()
		e.upstreamInformers[upstreamInformerKey{workspace: testWorkspace, gvr: gvr}] = env.handle(env.upstreamCaches[gvr], gvr)
		e.downstreamInformers[gvr] = env.handle(env.downstreamCaches[gvr], gvr)
	}
	e.upstreamWorkspaces[testWorkspace] = &upstreamWorkspace{dynamic: env.upstreamDynamic, kube: env.upstreamKube, recorder: env.recorder, stopEvents: func() {},
		namespaces: &informerHandle{
			lister:    cache.NewGenericLister(env.upstreamNamespaceCache, namespacesResource),
			hasSynced: env.informersSynced.Load,
			stop:      func() {},
			done:      make(chan struct{}),
		}}
	e.namespaceLister = corelisters.NewNamespaceLister(env.namespaceCache)
	e.namespacesSynced = env.namespacesSynced.Load
}

// healthHandler serves the syncer's health checks on the env's current clients.
func (env *testEnv) healthChecks(downstreamREST rest.Interface) healthChecks {
	return healthChecks{
		syncTargetName: testSyncTargetName,
		locationClient: env.locationClient,
		downstreamREST: downstreamREST,
		started:        env.started.Load,
		synced:         env.engine.downstreamSynced,
	}
}

// specQueue returns a queue wired like the spec controller's, around reconcile.
func (env *testEnv) specQueue(reconcile func(context.Context, specKey) (time.Duration, error)) *queue.Queue[specKey] {
	q := newSyncerQueue("spec", reconcile, env.metrics, env.errors, env.recovery)
	return q
}

func (env *testEnv) handle(indexer cache.Indexer, gvr schema.GroupVersionResource) *informerHandle {
	return &informerHandle{
		lister:    cache.NewGenericLister(indexer, gvr.GroupResource()),
		hasSynced: env.informersSynced.Load,
		stop:      func() {},
		done:      make(chan struct{}),
	}
}

func (env *testEnv) addToCache(t *testing.T, caches map[schema.GroupVersionResource]cache.Indexer, o *unstructured.Unstructured) {
	t.Helper()
	gvr := configMapsGVR
	if o.GetKind() == "Deployment" {
		gvr = deploymentsGVR
	}
	if err := caches[gvr].Add(o.DeepCopy()); err != nil {
		t.Fatal(err)
	}
}

// downstreamNamespaceFor returns the downstream namespace of upstream namespace ns of ws.
func downstreamNamespaceFor(t *testing.T, ws, ns string) string {
	t.Helper()
	name, err := testLocator(ws, ns).DownstreamNamespaceName()
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// testLocator is the locator of upstream namespace ns of workspace ws: of their
// logical-cluster names, as kcp's.
func testLocator(ws, ns string) workloadv1alpha1.NamespaceLocator {
	return workloadv1alpha1.NewNamespaceLocator(testLocationCluster, testSyncTargetName, testSyncTargetUID, testClusterName(ws), ns)
}

// downstreamNamespace returns the downstream namespace named after locator loc, carrying
// the ownership label, the default pod security labels and loc as its locator annotation.
func downstreamNamespace(t *testing.T, name string, loc workloadv1alpha1.NamespaceLocator) *corev1.Namespace {
	t.Helper()
	ann, err := loc.MarshalAnnotation()
	if err != nil {
		t.Fatal(err)
	}
	nsLabels := podSecurityLabels(nil)
	nsLabels[workloadv1alpha1.InternalDownstreamClusterLabel] = testStKey
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:        name,
		UID:         types.UID("uid-" + name),
		Labels:      nsLabels,
		Annotations: map[string]string{workloadv1alpha1.NamespaceLocatorAnnotation: ann},
	}}
}

// ownedNamespace is the downstream namespace of testWorkspace/testNamespace.
func ownedNamespace(t *testing.T) *corev1.Namespace {
	t.Helper()
	return downstreamNamespace(t, downstreamNamespaceFor(t, testWorkspace, testNamespace), testLocator(testWorkspace, testNamespace))
}

type objectOption func(*unstructured.Unstructured)

// upstreamConfigMap is a ConfigMap in testWorkspace/testNamespace labelled Sync for this
// target and holding the syncer finalizer, as the syncer sees it after the first pass.
func upstreamConfigMap(name string, opts ...objectOption) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata": map[string]any{
			"name":            name,
			"namespace":       testNamespace,
			"uid":             "upstream-uid-" + name,
			"resourceVersion": "7",
			"labels":          map[string]any{testStateKey: workloadv1alpha1.ResourceStateSync, "app": "web"},
			"annotations":     map[string]any{logicalcluster.AnnotationKey: testWorkspace},
			"finalizers":      []any{testFinalize},
		},
		"data": map[string]any{"key": "value"},
	}}
	for _, o := range opts {
		o(u)
	}
	return u
}

// upstreamDeployment is a Deployment like upstreamConfigMap, with a status.
func upstreamDeployment(name string, opts ...objectOption) *unstructured.Unstructured {
	u := upstreamConfigMap(name)
	u.SetAPIVersion("apps/v1")
	u.SetKind("Deployment")
	delete(u.Object, "data")
	u.Object["spec"] = map[string]any{"replicas": int64(2)}
	u.Object["status"] = map[string]any{"replicas": int64(0)}
	for _, o := range opts {
		o(u)
	}
	return u
}

func withoutFinalizer(u *unstructured.Unstructured) { u.SetFinalizers(nil) }

func withFinalizers(f ...string) objectOption {
	return func(u *unstructured.Unstructured) { u.SetFinalizers(f) }
}

func deleting(u *unstructured.Unstructured) {
	now := metav1.NewTime(time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC))
	u.SetDeletionTimestamp(&now)
}

func withAnnotation(k, v string) objectOption {
	return func(u *unstructured.Unstructured) {
		ann := u.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[k] = v
		u.SetAnnotations(ann)
	}
}

func withLabel(k, v string) objectOption {
	return func(u *unstructured.Unstructured) {
		labels := u.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[k] = v
		u.SetLabels(labels)
	}
}

func withField(value any, path ...string) objectOption {
	return func(u *unstructured.Unstructured) {
		if err := unstructured.SetNestedField(u.Object, value, path...); err != nil {
			panic(err)
		}
	}
}

// syncedCopy returns what the syncer applies downstream for upstream (through the default
// chain, with the spec hash), as the downstream apiserver returns it: with its own uid and
// resourceVersion, in the namespace of testWorkspace/testNamespace.
func syncedCopy(t *testing.T, upstream *unstructured.Unstructured, opts ...objectOption) *unstructured.Unstructured {
	t.Helper()
	tc := transform.Context{
		SyncTargetKey:       testStKey,
		SyncTargetName:      testSyncTargetName,
		UpstreamWorkspace:   testWorkspace,
		UpstreamNamespace:   upstream.GetNamespace(),
		DownstreamNamespace: downstreamNamespaceFor(t, testWorkspace, upstream.GetNamespace()),
		// The spec controller passes the type: type-specific transformers need it.
		GVR: gvrOf(upstream),
	}
	desired, err := transform.DefaultChain().Down(t.Context(), tc, upstream)
	if err != nil {
		t.Fatalf("failed to build the downstream object: %v", err)
	}
	if err := transform.SetHash(desired); err != nil {
		t.Fatal(err)
	}
	desired.SetUID(types.UID("downstream-uid-" + upstream.GetName()))
	desired.SetResourceVersion("42")
	for _, o := range opts {
		o(desired)
	}
	return desired
}

// writes returns the mutating actions recorded by a fake client, as "<verb> <resource>" or
// "<verb> <resource>/<subresource>".
func writes(actions []clienttesting.Action) []string {
	var out []string
	for _, a := range actions {
		switch a.GetVerb() {
		case "get", "list", "watch":
			continue
		}
		s := a.GetVerb() + " " + a.GetResource().Resource
		if a.GetSubresource() != "" {
			s += "/" + a.GetSubresource()
		}
		out = append(out, s)
	}
	return out
}

// findAction returns the first recorded action with the given verb and resource.
func findAction[A clienttesting.Action](t *testing.T, actions []clienttesting.Action, verb, resource string) A {
	t.Helper()
	for _, a := range actions {
		if a.GetVerb() == verb && a.GetResource().Resource == resource {
			if typed, ok := a.(A); ok {
				return typed
			}
		}
	}
	t.Fatalf("no %s %s action among %v", verb, resource, actions)
	var zero A
	return zero
}

// events drains the fake recorder: "<type> <reason> <message>" each.
func (env *testEnv) events() []string { return drainEvents(env.recorder) }

// drainEvents returns the Events recorded so far by a fake recorder.
func drainEvents(recorder *record.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// expectEvents checks that the recorded events start with the given "<type> <reason>"
// prefixes, in order, and that there are no others.
func expectEvents(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got events %q, want %q", got, want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]+" ") {
			t.Errorf("event %d is %q, want reason %q", i, got[i], want[i])
		}
	}
}

func decodePatch(t *testing.T, patch []byte) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal(patch, &u.Object); err != nil {
		t.Fatalf("invalid patch %s: %v", patch, err)
	}
	return u
}

// gvrOf guesses the resource type of a test object from its kind.
func gvrOf(obj *unstructured.Unstructured) schema.GroupVersionResource {
	plural, _ := meta.UnsafeGuessKindToResource(obj.GroupVersionKind())
	return plural
}
