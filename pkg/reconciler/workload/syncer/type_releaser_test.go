package syncer

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clienttesting "k8s.io/client-go/testing"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

var (
	configMapsResource  = workloadv1alpha1.ResourceToSync{Resource: "configmaps"}
	deploymentsResource = workloadv1alpha1.ResourceToSync{Group: "apps", Resource: "deployments"}
)

// restartedTestEnv is a syncer just started after configmaps were removed from
// spec.resources while it was down: no configmaps cache or informer, and the previous
// run's status on the SyncTarget says which types it synced.
func restartedTestEnv(t *testing.T, objs testObjects, previous []workloadv1alpha1.SyncedResource) *testEnv {
	t.Helper()
	env := newTestEnv(t, objs)
	e := env.engine
	delete(e.resources, configMapsGVR)
	delete(e.upstreamInformers, configMapsKey)
	delete(e.downstreamInformers, configMapsGVR)
	env.typeReleases.recorder = env.recorder
	env.typeReleases.resume(previous)
	return env
}

func previousRun(configMaps workloadv1alpha1.ResourceState) []workloadv1alpha1.SyncedResource {
	return []workloadv1alpha1.SyncedResource{
		{ResourceToSync: configMapsResource, Versions: []string{"v1"}, State: configMaps},
		{ResourceToSync: deploymentsResource, Versions: []string{"v1"}, State: workloadv1alpha1.ResourceStateAccepted},
	}
}

var deploymentsOnly = []workloadv1alpha1.SyncedResource{
	{ResourceToSync: deploymentsResource, Versions: []string{"v1"}, State: workloadv1alpha1.ResourceStateAccepted},
}

// stateOf returns the reported state of res, "" if it is not reported.
func stateOf(e *engine, res workloadv1alpha1.ResourceToSync) (workloadv1alpha1.ResourceState, string) {
	for _, s := range e.reportedResources() {
		if s.ResourceToSync == res {
			return s.State, s.Message
		}
	}
	return "", ""
}

// TestTypeRemovedWhileDownIsReleased: configmaps were synced by the previous run and
// removed from spec.resources while the syncer was down. On start the syncer releases
// their upstream objects by a live list (no cache holds them), reports the type as
// Releasing until done, and writes nothing downstream.
func TestTypeRemovedWhileDownIsReleased(t *testing.T) {
	for _, previous := range []workloadv1alpha1.ResourceState{workloadv1alpha1.ResourceStateAccepted, workloadv1alpha1.ResourceStateReleasing} {
		t.Run("previous state "+string(previous), func(t *testing.T) {
			objs := typeRemovalObjects(t)
			// The restarted syncer has no configmaps cache: the objects are only live.
			objs.upstreamLiveOnly, objs.upstream = objs.upstream[:3], objs.upstream[3:]
			env := restartedTestEnv(t, objs, previousRun(previous))
			e := env.engine
			// Before the first discovery the previous run's verdict is kept in the status.
			if state, _ := stateOf(e, configMapsResource); state != previous {
				t.Errorf("before discovery configmaps are reported %q, want %q as the previous run left them", state, previous)
			}
			if err := e.reconcile(t.Context(), []resourceInfo{deploymentsInfo}, deploymentsOnly, []string{testWorkspace}, nil); err != nil {
				t.Fatal(err)
			}
			if state, _ := stateOf(e, configMapsResource); state != workloadv1alpha1.ResourceStateReleasing {
				t.Fatalf("configmaps are reported %q, want Releasing until their objects are released", state)
			}
			expectWrites(t, "upstream before the release ran", env.upstreamDynamic.Actions(), nil)

			if !env.typeReleases.queue.ProcessNext(t.Context()) {
				t.Fatal("queue shut down")
			}
			expectWrites(t, "upstream", env.upstreamDynamic.Actions(), []string{"patch configmaps"})
			expectFinalizerRelease(t, findAction[clienttesting.PatchActionImpl](t, env.upstreamDynamic.Actions(), "patch", "configmaps"), "web", "7", []string{"example.com/keep"})
			list := findAction[clienttesting.ListActionImpl](t, env.upstreamDynamic.Actions(), "list", "configmaps")
			// The fake keeps only the selectors of the list options.
			if list.ListOptions.LabelSelector != testStateKey {
				t.Errorf("listed with %q, want the state label selector", list.ListOptions.LabelSelector)
			}
			expectWrites(t, "downstream", env.downstreamDynamic.Actions(), nil)
			expectWrites(t, "downstream kube", env.downstreamKube.Actions(), nil)
			if state, _ := stateOf(e, configMapsResource); state != "" {
				t.Errorf("configmaps are still reported %q after their release", state)
			}
			expectEvents(t, env.events(), []string{corev1.EventTypeNormal + " " + eventReasonTypeReleased})

			// The next reconcile does not release again.
			env.upstreamDynamic.ClearActions()
			if err := e.reconcile(t.Context(), []resourceInfo{deploymentsInfo}, deploymentsOnly, []string{testWorkspace}, nil); err != nil {
				t.Fatal(err)
			}
			if n := env.typeReleases.queue.Len(); n != 0 {
				t.Errorf("%d release keys queued again after the release completed", n)
			}
		})
	}
}

// TestTypeReleaseSurvivesRestart: the list is forbidden; the failure is reported (status
// message, Event) and the type stays Releasing; a syncer restarted from that status still
// releases the objects.
func TestTypeReleaseSurvivesRestart(t *testing.T) {
	objs := typeRemovalObjects(t)
	objs.upstreamLiveOnly, objs.upstream = objs.upstream[:3], objs.upstream[3:]
	first := restartedTestEnv(t, objs, previousRun(workloadv1alpha1.ResourceStateAccepted))
	first.upstreamDynamic.PrependReactor("list", "configmaps", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(configMapsGVR.GroupResource(), "", nil)
	})
	if err := first.engine.reconcile(t.Context(), []resourceInfo{deploymentsInfo}, deploymentsOnly, []string{testWorkspace}, nil); err != nil {
		t.Fatal(err)
	}
	first.typeReleases.queue.ProcessNext(t.Context())
	expectWrites(t, "upstream", first.upstreamDynamic.Actions(), nil)
	state, msg := stateOf(first.engine, configMapsResource)
	if state != workloadv1alpha1.ResourceStateReleasing || !strings.Contains(msg, "forbidden") || !strings.Contains(msg, testWorkspace) {
		t.Errorf("configmaps reported %q %q, want Releasing with the forbidden workspace", state, msg)
	}
	expectEvents(t, first.events(), []string{corev1.EventTypeWarning + " " + eventReasonTypeReleaseFailed})
	if got := first.typeReleases.queue.Failures(typeReleaseKey{workspace: testWorkspace, resource: configMapsResource, version: "v1"}); got != 1 {
		t.Errorf("the queue counts %d failures, want the key retried by the queue's rule", got)
	}

	// Restarted: the status the first run reported is all the second knows.
	second := restartedTestEnv(t, objs, first.engine.reportedResources())
	if err := second.engine.reconcile(t.Context(), []resourceInfo{deploymentsInfo}, deploymentsOnly, []string{testWorkspace}, nil); err != nil {
		t.Fatal(err)
	}
	second.typeReleases.queue.ProcessNext(t.Context())
	expectWrites(t, "upstream after the restart", second.upstreamDynamic.Actions(), []string{"patch configmaps"})
}

// TestTypeReleasePaginates: every page of the live list is released.
func TestTypeReleasePaginates(t *testing.T) {
	first, second := upstreamConfigMap("a"), upstreamConfigMap("b")
	env := restartedTestEnv(t, testObjects{upstreamLiveOnly: []*unstructured.Unstructured{first, second}}, previousRun(workloadv1alpha1.ResourceStateAccepted))
	// The fake drops Limit and Continue from the recorded options: the pages are served in
	// order, and a client that did not follow the continue token would see only the first.
	lists := 0
	env.upstreamDynamic.PrependReactor("list", "configmaps", func(clienttesting.Action) (bool, runtime.Object, error) {
		lists++
		list := &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMapList"}}
		if lists == 1 {
			list.SetContinue("page-2")
			list.Items = []unstructured.Unstructured{*first.DeepCopy()}
		} else {
			list.Items = []unstructured.Unstructured{*second.DeepCopy()}
		}
		return true, list, nil
	})
	if err := env.engine.reconcile(t.Context(), []resourceInfo{deploymentsInfo}, deploymentsOnly, []string{testWorkspace}, nil); err != nil {
		t.Fatal(err)
	}
	env.typeReleases.queue.ProcessNext(t.Context())
	expectWrites(t, "upstream", env.upstreamDynamic.Actions(), []string{"patch configmaps", "patch configmaps"})
	if lists != 2 {
		t.Errorf("listed %d pages, want 2", lists)
	}
}

// TestTypeReleaseStopsWhenTypeComesBack: a type accepted again before its release ran is
// not released (its finalizer is the spec controller's again) and no longer reported
// Releasing.
func TestTypeReleaseStopsWhenTypeComesBack(t *testing.T) {
	objs := typeRemovalObjects(t)
	objs.upstreamLiveOnly, objs.upstream = objs.upstream[:3], objs.upstream[3:]
	env := restartedTestEnv(t, objs, previousRun(workloadv1alpha1.ResourceStateAccepted))
	e := env.engine
	if err := e.reconcile(t.Context(), []resourceInfo{deploymentsInfo}, deploymentsOnly, []string{testWorkspace}, nil); err != nil {
		t.Fatal(err)
	}
	// Accepted again (as the next reconcile does first), before the queued key runs.
	e.mu.Lock()
	e.resources[configMapsGVR] = configMapsInfo
	e.mu.Unlock()
	env.typeReleases.queue.ProcessNext(t.Context())
	expectWrites(t, "upstream", env.upstreamDynamic.Actions(), nil)

	env.typeReleases.track(t.Context(), nil, map[schema.GroupVersionResource]resourceInfo{configMapsGVR: configMapsInfo, deploymentsGVR: deploymentsInfo}, nil, []string{testWorkspace})
	if state, _ := stateOf(e, configMapsResource); state == workloadv1alpha1.ResourceStateReleasing {
		t.Error("configmaps are still reported Releasing though they are synced again")
	}
}

// TestUnauthorizedTypeBeingReleasedStillCounts: a type that turned Unauthorized is reported
// Releasing, but the decisions still see it Unauthorized: namespace cleanup waits (the
// syncer cannot tell whether a namespace is empty) and SyncerAuthorized is False.
func TestUnauthorizedTypeBeingReleasedStillCounts(t *testing.T) {
	env := restartedTestEnv(t, testObjects{}, previousRun(workloadv1alpha1.ResourceStateAccepted))
	states := append([]workloadv1alpha1.SyncedResource{{ResourceToSync: configMapsResource, Versions: []string{"v1"},
		State: workloadv1alpha1.ResourceStateUnauthorized, Message: "the syncer may not list configmaps"}}, deploymentsOnly...)
	if err := env.engine.reconcile(t.Context(), []resourceInfo{deploymentsInfo}, states, []string{testWorkspace}, nil); err != nil {
		t.Fatal(err)
	}
	state, msg := stateOf(env.engine, configMapsResource)
	if state != workloadv1alpha1.ResourceStateReleasing || !strings.Contains(msg, "Unauthorized") {
		t.Errorf("configmaps reported %q %q, want Releasing saying it is Unauthorized", state, msg)
	}
	if err := env.namespaces.cachesReady(testWorkspace); err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Errorf("namespace cleanup ready (%v) while configmaps are Unauthorized", err)
	}
	for _, c := range env.reporter.buildStatus(t.Context(), nil)["conditions"].([]metav1.Condition) {
		if c.Type == workloadv1alpha1.SyncTargetSyncerAuthorized && c.Status != metav1.ConditionFalse {
			t.Errorf("SyncerAuthorized is %s while configmaps are Unauthorized", c.Status)
		}
	}
}
