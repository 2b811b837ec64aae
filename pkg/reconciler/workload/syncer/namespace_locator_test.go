package syncer

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/record"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// forgedNamespaceName is a downstream namespace that is not the hash of the locator it
// carries: it claims to hold testWorkspace/testNamespace of this SyncTarget.
const forgedNamespaceName = "kcp-forged00000"

// forgedObjects is a forged namespace holding a copy of web with a status, next to the real
// upstream Deployment web (and no real downstream namespace).
func forgedObjects(t *testing.T) testObjects {
	up := upstreamDeployment("web")
	forgedCopy := syncedCopy(t, up, withField(map[string]any{"replicas": int64(42), "readyReplicas": int64(42)}, "status"))
	forgedCopy.SetNamespace(forgedNamespaceName)
	return testObjects{
		upstream:   []*unstructured.Unstructured{up},
		downstream: []*unstructured.Unstructured{forgedCopy},
		namespaces: []*corev1.Namespace{downstreamNamespace(t, forgedNamespaceName, testLocator(testWorkspace, testNamespace))},
	}
}

func TestForgedLocatorWritesNothingUpstream(t *testing.T) {
	env := newTestEnv(t, forgedObjects(t))
	locationEvents := record.NewFakeRecorder(10)
	env.namespaces.forged.recorder = locationEvents
	key := statusKey{gvr: deploymentsGVR, downstreamNamespace: forgedNamespaceName, name: "web"}

	for range 3 {
		if _, err := env.status.reconcile(t.Context(), key); err != nil {
			t.Fatalf("status reconcile: %v", err)
		}
		env.engine.downstreamChanged(deploymentsGVR, env.liveDownstreamCopy(t), false)
	}
	expectWrites(t, "upstream", env.upstreamDynamic.Actions(), nil)
	if n := env.spec.queue.Len(); n != 0 {
		t.Errorf("a change in the forged namespace queued %d spec keys, want none", n)
	}
	if _, _, ok, err := env.namespaces.owned(forgedNamespaceName); ok || err != nil {
		t.Errorf("owned(forged namespace) = %v, %v; want not ours (never cleaned up)", ok, err)
	}

	// Reported once, however often it is looked at.
	if got := testutil.ToFloat64(env.metrics.forgedNamespaces.WithLabelValues(testSyncTargetName)); got != 1 {
		t.Errorf("forged namespaces counted %v times, want 1", got)
	}
	var events []string
	for len(locationEvents.Events) > 0 {
		events = append(events, <-locationEvents.Events)
	}
	expectEvents(t, events, []string{"Warning " + reasonForgedNamespaceLocator})
}

func TestLocatorOfChecksName(t *testing.T) {
	real := ownedNamespace(t)
	otherUID := downstreamNamespace(t, "", workloadv1alpha1.NewNamespaceLocator(testLocationWorkspace, testSyncTargetName, "another-uid", testWorkspace, testNamespace))
	otherUIDName, err := workloadv1alpha1.NewNamespaceLocator(testLocationWorkspace, testSyncTargetName, "another-uid", testWorkspace, testNamespace).DownstreamNamespaceName()
	if err != nil {
		t.Fatal(err)
	}
	otherUID.Name = otherUIDName
	forged := downstreamNamespace(t, forgedNamespaceName, testLocator(testWorkspace, testNamespace))
	env := newTestEnv(t, testObjects{namespaces: []*corev1.Namespace{real, otherUID, forged}})

	for _, tc := range []struct {
		namespace string
		want      bool
	}{
		{real.Name, true},
		{otherUID.Name, false}, // a SyncTarget of the same name, re-created: not ours
		{forgedNamespaceName, false},
	} {
		if _, ok := env.namespaces.locatorOf(tc.namespace); ok != tc.want {
			t.Errorf("locatorOf(%s) = %v, want %v", tc.namespace, ok, tc.want)
		}
	}
	if got := testutil.ToFloat64(env.metrics.forgedNamespaces.WithLabelValues(testSyncTargetName)); got != 1 {
		t.Errorf("forged namespaces counted %v, want 1 (another target's namespace is not forged)", got)
	}
}

// liveDownstreamCopy is the forged copy of web as the downstream cache holds it.
func (env *testEnv) liveDownstreamCopy(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	obj, found, err := env.downstreamCaches[deploymentsGVR].GetByKey(forgedNamespaceName + "/web")
	if err != nil || !found {
		t.Fatalf("forged copy not cached: %v", err)
	}
	return obj.(*unstructured.Unstructured)
}
