package release

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic/dynamicinformer"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/informers"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/resource"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	"github.com/tmc-dev/tmc/pkg/workspaces"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcfake "github.com/tmc-dev/tmc/sdk/client/clientset/versioned/fake"
	tmcinformers "github.com/tmc-dev/tmc/sdk/client/informers/externalversions"
)

const (
	testLocation = "root:org:locations"
	wsA          = "root:org:team-a"
	testGrace    = 5 * time.Minute
	testThresh   = time.Minute
)

var (
	testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	stKeyEast = workloadv1alpha1.ToSyncTargetKey(testLocation, "east")
	stKeyWest = workloadv1alpha1.ToSyncTargetKey(testLocation, "west")

	eastLabel     = workloadv1alpha1.ClusterResourceStateLabel(stKeyEast)
	westLabel     = workloadv1alpha1.ClusterResourceStateLabel(stKeyWest)
	eastDeletion  = workloadv1alpha1.DeletionAnnotation(stKeyEast)
	eastFinalizer = workloadv1alpha1.SyncerFinalizerName(stKeyEast)
	westFinalizer = workloadv1alpha1.SyncerFinalizerName(stKeyWest)

	configMapsGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
)

func listKinds() map[schema.GroupVersionResource]string {
	return map[schema.GroupVersionResource]string{
		configMapsGVR:                                                      "ConfigMapList",
		{Version: "v1", Resource: "secrets"}:                               "SecretList",
		{Version: "v1", Resource: "serviceaccounts"}:                       "ServiceAccountList",
		{Version: "v1", Resource: "services"}:                              "ServiceList",
		{Version: "v1", Resource: "persistentvolumeclaims"}:                "PersistentVolumeClaimList",
		{Group: "apps", Version: "v1", Resource: "deployments"}:            "DeploymentList",
		{Group: "apps", Version: "v1", Resource: "statefulsets"}:           "StatefulSetList",
		{Group: "batch", Version: "v1", Resource: "jobs"}:                  "JobList",
		{Group: "batch", Version: "v1", Resource: "cronjobs"}:              "CronJobList",
		{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"}: "IngressList",
		widgetsGVR:                             "WidgetList",
		podsGVR:                                "PodList",
		{Version: "v1", Resource: "endpoints"}: "EndpointsList",
		{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}: "EndpointSliceList",
		persistentVolumesGVR: "PersistentVolumeList",
	}
}

// syncTarget returns SyncTarget east with the given finalizers and mutations.
func syncTarget(mutate ...func(*workloadv1alpha1.SyncTarget)) *workloadv1alpha1.SyncTarget {
	st := &workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{
		Name: "east", UID: "east-uid", ResourceVersion: "7",
		CreationTimestamp: metav1.NewTime(testNow.Add(-24 * time.Hour)),
		Finalizers:        []string{workloadv1alpha1.SyncTargetCleanupFinalizer},
	}}
	for _, m := range mutate {
		m(st)
	}
	return st
}

// deletedAgo marks the SyncTarget deleted d before testNow.
func deletedAgo(d time.Duration) func(*workloadv1alpha1.SyncTarget) {
	return func(st *workloadv1alpha1.SyncTarget) {
		ts := metav1.NewTime(testNow.Add(-d))
		st.DeletionTimestamp = &ts
	}
}

// heartbeatAgo sets the last heartbeat d before testNow and HeartbeatHealthy to healthy.
func heartbeatAgo(d time.Duration, healthy bool) func(*workloadv1alpha1.SyncTarget) {
	return func(st *workloadv1alpha1.SyncTarget) {
		hb := metav1.NewTime(testNow.Add(-d))
		st.Status.LastSyncerHeartbeatTime = &hb
		status := metav1.ConditionFalse
		if healthy {
			status = metav1.ConditionTrue
		}
		st.Status.Conditions = []metav1.Condition{{Type: workloadv1alpha1.SyncTargetHeartbeatHealthy, Status: status, Reason: "Test"}}
	}
}

func namespace(name string, labels, annotations map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: "3", Labels: labels, Annotations: annotations}}
}

func configMap(ns, name string, labels, annotations map[string]string, finalizers ...string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("ConfigMap")
	u.SetNamespace(ns)
	u.SetName(name)
	u.SetResourceVersion("11")
	u.SetLabels(labels)
	u.SetAnnotations(annotations)
	u.SetFinalizers(finalizers)
	return u
}

// recordedEvent is one Event the controller recorded.
type recordedEvent struct {
	workspace, kind, name, eventType, reason, message string
}

// eventLog captures the Events of every workspace.
type eventLog struct {
	mu     sync.Mutex
	events []recordedEvent
}

func (l *eventLog) recorderFor(workspace string) record.EventRecorder {
	return &captureRecorder{workspace: workspace, log: l}
}

func (l *eventLog) all() []recordedEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]recordedEvent(nil), l.events...)
}

type captureRecorder struct {
	workspace string
	log       *eventLog
}

func (r *captureRecorder) Event(obj runtime.Object, eventType, reason, message string) {
	e := recordedEvent{workspace: r.workspace, eventType: eventType, reason: reason, message: message}
	switch o := obj.(type) {
	case *corev1.Namespace:
		e.kind, e.name = "Namespace", o.Name
	case *workloadv1alpha1.SyncTarget:
		e.kind, e.name = "SyncTarget", o.Name
	}
	r.log.mu.Lock()
	r.log.events = append(r.log.events, e)
	r.log.mu.Unlock()
}

func (r *captureRecorder) Eventf(obj runtime.Object, eventType, reason, format string, args ...interface{}) {
	r.Event(obj, eventType, reason, fmt.Sprintf(format, args...))
}

func (r *captureRecorder) AnnotatedEventf(obj runtime.Object, _ map[string]string, eventType, reason, format string, args ...interface{}) {
	r.Eventf(obj, eventType, reason, format, args...)
}

// testEnv is one location workspace and one workload workspace on fake clients with real
// informer factories, the resource controller's caches and the release controller on a
// fake clock at testNow.
type testEnv struct {
	tmc     *tmcfake.Clientset
	kube    *kubefake.Clientset
	dynamic *dynamicfake.FakeDynamicClient
	c       *Controller
	events  *eventLog
	metrics *tmc.TMCMetrics
	clock   *clocktesting.FakeClock
}

func newTestEnv(t *testing.T, st *workloadv1alpha1.SyncTarget, namespaces []*corev1.Namespace, objects []*unstructured.Unstructured) *testEnv {
	t.Helper()
	var kubeObjs, dynObjs []runtime.Object
	for _, ns := range namespaces {
		kubeObjs = append(kubeObjs, ns.DeepCopy())
	}
	for _, o := range objects {
		dynObjs = append(dynObjs, o.DeepCopy())
	}
	env := &testEnv{
		tmc:     tmcfake.NewSimpleClientset(st.DeepCopy()),
		kube:    kubefake.NewClientset(kubeObjs...),
		dynamic: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds(), dynObjs...),
		events:  &eventLog{},
		metrics: tmc.NewTMCMetrics("tmc-controller-test"),
		clock:   clocktesting.NewFakeClock(testNow),
	}
	location := &workspaces.Workspace{
		Path: testLocation, Kube: kubefake.NewClientset(), TMC: env.tmc,
		TMCInformers: tmcinformers.NewSharedInformerFactory(env.tmc, 0),
	}
	workload := &workspaces.Workspace{
		Path: wsA, Kube: env.kube, Dynamic: env.dynamic,
		KubeInformers:    informers.NewSharedInformerFactory(env.kube, 0),
		DynamicInformers: dynamicinformer.NewDynamicSharedInformerFactory(env.dynamic, 0),
	}
	set := &workspaces.Set{
		Location: map[string]*workspaces.Workspace{testLocation: location},
		Workload: map[string]*workspaces.Workspace{wsA: workload},
	}
	res, err := resource.NewController(set, nil, nil)
	if err != nil {
		t.Fatalf("resource.NewController: %v", err)
	}
	env.c, err = NewController(set, res, Options{
		Grace: testGrace, HeartbeatThreshold: testThresh, Clock: env.clock,
		Metrics: env.metrics, EventRecorderFor: env.events.recorderFor,
	})
	if err != nil {
		t.Fatalf("NewController: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		location.TMCInformers.Shutdown()
		workload.KubeInformers.Shutdown()
		workload.DynamicInformers.Shutdown()
	})
	location.TMCInformers.Start(ctx.Done())
	workload.KubeInformers.Start(ctx.Done())
	workload.DynamicInformers.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), env.c.synced...) {
		t.Fatal("caches did not sync")
	}
	env.dynamic.ClearActions()
	env.kube.ClearActions()
	env.tmc.ClearActions()
	return env
}

func (env *testEnv) reconcile(t *testing.T) time.Duration {
	t.Helper()
	after, err := env.c.reconcile(t.Context(), syncTargetKey{workspace: testLocation, name: "east"})
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	return after
}

// patches returns the merge patches of resource sent to the client, by object name.
func patches(t *testing.T, actions []clienttesting.Action, resource string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, a := range actions {
		patch, ok := a.(clienttesting.PatchAction)
		if !ok || patch.GetResource().Resource != resource {
			continue
		}
		if patch.GetPatchType() != types.MergePatchType {
			t.Errorf("patch of %s %s is %s, want a merge patch", resource, patch.GetName(), patch.GetPatchType())
		}
		body := map[string]any{}
		if err := json.Unmarshal(patch.GetPatch(), &body); err != nil {
			t.Fatalf("patch is not JSON: %v", err)
		}
		out[patch.GetName()] = body
	}
	return out
}

// writes counts the create, update, patch and delete actions.
func writes(actions []clienttesting.Action) int {
	n := 0
	for _, a := range actions {
		switch a.GetVerb() {
		case "create", "update", "patch", "delete":
			n++
		}
	}
	return n
}

func (env *testEnv) allWrites() int {
	return writes(env.dynamic.Actions()) + writes(env.kube.Actions()) + writes(env.tmc.Actions())
}

func (env *testEnv) clearActions() {
	env.dynamic.ClearActions()
	env.kube.ClearActions()
	env.tmc.ClearActions()
}

// waitFor polls the caches until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// cachedNamespace returns the controller's cached copy of a namespace (nil if gone).
func (env *testEnv) cachedNamespace(name string) *corev1.Namespace {
	ns, err := env.c.workloads[wsA].namespaces.Get(name)
	if err != nil {
		return nil
	}
	return ns
}

// heldObjects returns how many cached objects hold the key of east.
func (env *testEnv) heldObjects() int {
	return env.c.holdingsFor(stKeyEast).held()
}

func metadataOf(body map[string]any) map[string]any {
	m, _ := body["metadata"].(map[string]any)
	return m
}
