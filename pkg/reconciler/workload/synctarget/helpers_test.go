package synctarget

import (
	"context"
	"encoding/json"
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

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/resource"
	"github.com/tmc-dev/tmc/pkg/workspaces"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcfake "github.com/tmc-dev/tmc/sdk/client/clientset/versioned/fake"
	tmcinformers "github.com/tmc-dev/tmc/sdk/client/informers/externalversions"
)

const (
	testLocation = "root:org:locations"
	wsA          = "root:org:team-a"
	wsB          = "root:org:team-b"
)

var (
	stKeyEast    = workloadv1alpha1.ToSyncTargetKey(testLocation, "east")
	stKeyWest    = workloadv1alpha1.ToSyncTargetKey(testLocation, "west")
	eastLabel    = workloadv1alpha1.ClusterResourceStateLabel(stKeyEast)
	westLabel    = workloadv1alpha1.ClusterResourceStateLabel(stKeyWest)
	eastDeletion = workloadv1alpha1.DeletionAnnotation(stKeyEast)

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
		syncTargetsGVR: "SyncTargetList",
	}
}

func newSyncTarget(name string, paths ...string) *workloadv1alpha1.SyncTarget {
	st := &workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name + "-uid"), ResourceVersion: "1"}}
	for _, p := range paths {
		st.Status.Workspaces = append(st.Status.Workspaces, workloadv1alpha1.WorkspaceReference{Path: p})
	}
	st.Status.WorkspaceCount = int32(len(paths))
	return st
}

func newNamespace(name string, labels, annotations map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}}
}

func configMap(namespace, name string, labels map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("ConfigMap")
	u.SetNamespace(namespace)
	u.SetName(name)
	u.SetLabels(labels)
	return u
}

// workloadFixture is the content of one workload workspace.
type workloadFixture struct {
	namespaces []*corev1.Namespace
	objects    []*unstructured.Unstructured
}

// applyRecord is one server-side apply the controller sent.
type applyRecord struct {
	name        string
	subresource string
	body        map[string]any
	options     metav1.PatchOptions
}

// testEnv is one location workspace and two workload workspaces on fake clients with
// real informer factories.
type testEnv struct {
	location     *workspaces.Workspace
	locationTMC  *tmcfake.Clientset
	locationDyn  *dynamicfake.FakeDynamicClient
	workloads    map[string]*workspaces.Workspace
	kube         map[string]*kubefake.Clientset
	dynamic      map[string]*dynamicfake.FakeDynamicClient
	resources    *resource.Controller
	c            *WorkspacesController
	mu           sync.Mutex
	applies      []applyRecord
	cancelStarts context.CancelFunc
}

// newTestEnv builds the workspaces, the resource controller (unless withoutResources) and
// the WorkspacesController, starts the informers and waits for them.
func newTestEnv(t *testing.T, syncTargets []*workloadv1alpha1.SyncTarget, fixtures map[string]workloadFixture, withoutResources bool) *testEnv {
	t.Helper()
	env := &testEnv{
		workloads: map[string]*workspaces.Workspace{},
		kube:      map[string]*kubefake.Clientset{},
		dynamic:   map[string]*dynamicfake.FakeDynamicClient{},
	}
	var stObjs []runtime.Object
	for _, st := range syncTargets {
		stObjs = append(stObjs, st.DeepCopy())
	}
	env.locationTMC = tmcfake.NewSimpleClientset(stObjs...)
	env.locationDyn = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds())
	// The fake tracker cannot server-side apply: record the apply and answer with the body.
	env.locationDyn.PrependReactor("patch", "synctargets", func(action clienttesting.Action) (bool, runtime.Object, error) {
		patch := action.(clienttesting.PatchActionImpl)
		body := map[string]any{}
		if err := json.Unmarshal(patch.GetPatch(), &body); err != nil {
			return true, nil, err
		}
		if patch.GetPatchType() != types.ApplyPatchType {
			t.Errorf("patch type = %s, want apply", patch.GetPatchType())
		}
		env.mu.Lock()
		env.applies = append(env.applies, applyRecord{name: patch.GetName(), subresource: patch.GetSubresource(), body: body, options: patch.PatchOptions})
		env.mu.Unlock()
		return true, &unstructured.Unstructured{Object: body}, nil
	})
	env.location = &workspaces.Workspace{
		Path:         testLocation,
		Dynamic:      env.locationDyn,
		TMC:          env.locationTMC,
		TMCInformers: tmcinformers.NewSharedInformerFactory(env.locationTMC, 0),
	}
	set := &workspaces.Set{Location: map[string]*workspaces.Workspace{testLocation: env.location}, Workload: map[string]*workspaces.Workspace{}}
	for _, path := range []string{wsA, wsB} {
		var kubeObjs, dynObjs []runtime.Object
		for _, ns := range fixtures[path].namespaces {
			kubeObjs = append(kubeObjs, ns.DeepCopy())
		}
		for _, o := range fixtures[path].objects {
			dynObjs = append(dynObjs, o.DeepCopy())
		}
		kube := kubefake.NewClientset(kubeObjs...)
		dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds(), dynObjs...)
		env.kube[path], env.dynamic[path] = kube, dyn
		env.workloads[path] = &workspaces.Workspace{
			Path:             path,
			Kube:             kube,
			Dynamic:          dyn,
			KubeInformers:    informers.NewSharedInformerFactory(kube, 0),
			DynamicInformers: dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0),
		}
		set.Workload[path] = env.workloads[path]
	}
	if !withoutResources {
		rc, err := resource.NewController(set, nil, nil)
		if err != nil {
			t.Fatalf("resource.NewController: %v", err)
		}
		env.resources = rc
	}
	c, err := NewWorkspacesController(set, env.resources)
	if err != nil {
		t.Fatalf("NewWorkspacesController: %v", err)
	}
	env.c = c

	ctx, cancel := context.WithCancel(context.Background())
	env.cancelStarts = cancel
	t.Cleanup(func() {
		cancel()
		env.location.TMCInformers.Shutdown()
		for _, ws := range env.workloads {
			ws.KubeInformers.Shutdown()
			ws.DynamicInformers.Shutdown()
		}
	})
	env.location.TMCInformers.Start(ctx.Done())
	var synced []cache.InformerSynced
	for _, ws := range env.workloads {
		ws.KubeInformers.Start(ctx.Done())
		ws.DynamicInformers.Start(ctx.Done())
		for _, ok := range ws.DynamicInformers.WaitForCacheSync(ctx.Done()) {
			if !ok {
				t.Fatal("dynamic informers did not sync")
			}
		}
	}
	synced = append(synced, c.synced...)
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		t.Fatal("caches did not sync")
	}
	return env
}

func (env *testEnv) recordedApplies() []applyRecord {
	env.mu.Lock()
	defer env.mu.Unlock()
	return append([]applyRecord(nil), env.applies...)
}

// drain processes every queued key.
func (env *testEnv) drain(ctx context.Context) {
	for env.c.queue.Len() > 0 {
		env.c.queue.ProcessNext(ctx)
	}
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
