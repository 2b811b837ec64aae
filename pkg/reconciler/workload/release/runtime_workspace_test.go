package release

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic/dynamicinformer"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/informers"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/tmc-dev/tmc/pkg/workspaces"
)

// TestReleaseWaitsForRuntimeWorkspace: while a workload workspace bound at runtime has not
// listed its namespaces, a deleted SyncTarget past its grace period is not released at
// all (nothing is released on a partial view); once listed, it is.
func TestReleaseWaitsForRuntimeWorkspace(t *testing.T) {
	st := syncTarget(deletedAgo(testGrace + time.Second))
	env := newTestEnv(t, st,
		[]*corev1.Namespace{namespace("web", map[string]string{eastLabel: syncValue}, nil)},
		[]*unstructured.Unstructured{configMap("web", "cfg", map[string]string{eastLabel: syncValue}, nil, eastFinalizer)})

	kube := kubefake.NewClientset()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds())
	ws := &workspaces.Workspace{
		Path: "root:org:team-new", Kube: kube, Dynamic: dyn,
		KubeInformers:    informers.NewSharedInformerFactory(kube, 0),
		DynamicInformers: dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0),
	}
	if err := env.c.AddWorkloadWorkspace(ws); err != nil {
		t.Fatal(err)
	}
	if after := env.reconcile(t); after != workspaceSyncRecheck {
		t.Errorf("requeue after %s, want %s while a workspace lists", after, workspaceSyncRecheck)
	}
	if n := env.allWrites(); n != 0 {
		t.Fatalf("%d writes while a workload workspace had not synced, want none", n)
	}

	ws.KubeInformers.Start(t.Context().Done())
	t.Cleanup(ws.KubeInformers.Shutdown)
	waitFor(t, "the new workspace's namespaces to sync", env.c.workloadsSynced)
	env.reconcile(t)
	if n := env.allWrites(); n == 0 {
		t.Error("once every workspace synced, want the release to start (web marked), got no write")
	}
}
