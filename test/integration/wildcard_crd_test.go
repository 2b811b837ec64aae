package integration

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/tmc-dev/tmc/pkg/localenv"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
)

// A resource defined in some workspaces only (a CRD) is listed and watched across the
// workspaces that serve it, as kcp's wildcard does; it is not an error of the others.
func TestWildcardOfACRDInSomeWorkspaces(t *testing.T) {
	ctx := t.Context()
	env := localenv.StartForTest(t, localenv.Options{Workspaces: []string{wsA, wsB}, NoWorkspaceControllers: true})
	if err := localenv.InstallCRDs(ctx, env.Workspace(wsA).AdminConfig()); err != nil {
		t.Fatal(err)
	}
	inA := tmcclient.NewForConfigOrDie(env.Workspace(wsA).AdminConfig())
	if _, err := inA.WorkloadV1alpha1().SyncTargets().Create(ctx, &workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{Name: "first"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := env.FrontProxy.BaseConfig(localenv.AdminUser)
	cfg.Host += logicalcluster.ClustersPrefix + "*"
	wildcard := tmcclient.NewForConfigOrDie(cfg).WorkloadV1alpha1().SyncTargets()
	list, err := wildcard.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("the wildcard list fails where %s does not serve SyncTargets: %v", wsB, err)
	}
	if len(list.Items) != 1 || logicalcluster.NameFrom(list.Items[0].Annotations) != env.Workspace(wsA).Name {
		t.Fatalf("listed %d SyncTargets, want %s's one", len(list.Items), wsA)
	}
	watchCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	w, err := wildcard.Watch(watchCtx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := inA.WorkloadV1alpha1().SyncTargets().Create(ctx, &workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{Name: "second"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for ev := range w.ResultChan() {
		if ev.Type == watch.Error {
			t.Fatalf("watch error: %v", ev.Object)
		}
		if st, ok := ev.Object.(*workloadv1alpha1.SyncTarget); ok && ev.Type == watch.Added && st.Name == "second" {
			break
		}
	}

	// Once the other workspace serves the resource and stores an object of it, the watch
	// ends, so that the client watches again across both.
	if err := localenv.InstallCRDs(ctx, env.Workspace(wsB).AdminConfig()); err != nil {
		t.Fatal(err)
	}
	inB := tmcclient.NewForConfigOrDie(env.Workspace(wsB).AdminConfig())
	if _, err := inB.WorkloadV1alpha1().SyncTargets().Create(ctx, &workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{Name: "third"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for ev := range w.ResultChan() {
		if ev.Type == watch.Error {
			t.Fatalf("watch error: %v", ev.Object)
		}
	}
	if watchCtx.Err() != nil {
		t.Fatal("the watch did not end when the other workspace stored its first SyncTarget")
	}
	list, err = wildcard.List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 3 {
		t.Fatalf("listed %d SyncTargets (%v), want 3 across both workspaces", len(list.Items), err)
	}
}
