package syncer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

var (
	acceptedConfigMaps  = workloadv1alpha1.SyncedResource{ResourceToSync: workloadv1alpha1.ResourceToSync{Resource: "configmaps"}, Versions: []string{"v1"}, State: workloadv1alpha1.ResourceStateAccepted}
	acceptedDeployments = workloadv1alpha1.SyncedResource{ResourceToSync: workloadv1alpha1.ResourceToSync{Group: "apps", Resource: "deployments"}, Versions: []string{"v1"}, State: workloadv1alpha1.ResourceStateAccepted}
	unauthorizedSecrets = workloadv1alpha1.SyncedResource{ResourceToSync: workloadv1alpha1.ResourceToSync{Resource: "secrets"}, State: workloadv1alpha1.ResourceStateUnauthorized, Message: "the syncer may not delete secrets"}
	incompatibleIngress = workloadv1alpha1.SyncedResource{ResourceToSync: workloadv1alpha1.ResourceToSync{Group: "networking.k8s.io", Resource: "ingresses"}, State: workloadv1alpha1.ResourceStateIncompatible}
)

type wantCondition struct {
	status  metav1.ConditionStatus
	reason  string
	message string // substring
}

func TestTMCIntegrationStatusConditions(t *testing.T) {
	allAccepted := []workloadv1alpha1.SyncedResource{acceptedConfigMaps, acceptedDeployments}
	ready := wantCondition{metav1.ConditionTrue, workloadv1alpha1.ReasonSyncerStarted, "caches are synced"}
	authorized := wantCondition{metav1.ConditionTrue, workloadv1alpha1.ReasonSyncerAuthorized, "every accepted resource type"}
	inSync := wantCondition{metav1.ConditionTrue, workloadv1alpha1.ReasonAllResourcesSynced, "Every object is in sync"}

	tests := []struct {
		name         string
		notStarted   bool
		notSynced    bool
		states       []workloadv1alpha1.SyncedResource
		failing      map[string]tmc.TMCErrorType
		want         map[string]wantCondition
		wantAccepted int32
	}{
		{
			name:         "running, authorized, in sync",
			states:       allAccepted,
			want:         map[string]wantCondition{workloadv1alpha1.SyncTargetSyncerReady: ready, workloadv1alpha1.SyncTargetSyncerAuthorized: authorized, workloadv1alpha1.SyncTargetResourcesSynced: inSync},
			wantAccepted: 2,
		},
		{
			name:       "not started",
			notStarted: true,
			states:     allAccepted,
			want: map[string]wantCondition{
				workloadv1alpha1.SyncTargetSyncerReady: {metav1.ConditionFalse, workloadv1alpha1.ReasonSyncerStarting, ""},
			},
			wantAccepted: 2,
		},
		{
			name:      "caches not synced",
			notSynced: true,
			states:    allAccepted,
			want: map[string]wantCondition{
				workloadv1alpha1.SyncTargetSyncerReady: {metav1.ConditionFalse, workloadv1alpha1.ReasonSyncerStarting, "Waiting for caches to sync: downstream namespaces"},
			},
			wantAccepted: 2,
		},
		{
			name:   "a resource type is unauthorized",
			states: []workloadv1alpha1.SyncedResource{acceptedConfigMaps, incompatibleIngress, unauthorizedSecrets},
			want: map[string]wantCondition{
				workloadv1alpha1.SyncTargetSyncerReady:      ready,
				workloadv1alpha1.SyncTargetSyncerAuthorized: {metav1.ConditionFalse, workloadv1alpha1.ReasonSyncerUnauthorized, "lacks permissions in the physical cluster for: secrets"},
				workloadv1alpha1.SyncTargetResourcesSynced:  inSync,
			},
			wantAccepted: 1,
		},
		{
			name:   "keys failing",
			states: allAccepted,
			failing: map[string]tmc.TMCErrorType{
				"spec|a":   tmc.TMCErrorTypeResourceConflict,
				"spec|b":   tmc.TMCErrorTypeResourceConflict,
				"status|c": tmc.TMCErrorTypeClusterUnreachable,
			},
			want: map[string]wantCondition{
				workloadv1alpha1.SyncTargetSyncerReady:      ready,
				workloadv1alpha1.SyncTargetSyncerAuthorized: authorized,
				workloadv1alpha1.SyncTargetResourcesSynced:  {metav1.ConditionFalse, workloadv1alpha1.ReasonResourceSyncErrors, "Objects failing to sync: 1 ClusterUnreachable, 2 ResourceConflict"},
			},
			wantAccepted: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, testObjects{})
			env.started.Store(!tc.notStarted)
			env.namespacesSynced.Store(!tc.notSynced)
			env.engine.resourceStates = tc.states
			for id, typ := range tc.failing {
				env.errors.setFailing(id, typ)
			}

			status := env.reporter.buildStatus(t.Context(), nil)
			conds := status["conditions"].([]metav1.Condition)
			if len(conds) != 3 {
				t.Errorf("got %d conditions, want SyncerReady, SyncerAuthorized and ResourcesSynced", len(conds))
			}
			for typ, want := range tc.want {
				c := meta.FindStatusCondition(conds, typ)
				if c == nil {
					t.Errorf("missing condition %s", typ)
					continue
				}
				if c.Status != want.status || c.Reason != want.reason || !strings.Contains(c.Message, want.message) {
					t.Errorf("got %s=%s (%s: %q), want %s (%s: ...%q...)", typ, c.Status, c.Reason, c.Message, want.status, want.reason, want.message)
				}
			}
			if got := status["acceptedResourceCount"]; got != tc.wantAccepted {
				t.Errorf("got acceptedResourceCount %v, want %d", got, tc.wantAccepted)
			}
			if got := status["syncedResources"].([]workloadv1alpha1.SyncedResource); len(got) != len(tc.states) {
				t.Errorf("got syncedResources %v, want %v", got, tc.states)
			}
			if info := status["syncer"].(workloadv1alpha1.SyncerInfo); info.Pod != "tmc-system/syncer-0" || info.StartTime == nil {
				t.Errorf("got syncer info %+v, want the pod and start time", info)
			}
			if _, err := time.Parse(time.RFC3339, status["lastSyncerHeartbeatTime"].(string)); err != nil {
				t.Errorf("invalid heartbeat time: %v", err)
			}
			if _, ok := status["errors"]; ok {
				t.Errorf("no error was recorded, but the status has an error summary: %v", status["errors"])
			}
		})
	}
}

func TestTMCIntegrationStatusKeepsTransitionTime(t *testing.T) {
	env := newTestEnv(t, testObjects{})
	env.started.Store(true)
	env.engine.resourceStates = []workloadv1alpha1.SyncedResource{acceptedConfigMaps}
	env.errors.setFailing("spec|a", tmc.TMCErrorTypeQuotaExceeded)

	before := metav1.NewTime(time.Date(2025, time.June, 1, 0, 0, 0, 0, time.UTC))
	current := &workloadv1alpha1.SyncTarget{Status: workloadv1alpha1.SyncTargetStatus{Conditions: []metav1.Condition{
		{Type: workloadv1alpha1.SyncTargetSyncerReady, Status: metav1.ConditionTrue, Reason: workloadv1alpha1.ReasonSyncerStarted, LastTransitionTime: before},
		{Type: workloadv1alpha1.SyncTargetSyncerAuthorized, Status: metav1.ConditionTrue, Reason: workloadv1alpha1.ReasonSyncerAuthorized, LastTransitionTime: before},
		{Type: workloadv1alpha1.SyncTargetResourcesSynced, Status: metav1.ConditionTrue, Reason: workloadv1alpha1.ReasonAllResourcesSynced, LastTransitionTime: before},
	}}}
	conds := env.reporter.buildStatus(t.Context(), current)["conditions"].([]metav1.Condition)
	for typ, wantKept := range map[string]bool{
		workloadv1alpha1.SyncTargetSyncerReady:      true,
		workloadv1alpha1.SyncTargetSyncerAuthorized: true,
		workloadv1alpha1.SyncTargetResourcesSynced:  false, // True → False
	} {
		c := meta.FindStatusCondition(conds, typ)
		if c == nil {
			t.Fatalf("missing condition %s", typ)
		}
		if kept := c.LastTransitionTime.Equal(&before); kept != wantKept {
			t.Errorf("%s: lastTransitionTime %v, want kept=%v", typ, c.LastTransitionTime, wantKept)
		}
	}
}

func TestTMCIntegrationStatusCapacityAndErrors(t *testing.T) {
	node := func(name, allocCPU, allocMem, capCPU, capMem string) runtime.Object {
		return &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: corev1.NodeStatus{
				Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(allocCPU), corev1.ResourceMemory: resource.MustParse(allocMem)},
				Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(capCPU), corev1.ResourceMemory: resource.MustParse(capMem)},
			},
		}
	}
	env := newTestEnv(t, testObjects{downstreamKubeLiveOnly: []runtime.Object{
		node("a", "1500m", "1Gi", "2", "2Gi"),
		node("b", "2", "3Gi", "4", "4Gi"),
	}})
	env.errors.record(tmc.NewTMCError(tmc.TMCErrorTypeResourceConflict, errors.New("exists"), "", "").WithResource("configmaps default/web").WithWorkspace(testWorkspace))

	status := env.reporter.buildStatus(t.Context(), nil)
	expectResources(t, "allocatable", status["allocatable"], corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("3500m"), corev1.ResourceMemory: resource.MustParse("4Gi")})
	expectResources(t, "capacity", status["capacity"], corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("6"), corev1.ResourceMemory: resource.MustParse("6Gi")})
	summary, ok := status["errors"].(*workloadv1alpha1.ErrorSummary)
	if !ok || summary.Counts["ResourceConflict"] != 1 || len(summary.Recent) != 1 || summary.Recent[0].Resource != "configmaps default/web" {
		t.Errorf("got error summary %+v, want the recorded ResourceConflict", status["errors"])
	}
}

func TestTMCIntegrationStatusNodesForbidden(t *testing.T) {
	env := newTestEnv(t, testObjects{})
	env.downstreamKube.PrependReactor("list", "nodes", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("nodes"), "", errors.New(`User "syncer" cannot list resource "nodes"`))
	})
	for range 2 {
		status := env.reporter.buildStatus(t.Context(), nil)
		if _, ok := status["allocatable"]; ok {
			t.Errorf("got allocatable %v without permission to list nodes", status["allocatable"])
		}
	}
	lists := 0
	for _, a := range env.downstreamKube.Actions() {
		if a.GetVerb() == "list" && a.GetResource().Resource == "nodes" {
			lists++
		}
	}
	if lists != 1 {
		t.Errorf("listed nodes %d times, want 1: a forbidden list is not retried every heartbeat", lists)
	}
}

func expectResources(t *testing.T, what string, got any, want corev1.ResourceList) {
	t.Helper()
	list, ok := got.(corev1.ResourceList)
	if !ok || len(list) != len(want) {
		t.Fatalf("got %s %v, want %v", what, got, want)
	}
	for name, q := range want {
		if g := list[name]; g.Cmp(q) != 0 {
			t.Errorf("%s %s: got %s, want %s", what, name, g.String(), q.String())
		}
	}
}

func TestTMCIntegrationErrorLog(t *testing.T) {
	conflictOn := func(resource string) *tmc.TMCError {
		return tmc.NewTMCError(tmc.TMCErrorTypeResourceConflict, errors.New("exists"), "", "").WithResource(resource).WithWorkspace(testWorkspace)
	}
	tests := []struct {
		name       string
		record     []*tmc.TMCError
		wantCounts map[string]int64
		wantRecent []string // "<type> <resource>", newest first
	}{
		{
			name: "nothing recorded",
		},
		{
			name:       "one entry per type and resource, newest first",
			record:     []*tmc.TMCError{conflictOn("a"), conflictOn("b"), conflictOn("a"), tmc.Classify(connectionRefused()).WithResource("a")},
			wantCounts: map[string]int64{"ResourceConflict": 3, "ClusterUnreachable": 1},
			wantRecent: []string{"ClusterUnreachable a", "ResourceConflict a", "ResourceConflict b"},
		},
		{
			name: "at most ten entries",
			record: func() []*tmc.TMCError {
				var out []*tmc.TMCError
				for i := range 12 {
					out = append(out, conflictOn(fmt.Sprintf("r%02d", i)))
				}
				return out
			}(),
			wantCounts: map[string]int64{"ResourceConflict": 12},
			wantRecent: []string{"ResourceConflict r11", "ResourceConflict r10", "ResourceConflict r09", "ResourceConflict r08", "ResourceConflict r07",
				"ResourceConflict r06", "ResourceConflict r05", "ResourceConflict r04", "ResourceConflict r03", "ResourceConflict r02"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newErrorLog()
			for _, e := range tc.record {
				l.record(e)
			}
			summary := l.summary()
			if tc.wantCounts == nil {
				if summary != nil {
					t.Errorf("got summary %+v, want none", summary)
				}
				return
			}
			if fmt.Sprint(summary.Counts) != fmt.Sprint(tc.wantCounts) {
				t.Errorf("got counts %v, want %v", summary.Counts, tc.wantCounts)
			}
			var recent []string
			for _, r := range summary.Recent {
				recent = append(recent, r.Type+" "+r.Resource)
			}
			if strings.Join(recent, "|") != strings.Join(tc.wantRecent, "|") {
				t.Errorf("got recent %q, want %q", recent, tc.wantRecent)
			}
		})
	}
}

func TestTMCIntegrationErrorLogTruncatesMessages(t *testing.T) {
	l := newErrorLog()
	l.record(tmc.NewTMCError(tmc.TMCErrorTypeInvalidResource, errors.New(strings.Repeat("x", 2000)), "", ""))
	summary := l.summary()
	if got := summary.Recent[0].Message; len(got) != 515 || !strings.HasSuffix(got, "...") {
		t.Errorf("got a %d-byte message, want 512 bytes and an ellipsis", len(got))
	}
	// The summary is a copy: the status reporter may hand it to the apiserver client.
	summary.Counts["InvalidResource"] = 100
	summary.Recent[0].Type = "changed"
	if again := l.summary(); again.Counts["InvalidResource"] != 1 || again.Recent[0].Type != "InvalidResource" {
		t.Errorf("modifying a summary changed the log: %+v", again)
	}
}

func TestStatusDeletionsPaused(t *testing.T) {
	env := newTestEnv(t, testObjects{})
	env.started.Store(true)
	env.reporter.breaker = env.breaker
	st := &workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{Name: testSyncTargetName, UID: testSyncTargetUID}}
	env.breaker.syncTarget = func() *workloadv1alpha1.SyncTarget { return st }
	paused := func(current *workloadv1alpha1.SyncTarget) metav1.Condition {
		t.Helper()
		conds := env.reporter.buildStatus(t.Context(), current)["conditions"].([]metav1.Condition)
		c := meta.FindStatusCondition(conds, workloadv1alpha1.SyncTargetDeletionsPaused)
		if c == nil {
			t.Fatalf("no DeletionsPaused condition in %+v", conds)
		}
		return *c
	}
	if c := paused(nil); c.Status != metav1.ConditionFalse || c.Reason != workloadv1alpha1.ReasonDeletionsWithinBudget {
		t.Fatalf("got %+v before any deletion, want False/DeletionsWithinBudget", c)
	}
	for i := range 11 {
		env.breaker.admit(t.Context(), plannedDeletion{workspace: testWorkspace, resource: "configmaps", downstreamNamespace: "ns", name: fmt.Sprint(i), reason: deletionUnscheduled, objects: 1})
	}
	first := paused(nil)
	if first.Status != metav1.ConditionTrue || first.Reason != workloadv1alpha1.ReasonDeletionBudgetExceeded || !strings.Contains(first.Message, "Held: 1 unscheduled") {
		t.Fatalf("got %+v after 11 deletions, want True/DeletionBudgetExceeded with the held count", first)
	}
	// Reported again with the first report as the current status: same condition, same
	// transition time.
	st.Status.Conditions = []metav1.Condition{first}
	before := metav1.NewTime(first.LastTransitionTime.Add(-time.Hour))
	st.Status.Conditions[0].LastTransitionTime = before
	if again := paused(st); !again.LastTransitionTime.Equal(&before) || again.Message != first.Message {
		t.Errorf("got %+v on the next heartbeat, want the condition unchanged and its transition time kept", again)
	}
}

func TestStatusReportComesForwardOnATrip(t *testing.T) {
	env := newTestEnv(t, testObjects{})
	env.started.Store(true)
	env.reporter.breaker = env.breaker
	env.reporter.interval = time.Hour
	syncTargets := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		workloadv1alpha1.SchemeGroupVersion.WithResource("synctargets"): "SyncTargetList",
	})
	syncTargets.PrependReactor("patch", "synctargets", func(action clienttesting.Action) (bool, runtime.Object, error) {
		return true, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "workload.kcp.io/v1alpha1", "kind": "SyncTarget", "metadata": map[string]any{"name": testSyncTargetName}}}, nil
	})
	env.reporter.syncTargets = syncTargets.Resource(workloadv1alpha1.SchemeGroupVersion.WithResource("synctargets"))
	reports := func() int {
		n := 0
		for _, a := range syncTargets.Actions() {
			if a.GetVerb() == "patch" && a.GetSubresource() == "status" {
				n++
			}
		}
		return n
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		env.reporter.run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the first report", func() bool { return reports() == 1 })
	for i := range 11 {
		env.breaker.admit(t.Context(), plannedDeletion{workspace: testWorkspace, resource: "configmaps", downstreamNamespace: "ns", name: fmt.Sprint(i), reason: deletionUnscheduled, objects: 1})
	}
	// With an hour between heartbeats, only the trip can bring the second report.
	waitFor(t, "a report right after the trip", func() bool { return reports() == 2 })
	last := syncTargets.Actions()[len(syncTargets.Actions())-1].(clienttesting.PatchAction)
	if !strings.Contains(string(last.GetPatch()), workloadv1alpha1.ReasonDeletionBudgetExceeded) {
		t.Errorf("the report after the trip does not carry DeletionsPaused: %s", last.GetPatch())
	}
}

// waitFor polls cond every 10ms for up to 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
