package syncer

import (
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const brokenWorkspace = "root:org:team-b"

// addWorkspace watches another workspace whose informers report synced as given; its
// lists answer listErr (nil: an empty list).
func (env *testEnv) addWorkspace(t *testing.T, ws string, synced bool, listErr error) *record.FakeRecorder {
	t.Helper()
	upstreamDynamic := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), testListKinds)
	if listErr != nil {
		upstreamDynamic.PrependReactor("list", "*", func(clienttesting.Action) (bool, runtime.Object, error) {
			return true, nil, listErr
		})
	}
	recorder := record.NewFakeRecorder(10)
	e := env.engine
	e.upstreamWorkspaces[ws] = &upstreamWorkspace{dynamic: upstreamDynamic, recorder: recorder, stopEvents: func() {}}
	e.clusterNames[ws], e.workspacesByName[testClusterName(ws)] = testClusterName(ws), ws
	for gvr := range e.resources {
		h := env.handle(newIndexer(), gvr)
		h.hasSynced = func() bool { return synced }
		e.upstreamInformers[upstreamInformerKey{workspace: ws, gvr: gvr}] = h
	}
	return recorder
}

func forbiddenToList(resource string) error {
	return apierrors.NewForbidden(schema.GroupResource{Resource: resource}, "", errors.New(`User "syncer-east" cannot list resource "`+resource+`"`))
}

func TestSyncerReadyIgnoresAnUnreadableWorkspace(t *testing.T) {
	env := newTestEnv(t, testObjects{})
	env.started.Store(true)
	env.addWorkspace(t, brokenWorkspace, false, forbiddenToList("configmaps"))
	checks := env.healthChecks(nil)

	if err := checks.checkResourceControllers(t.Context()); err != nil {
		t.Errorf("readiness failed because one workspace cannot be read: %v", err)
	}
	conds := env.reporter.buildStatus(t.Context(), nil)["conditions"].([]metav1.Condition)
	if c := meta.FindStatusCondition(conds, workloadv1alpha1.SyncTargetSyncerReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("got SyncerReady %+v with one unreadable workspace, want True", c)
	}

	// The syncer's own side still counts: downstream informers not synced → not ready.
	env.informersSynced.Store(false)
	if err := checks.checkResourceControllers(t.Context()); err == nil || !strings.Contains(err.Error(), "downstream") {
		t.Errorf("got %v with the downstream informers unsynced, want a downstream error", err)
	}
	conds = env.reporter.buildStatus(t.Context(), nil)["conditions"].([]metav1.Condition)
	if c := meta.FindStatusCondition(conds, workloadv1alpha1.SyncTargetSyncerReady); c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "downstream") {
		t.Errorf("got SyncerReady %+v with the downstream informers unsynced, want False", c)
	}
}

func TestWorkspaceHealth(t *testing.T) {
	tests := []struct {
		name        string
		synced      bool
		noInformers bool
		listErr     error
		wantReady   bool
		wantReason  string
		wantMessage string
		wantEvent   string // prefix; "" for none
	}{
		{name: "synced", synced: true, wantReady: true},
		{name: "forbidden", listErr: forbiddenToList("configmaps"), wantReason: workloadv1alpha1.WorkspaceForbidden,
			wantMessage: `cannot list resource "configmaps"`, wantEvent: "Warning WorkspaceNotSynced"},
		{name: "unauthorized", listErr: apierrors.NewUnauthorized("invalid token"), wantReason: workloadv1alpha1.WorkspaceUnauthorized,
			wantMessage: "credentials", wantEvent: "Warning WorkspaceNotSynced"},
		{name: "unreachable", listErr: apierrors.NewServiceUnavailable("workspace is unavailable"), wantReason: workloadv1alpha1.WorkspaceUnreachable,
			wantMessage: "unavailable", wantEvent: "Warning WorkspaceNotSynced"},
		{name: "still syncing", wantReason: workloadv1alpha1.WorkspaceSyncing, wantMessage: "Waiting for the informer"},
		{name: "serves nothing", noInformers: true, wantReason: workloadv1alpha1.WorkspaceUnreachable, wantMessage: "serves none", wantEvent: "Warning WorkspaceNotSynced"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, testObjects{})
			env.started.Store(true)
			env.reporter.workspaceHealth = newWorkspaceHealthChecker(env.reporter.target)
			recorder := env.addWorkspace(t, brokenWorkspace, tc.synced, tc.listErr)
			if tc.noInformers {
				for k := range env.engine.upstreamInformers {
					if k.workspace == brokenWorkspace {
						delete(env.engine.upstreamInformers, k)
					}
				}
			}
			var health []workloadv1alpha1.WorkspaceHealth
			for range 3 { // three heartbeats: the Event is recorded once
				health = env.reporter.buildStatus(t.Context(), nil)["workspaceHealth"].([]workloadv1alpha1.WorkspaceHealth)
			}
			if len(health) != 2 || health[0].Path != testWorkspace || health[1].Path != brokenWorkspace {
				t.Fatalf("got workspaceHealth %+v, want both workspaces, sorted", health)
			}
			if !health[0].Ready {
				t.Errorf("the readable workspace is reported %+v", health[0])
			}
			got := health[1]
			if got.Ready != tc.wantReady || got.Reason != tc.wantReason || !strings.Contains(got.Message, tc.wantMessage) {
				t.Errorf("got %+v, want ready=%v reason %q message ...%q...", got, tc.wantReady, tc.wantReason, tc.wantMessage)
			}
			events := drainEvents(recorder)
			if tc.wantEvent == "" {
				if len(events) != 0 {
					t.Errorf("got events %q, want none", events)
				}
				return
			}
			if len(events) != 1 || !strings.HasPrefix(events[0], tc.wantEvent) {
				t.Fatalf("got events %q, want one %q", events, tc.wantEvent)
			}

			// The workspace recovers: one Normal Event.
			for k, h := range env.engine.upstreamInformers {
				if k.workspace == brokenWorkspace {
					h.hasSynced = func() bool { return true }
				}
			}
			if tc.noInformers {
				env.addWorkspace(t, brokenWorkspace, true, nil)
				recorder = env.engine.upstreamWorkspaces[brokenWorkspace].recorder.(*record.FakeRecorder)
			}
			health = env.reporter.buildStatus(t.Context(), nil)["workspaceHealth"].([]workloadv1alpha1.WorkspaceHealth)
			if !health[1].Ready {
				t.Errorf("got %+v after recovery, want ready", health[1])
			}
			if events := drainEvents(recorder); len(events) != 1 || !strings.HasPrefix(events[0], "Normal WorkspaceSynced") {
				t.Errorf("got events %q after recovery, want one WorkspaceSynced", events)
			}
		})
	}
}

func TestWorkspaceHealthTruncatesMessages(t *testing.T) {
	env := newTestEnv(t, testObjects{})
	checker := newWorkspaceHealthChecker(env.reporter.target)
	env.addWorkspace(t, brokenWorkspace, false, apierrors.NewServiceUnavailable(strings.Repeat("x", 5000)))
	health := checker.check(t.Context(), env.engine.workspaceSyncStates())
	if got := len(health[1].Message); got != maxWorkspaceHealthMessage+3 {
		t.Errorf("got a %d-byte message, want %d and an ellipsis", got, maxWorkspaceHealthMessage)
	}
}
