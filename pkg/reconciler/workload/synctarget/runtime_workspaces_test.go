package synctarget

import (
	"context"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic/dynamicinformer"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/informers"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/tmc-dev/tmc/pkg/workspaces"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// newWorkloadWorkspace is a workload workspace on fake clients holding namespaces, its
// informers not started.
func newWorkloadWorkspace(path string, namespaces ...*corev1.Namespace) *workspaces.Workspace {
	var objs []runtime.Object
	for _, ns := range namespaces {
		objs = append(objs, ns)
	}
	kube := kubefake.NewClientset(objs...)
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds())
	return &workspaces.Workspace{
		Path:             path,
		Kube:             kube,
		Dynamic:          dyn,
		KubeInformers:    informers.NewSharedInformerFactory(kube, 0),
		DynamicInformers: dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0),
	}
}

// TestSyncTargetWorkspacesKeepsUnsyncedRuntimeWorkspace: a workspace bound at runtime whose
// namespaces have not been listed yet keeps its place in status.workspaces (a partial cache
// must not make the syncer stop watching it); once listed, it is decided on like the others.
func TestSyncTargetWorkspacesKeepsUnsyncedRuntimeWorkspace(t *testing.T) {
	const wsC = "root:org:team-c"
	env := newTestEnv(t, []*workloadv1alpha1.SyncTarget{newSyncTarget("east", wsC)}, nil, true)
	env.drain(t.Context())
	env.mu.Lock()
	env.applies = nil
	env.mu.Unlock()

	ws := newWorkloadWorkspace(wsC, newNamespace("web", nil, nil))
	if err := env.c.AddWorkloadWorkspace(ws); err != nil {
		t.Fatal(err)
	}
	env.c.enqueueAll()
	env.drain(t.Context())
	if applies := env.recordedApplies(); len(applies) != 0 {
		t.Fatalf("a workspace whose namespaces are not listed yet was written: %v", applies)
	}

	ws.KubeInformers.Start(t.Context().Done())
	t.Cleanup(ws.KubeInformers.Shutdown)
	ws.KubeInformers.WaitForCacheSync(t.Context().Done())
	poll(t, "the namespace handler to be synced", func() bool {
		env.c.enqueueAll()
		env.drain(t.Context())
		return len(env.recordedApplies()) > 0
	})
	if got := env.recordedApplies()[0].body; !reflect.DeepEqual(got, wantApply()) {
		t.Errorf("apply body = %v, want %v (nothing of east in %s once listed)", got, wantApply(), wsC)
	}
}

// TestSyncTargetWorkspacesRunningControllerTakesWorkspace: a workspace added to the running
// controller, its informers started afterwards, is listed on the SyncTarget its namespace
// is placed on.
func TestSyncTargetWorkspacesRunningControllerTakesWorkspace(t *testing.T) {
	const wsD = "root:org:team-d"
	env := newTestEnv(t, []*workloadv1alpha1.SyncTarget{newSyncTarget("east")}, nil, false)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		env.c.Run(ctx, 1)
	}()
	defer func() {
		cancel()
		<-done
	}()

	ws := newWorkloadWorkspace(wsD, newNamespace("web", map[string]string{eastLabel: "Sync"}, nil))
	if err := env.resources.AddWorkloadWorkspace(ws); err != nil {
		t.Fatal(err)
	}
	if err := env.c.AddWorkloadWorkspace(ws); err != nil {
		t.Fatal(err)
	}
	if err := env.c.AddWorkloadWorkspace(ws); err != nil {
		t.Fatalf("adding a workspace twice: %v", err)
	}
	ws.KubeInformers.Start(ctx.Done())
	ws.DynamicInformers.Start(ctx.Done())
	t.Cleanup(func() { ws.KubeInformers.Shutdown(); ws.DynamicInformers.Shutdown() })
	poll(t, "the new workspace on the SyncTarget", func() bool {
		for _, a := range env.recordedApplies() {
			if reflect.DeepEqual(a.body, wantApply(wsD)) {
				return true
			}
		}
		return false
	})
}
