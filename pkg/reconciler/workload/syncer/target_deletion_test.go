package syncer

import (
	"context"
	"slices"
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcinformers "github.com/tmc-dev/tmc/sdk/client/informers/externalversions"
	workloadlisters "github.com/tmc-dev/tmc/sdk/client/listers/workload/v1alpha1"
)

// TestSyncTargetDeletingReleasesEverything: while the SyncTarget is being deleted nothing
// is synced down any more — no finalizer added, nothing applied — and each object is
// released with its state label once its copy is gone.
func TestSyncTargetDeletingReleasesEverything(t *testing.T) {
	for _, tc := range []struct {
		name     string
		upstream *unstructured.Unstructured
	}{
		{"synced object, copy gone", upstreamConfigMap("web")},
		{"object never synced (no finalizer yet)", upstreamConfigMap("web", withoutFinalizer)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, testObjects{upstream: []*unstructured.Unstructured{tc.upstream}, namespaces: []*corev1.Namespace{ownedNamespace(t)}})
			env.spec.remover.targetDeleting = func() bool { return true }
			if _, err := env.spec.reconcile(t.Context(), webKey); err != nil {
				t.Fatal(err)
			}
			expectWrites(t, "downstream", env.downstreamDynamic.Actions(), nil)
			expectWrites(t, "downstream kube", env.downstreamKube.Actions(), nil)
			expectWrites(t, "upstream", env.upstreamDynamic.Actions(), []string{"patch configmaps"})
			obj := liveUpstream(t, env, configMapsGVR, "web")
			if _, labelled := obj.GetLabels()[testStateKey]; labelled || slices.Contains(obj.GetFinalizers(), testFinalize) {
				t.Errorf("the object must be released from the deleted target, got labels %v finalizers %q", obj.GetLabels(), obj.GetFinalizers())
			}
		})
	}
}

func TestSyncTargetDeleting(t *testing.T) {
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	lister := workloadlisters.NewSyncTargetLister(indexer)
	deleting := syncTargetDeleting(lister, testSyncTargetName)
	if deleting() {
		t.Error("a SyncTarget not in the cache must not count as deleting")
	}
	st := &workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{Name: testSyncTargetName}}
	if err := indexer.Add(st); err != nil {
		t.Fatal(err)
	}
	if deleting() {
		t.Error("a SyncTarget without deletionTimestamp is not deleting")
	}
	now := metav1.Now()
	st = st.DeepCopy()
	st.DeletionTimestamp = &now
	if err := indexer.Update(st); err != nil {
		t.Fatal(err)
	}
	if !deleting() {
		t.Error("a SyncTarget with a deletionTimestamp is deleting")
	}
}

// TestRequeueOnTargetDeletion: the deletionTimestamp appearing on the SyncTarget queues
// every cached upstream object, of every type.
func TestRequeueOnTargetDeletion(t *testing.T) {
	env := newTestEnv(t, testObjects{upstream: []*unstructured.Unstructured{upstreamConfigMap("web"), upstreamConfigMap("db"), upstreamDeployment("web")}})
	ctx, cancel := context.WithCancel(t.Context())
	factory := tmcinformers.NewSharedInformerFactory(env.locationClient, 0)
	informer := factory.Workload().V1alpha1().SyncTargets().Informer()
	if err := requeueOnTargetDeletion(informer, env.engine.upstreamKeys, env.spec.enqueue); err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	defer func() {
		cancel()
		factory.Shutdown()
	}()
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		t.Fatal("informer did not sync")
	}
	if got := env.spec.queue.Drain(); len(got) != 0 {
		t.Fatalf("a live SyncTarget must queue nothing, got %v", got)
	}

	st, err := env.locationClient.WorkloadV1alpha1().SyncTargets().Get(ctx, testSyncTargetName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	st.DeletionTimestamp = &now
	if _, err := env.locationClient.WorkloadV1alpha1().SyncTargets().Update(ctx, st, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		specKey{workspace: testWorkspace, gvr: configMapsGVR, upstreamNamespace: testNamespace, name: "db"}.String(),
		webKey.String(),
		specKey{workspace: testWorkspace, gvr: deploymentsGVR, upstreamNamespace: testNamespace, name: "web"}.String(),
	}
	sort.Strings(want)
	var got []string
	err = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		for _, k := range env.spec.queue.Drain() {
			got = append(got, k.String())
		}
		return len(got) >= len(want), nil
	})
	sort.Strings(got)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("queued %q, want every cached upstream object %q (%v)", got, want, err)
	}
}
