package location

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	"github.com/tmc-dev/tmc/pkg/workspaces"
	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcfake "github.com/tmc-dev/tmc/sdk/client/clientset/versioned/fake"
	tmcinformers "github.com/tmc-dev/tmc/sdk/client/informers/externalversions"
)

func TestLocationNewControllerValidation(t *testing.T) {
	full := func() *workspaces.Workspace {
		tmcClient := tmcfake.NewSimpleClientset()
		return &workspaces.Workspace{
			Path:         testWorkspace,
			Kube:         kubefake.NewClientset(),
			TMC:          tmcClient,
			TMCInformers: tmcinformers.NewSharedInformerFactory(tmcClient, 0),
		}
	}
	conflicting := tmc.NewTMCMetrics("test")
	conflicting.MustRegisterCounterVec(InstancesMetric, "not a gauge", []string{"workspace"})
	tests := []struct {
		name    string
		ws      func() *workspaces.Workspace
		metrics *tmc.TMCMetrics
		wantErr string
	}{
		{name: "valid", ws: full},
		{name: "valid with metrics", ws: full, metrics: tmc.NewTMCMetrics("test")},
		{name: "nil workspace", ws: func() *workspaces.Workspace { return nil }, wantErr: "workspace is nil"},
		{name: "no TMC client", ws: func() *workspaces.Workspace { w := full(); w.TMC = nil; return w }, wantErr: "TMC client"},
		{name: "no kube client", ws: func() *workspaces.Workspace { w := full(); w.Kube = nil; return w }, wantErr: "Kubernetes client"},
		{name: "no informers", ws: func() *workspaces.Workspace { w := full(); w.TMCInformers = nil; return w }, wantErr: "informer"},
		{name: "conflicting metric", ws: full, metrics: conflicting, wantErr: "metrics"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewController(tt.ws(), tt.metrics)
			if tt.wantErr == "" {
				if err != nil || c == nil {
					t.Fatalf("NewController = %v, %v", c, err)
				}
				c.queue.ShutDown()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewController error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// The whole controller on started informers: both Locations are counted on start, and a
// SyncTarget becoming Ready updates every Location that selects it.
func TestLocationControllerRun(t *testing.T) {
	locations := []*schedulingv1alpha1.Location{
		location("all", nil, nil, nil),
		location("eu", selector("region", "eu"), nil, nil),
		location("us", selector("region", "us"), nil, nil),
		location("bad", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "region", Operator: "Near"}}}, nil, nil),
	}
	targets := []*workloadv1alpha1.SyncTarget{
		syncTarget("eu-1", withLabels("region", "eu"), ready(metav1.ConditionTrue)),
		syncTarget("eu-2", withLabels("region", "eu"), ready(metav1.ConditionFalse)),
		syncTarget("us-1", withLabels("region", "us"), ready(metav1.ConditionTrue)),
	}
	f := newFixture(t, locations, targets)
	f.c.recorder = nil // Run records real Events
	// Run with the real informers, which fill the caches themselves.
	for _, l := range locations {
		_ = f.locationIndexer.Delete(l)
	}
	for _, st := range targets {
		_ = f.syncTargetIndexer.Delete(st)
	}

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait(); f.ws.TMCInformers.Shutdown() })
	f.ws.TMCInformers.Start(ctx.Done())
	wg.Go(func() { f.c.Run(ctx, 2) })

	waitFor := func(name string, instances, available int32) {
		t.Helper()
		err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
			loc, err := f.tmcClient.SchedulingV1alpha1().Locations().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return ptrEq(loc.Status.Instances, instances) && ptrEq(loc.Status.AvailableInstances, available), nil
		})
		if err != nil {
			loc, _ := f.tmcClient.SchedulingV1alpha1().Locations().Get(ctx, name, metav1.GetOptions{})
			t.Fatalf("Location %s status = %v/%v, want %d/%d", name, deref(loc.Status.Instances), deref(loc.Status.AvailableInstances), instances, available)
		}
	}
	waitFor("all", 3, 2)
	waitFor("eu", 2, 1)
	waitFor("us", 1, 1)

	st, err := f.tmcClient.WorkloadV1alpha1().SyncTargets().Get(ctx, "eu-2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st.Status.Conditions[0].Status = metav1.ConditionTrue
	st.ResourceVersion = "2"
	if _, err := f.tmcClient.WorkloadV1alpha1().SyncTargets().UpdateStatus(ctx, st, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("all", 3, 3)
	waitFor("eu", 2, 2)
	waitFor("us", 1, 1)

	if err := f.tmcClient.WorkloadV1alpha1().SyncTargets().Delete(ctx, "us-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("all", 2, 2)
	waitFor("us", 0, 0)
	waitFor("bad", 0, 0)

	// Events are sent asynchronously.
	err = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		events, err := f.ws.Kube.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range events.Items {
			if e.Reason == EventReasonInvalidInstanceSelector && e.InvolvedObject.Kind == "Location" && e.InvolvedObject.Name == "bad" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("no %s Event on Location bad: %v", EventReasonInvalidInstanceSelector, err)
	}
}

func ptrEq(p *int32, v int32) bool { return p != nil && *p == v }
