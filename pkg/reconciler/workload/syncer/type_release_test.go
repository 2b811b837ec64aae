package syncer

import (
	"encoding/json"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clienttesting "k8s.io/client-go/testing"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

var (
	configMapsInfo  = resourceInfo{gvr: configMapsGVR, kind: "ConfigMap"}
	deploymentsInfo = resourceInfo{gvr: deploymentsGVR, kind: "Deployment", hasStatus: true}
	configMapsKey   = upstreamInformerKey{workspace: testWorkspace, gvr: configMapsGVR}
)

// typeRemovalObjects: three upstream ConfigMaps (only "web" holds our finalizer, next to a
// foreign one; "stale" holds it without a resourceVersion) and a Deployment, all synced.
func typeRemovalObjects(t *testing.T) testObjects {
	web := upstreamConfigMap("web", withFinalizers("example.com/keep", testFinalize))
	stale := upstreamConfigMap("stale")
	stale.SetResourceVersion("")
	deploy := upstreamDeployment("api")
	return testObjects{
		namespaces: []*corev1.Namespace{ownedNamespace(t)},
		upstream:   []*unstructured.Unstructured{web, upstreamConfigMap("free", withoutFinalizer), stale, deploy},
		downstream: []*unstructured.Unstructured{syncedCopy(t, web), syncedCopy(t, deploy)},
	}
}

func TestTypeRemovalReleasesUpstreamObjects(t *testing.T) {
	env := newTestEnv(t, typeRemovalObjects(t))
	e := env.engine
	if err := e.reconcile(t.Context(), []resourceInfo{deploymentsInfo}, nil, []string{testWorkspace}, nil); err != nil {
		t.Fatal(err)
	}

	expectWrites(t, "upstream", env.upstreamDynamic.Actions(), []string{"patch configmaps"})
	expectFinalizerRelease(t, findAction[clienttesting.PatchActionImpl](t, env.upstreamDynamic.Actions(), "patch", "configmaps"), "web", "7", []string{"example.com/keep"})
	// The copies stay downstream, labelled, and so does their namespace.
	expectWrites(t, "downstream", env.downstreamDynamic.Actions(), nil)
	expectWrites(t, "downstream kube", env.downstreamKube.Actions(), nil)
	if got := testutil.ToFloat64(env.metrics.upstreamWrites.WithLabelValues(testSyncTargetName, operationPatchFinalizer)); got != 1 {
		t.Errorf("counted %v finalizer patches, want 1", got)
	}

	if _, ok := e.resource(configMapsGVR); ok {
		t.Error("configmaps are still accepted")
	}
	// Reported until the live release confirmed it, so that a restart does not forget it.
	if state, _ := stateOf(e, configMapsResource); state != workloadv1alpha1.ResourceStateReleasing {
		t.Errorf("configmaps are reported %q, want Releasing", state)
	}
	if _, ok := e.upstream(testWorkspace, configMapsGVR); ok {
		t.Error("the upstream configmaps informer still runs after its objects were released")
	}
	if _, ok := e.downstream(configMapsGVR); ok {
		t.Error("the downstream configmaps informer still runs")
	}
	if _, ok := e.upstream(testWorkspace, deploymentsGVR); !ok {
		t.Error("the deployments informer was stopped, though deployments are still accepted")
	}
	// Released copies are not counted by the namespace cleanup any more; only rule 1 (the
	// upstream namespace must be gone or unplaced) keeps their namespace.
	if n := e.downstreamObjectsIn(downstreamNamespaceFor(t, testWorkspace, testNamespace)); n != 1 {
		t.Errorf("counted %d synced objects downstream, want the Deployment only", n)
	}
}

func TestTypeRemovalRetriesWhatItCouldNotRelease(t *testing.T) {
	tests := []struct {
		name string
		// fault breaks the first release and returns what heals it: the first reconcile
		// fails and keeps the informer; the second releases with the upstream writes
		// wantSecond and stops it.
		fault      func(env *testEnv) (heal func())
		wantFirst  []string
		wantSecond []string
	}{
		{
			name: "upstream cache not synced: nothing written until it has",
			fault: func(env *testEnv) func() {
				env.informersSynced.Store(false)
				return func() { env.informersSynced.Store(true) }
			},
			wantSecond: []string{"patch configmaps"},
		},
		{
			name: "patch fails: retried",
			fault: func(env *testEnv) func() {
				var healed atomic.Bool
				env.upstreamDynamic.PrependReactor("patch", "configmaps", func(clienttesting.Action) (bool, runtime.Object, error) {
					if healed.Load() {
						return false, nil, nil
					}
					return true, nil, apierrors.NewServiceUnavailable("upstream down")
				})
				return func() { healed.Store(true) }
			},
			wantFirst:  []string{"patch configmaps"},
			wantSecond: []string{"patch configmaps"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, typeRemovalObjects(t))
			e := env.engine
			heal := tc.fault(env)
			if err := e.reconcile(t.Context(), []resourceInfo{deploymentsInfo}, nil, []string{testWorkspace}, nil); err == nil {
				t.Error("a release that did not complete must be reported")
			}
			expectWrites(t, "upstream", env.upstreamDynamic.Actions(), tc.wantFirst)
			if _, ok := e.resource(configMapsGVR); ok {
				t.Error("configmaps are still accepted")
			}
			e.mu.RLock()
			_, kept := e.upstreamInformers[configMapsKey]
			e.mu.RUnlock()
			if !kept {
				t.Fatal("the upstream informer was stopped before its objects were released")
			}

			heal()
			env.upstreamDynamic.ClearActions()
			if err := e.reconcile(t.Context(), []resourceInfo{deploymentsInfo}, nil, []string{testWorkspace}, nil); err != nil {
				t.Fatal(err)
			}
			expectWrites(t, "upstream", env.upstreamDynamic.Actions(), tc.wantSecond)
			if _, ok := e.upstream(testWorkspace, configMapsGVR); ok {
				t.Error("the upstream informer still runs after its objects were released")
			}
		})
	}
}

func TestReleaseUpstreamFinalizerRereadsOnConflict(t *testing.T) {
	env := newTestEnv(t, testObjects{upstreamLiveOnly: []*unstructured.Unstructured{upstreamConfigMap("web", withField("8", "metadata", "resourceVersion"))}})
	conflicts := 0
	env.upstreamDynamic.PrependReactor("patch", "configmaps", func(clienttesting.Action) (bool, runtime.Object, error) {
		if conflicts > 0 {
			return false, nil, nil
		}
		conflicts++
		return true, nil, apierrors.NewConflict(configMapsGVR.GroupResource(), "web", nil)
	})
	stale := upstreamConfigMap("web") // resourceVersion 7, as cached
	wrote, err := releaseUpstreamFinalizer(t.Context(), env.upstreamDynamic.Resource(configMapsGVR), testStKey, stale)
	if err != nil || !wrote {
		t.Fatalf("got %v, %v; want the finalizer released", wrote, err)
	}
	var patches []clienttesting.PatchActionImpl
	for _, a := range env.upstreamDynamic.Actions() {
		if p, ok := a.(clienttesting.PatchActionImpl); ok {
			patches = append(patches, p)
		}
	}
	if len(patches) != 2 {
		t.Fatalf("got %d patches, want the stale one and one after reading again", len(patches))
	}
	expectFinalizerRelease(t, patches[0], "web", "7", []string{})
	expectFinalizerRelease(t, patches[1], "web", "8", []string{})
}

// TestTypeComesBackReadoptsCopies: after a type was removed and its objects released, the
// type is accepted again: the real informers start, the finalizer goes back on upstream,
// and the unchanged downstream copy is adopted without a single downstream write.
func TestTypeComesBackReadoptsCopies(t *testing.T) {
	released := upstreamConfigMap("web", withoutFinalizer)
	env := newTestEnv(t, testObjects{
		namespaces: []*corev1.Namespace{ownedNamespace(t)},
		upstream:   []*unstructured.Unstructured{released},
		downstream: []*unstructured.Unstructured{syncedCopy(t, upstreamConfigMap("web"))},
	})
	e := env.engine
	// The state after the removal: configmaps neither accepted nor watched.
	delete(e.resources, configMapsGVR)
	delete(e.upstreamInformers, configMapsKey)
	delete(e.downstreamInformers, configMapsGVR)

	err := e.reconcile(t.Context(), []resourceInfo{configMapsInfo, deploymentsInfo}, nil, []string{testWorkspace},
		map[upstreamInformerKey]bool{configMapsKey: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, h := range []*informerHandle{e.upstreamInformers[configMapsKey], e.downstreamInformers[configMapsGVR]} {
			h.stop()
			<-h.done
		}
	})
	upstream, ok := e.upstream(testWorkspace, configMapsGVR)
	if !ok {
		t.Fatal("the upstream informer did not start again")
	}
	downstream, ok := e.downstream(configMapsGVR)
	if !ok {
		t.Fatal("the downstream informer did not start again")
	}
	eventuallyTrue(t, "the informers did not sync", func() bool { return upstream.synced() && downstream.synced() })
	env.upstreamDynamic.ClearActions()
	env.downstreamDynamic.ClearActions()

	if _, err := env.spec.reconcile(t.Context(), webKey); err != nil {
		t.Fatal(err)
	}
	if got := writes(env.upstreamDynamic.Actions()); len(got) != 1 || !slices.Contains([]string{"update configmaps", "patch configmaps"}, got[0]) {
		t.Errorf("upstream writes %q, want the finalizer added once", got)
	}
	eventuallyTrue(t, "the finalizer did not reach the upstream cache", func() bool {
		obj, err := upstream.lister.ByNamespace(testNamespace).Get("web")
		return err == nil && slices.Contains(obj.(*unstructured.Unstructured).GetFinalizers(), testFinalize)
	})
	if _, err := env.spec.reconcile(t.Context(), webKey); err != nil {
		t.Fatal(err)
	}
	expectWrites(t, "downstream", env.downstreamDynamic.Actions(), nil)
	expectWrites(t, "downstream kube", env.downstreamKube.Actions(), nil)
	if got := testutil.ToFloat64(env.metrics.skippedWrites.WithLabelValues(testSyncTargetName, directionDown)); got != 1 {
		t.Errorf("counted %v up-to-date copies, want the re-adopted one", got)
	}
	downstreamObj, err := downstream.lister.ByNamespace(downstreamNamespaceFor(t, testWorkspace, testNamespace)).Get("web")
	if err != nil || downstreamObj.(*unstructured.Unstructured).GetLabels()[workloadv1alpha1.InternalDownstreamClusterLabel] != testStKey {
		t.Errorf("the downstream copy is not ours any more: %v, %v", downstreamObj, err)
	}
}

// expectFinalizerRelease checks a finalizer release: a merge patch of name carrying
// resourceVersion as precondition and the finalizers left.
func expectFinalizerRelease(t *testing.T, patch clienttesting.PatchActionImpl, name, resourceVersion string, finalizers []string) {
	t.Helper()
	if patch.GetName() != name || patch.GetPatchType() != types.MergePatchType {
		t.Fatalf("patched %q with %s, want a merge patch of %q", patch.GetName(), patch.GetPatchType(), name)
	}
	var body struct {
		Metadata struct {
			ResourceVersion string   `json:"resourceVersion"`
			Finalizers      []string `json:"finalizers"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(patch.GetPatch(), &body); err != nil {
		t.Fatal(err)
	}
	if body.Metadata.ResourceVersion != resourceVersion || !slices.Equal(body.Metadata.Finalizers, finalizers) {
		t.Errorf("patch %s, want finalizers %q with resourceVersion %s as precondition", patch.GetPatch(), finalizers, resourceVersion)
	}
}
