package resource

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic/dynamicinformer"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/informers"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	"github.com/tmc-dev/tmc/pkg/workspaces"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const (
	testLocation  = "root:org:locations"
	testWorkspace = "root:org:team-a"
	testNamespace = "web"
)

var (
	testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	stKeyEast = workloadv1alpha1.ToSyncTargetKey(testLocation, "east")
	stKeyWest = workloadv1alpha1.ToSyncTargetKey(testLocation, "west")

	configMapsGVR  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	deploymentsGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	widgetsGVR     = schema.GroupVersionResource{Group: "example.com", Version: "v1beta1", Resource: "widgets"}
)

// listKinds covers every default type plus the test CRD, so that informers can list.
func listKinds() map[schema.GroupVersionResource]string {
	kinds := map[schema.GroupVersionResource]string{
		configMapsGVR:                        "ConfigMapList",
		deploymentsGVR:                       "DeploymentList",
		widgetsGVR:                           "WidgetList",
		{Version: "v1", Resource: "secrets"}: "SecretList",
		{Version: "v1", Resource: "serviceaccounts"}:                         "ServiceAccountList",
		{Version: "v1", Resource: "services"}:                                "ServiceList",
		{Version: "v1", Resource: "persistentvolumeclaims"}:                  "PersistentVolumeClaimList",
		{Group: "apps", Version: "v1", Resource: "statefulsets"}:             "StatefulSetList",
		{Group: "batch", Version: "v1", Resource: "jobs"}:                    "JobList",
		{Group: "batch", Version: "v1", Resource: "cronjobs"}:                "CronJobList",
		{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"}:   "IngressList",
		{Group: "example.com", Version: "v1beta1", Resource: "notwatched"}:   "NotWatchedList",
		{Group: "example.com", Version: "v1beta1", Resource: "clusterthing"}: "ClusterThingList",
	}
	return kinds
}

// testEnv is one workload workspace backed by fake clients and real informer factories.
type testEnv struct {
	ws      *workspaces.Workspace
	kube    *kubefake.Clientset
	dynamic *dynamicfake.FakeDynamicClient
	c       *Controller
	metrics *tmc.TMCMetrics
}

func newNamespace(name string, labels, annotations map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}}
}

func newObject(gvr schema.GroupVersionResource, kind, namespace, name string, mutate ...func(*unstructured.Unstructured)) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(gvr.GroupVersion().String())
	u.SetKind(kind)
	u.SetNamespace(namespace)
	u.SetName(name)
	u.SetResourceVersion("42")
	for _, m := range mutate {
		m(u)
	}
	return u
}

func configMap(namespace, name string, mutate ...func(*unstructured.Unstructured)) *unstructured.Unstructured {
	return newObject(configMapsGVR, "ConfigMap", namespace, name, mutate...)
}

func withLabels(labels map[string]string) func(*unstructured.Unstructured) {
	return func(u *unstructured.Unstructured) { u.SetLabels(labels) }
}

func withAnnotations(annotations map[string]string) func(*unstructured.Unstructured) {
	return func(u *unstructured.Unstructured) { u.SetAnnotations(annotations) }
}

// newTestEnv builds the workspace, the controller (with a fake clock at testNow), starts
// the informers and waits for them.
func newTestEnv(t *testing.T, resources []workloadv1alpha1.ResourceToSync, namespaces []*corev1.Namespace, objects []*unstructured.Unstructured, discovery []*metav1.APIResourceList) *testEnv {
	t.Helper()
	var kubeObjs []runtime.Object
	for _, ns := range namespaces {
		kubeObjs = append(kubeObjs, ns.DeepCopy())
	}
	var dynObjs []runtime.Object
	for _, o := range objects {
		dynObjs = append(dynObjs, o.DeepCopy())
	}
	env := &testEnv{
		kube:    kubefake.NewClientset(kubeObjs...),
		dynamic: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds(), dynObjs...),
		metrics: tmc.NewTMCMetrics("tmc-controller-test"),
	}
	if discovery != nil {
		env.kube.Resources = discovery
	}
	env.ws = &workspaces.Workspace{
		Path:             testWorkspace,
		Kube:             env.kube,
		Dynamic:          env.dynamic,
		KubeInformers:    informers.NewSharedInformerFactory(env.kube, 0),
		DynamicInformers: dynamicinformer.NewDynamicSharedInformerFactory(env.dynamic, 0),
	}
	set := &workspaces.Set{Workload: map[string]*workspaces.Workspace{testWorkspace: env.ws}}
	c, err := NewController(set, resources, env.metrics)
	if err != nil {
		t.Fatalf("NewController: %v", err)
	}
	c.clock = clocktesting.NewFakePassiveClock(testNow)
	env.c = c

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		env.ws.KubeInformers.Shutdown()
		env.ws.DynamicInformers.Shutdown()
	})
	env.ws.KubeInformers.Start(ctx.Done())
	env.ws.DynamicInformers.Start(ctx.Done())
	env.waitForSync(t, ctx)
	return env
}

func (env *testEnv) waitForSync(t *testing.T, ctx context.Context) {
	t.Helper()
	if !cache.WaitForCacheSync(ctx.Done(), env.c.hasSynced()...) {
		t.Fatal("caches did not sync")
	}
}

// patches returns the bodies of the patches sent to the dynamic client, decoded.
func (env *testEnv) patches(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, a := range env.dynamic.Actions() {
		patch, ok := a.(clienttesting.PatchAction)
		if !ok {
			continue
		}
		if patch.GetPatchType() != types.MergePatchType {
			t.Errorf("patch type = %s, want %s", patch.GetPatchType(), types.MergePatchType)
		}
		body := map[string]any{}
		if err := json.Unmarshal(patch.GetPatch(), &body); err != nil {
			t.Fatalf("patch is not JSON: %v", err)
		}
		out = append(out, body)
	}
	return out
}

// drain processes every queued key.
func (env *testEnv) drain(ctx context.Context) {
	for env.c.queue.Len() > 0 {
		env.c.queue.ProcessNext(ctx)
	}
}
