package location

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"

	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func TestLocationReconcile(t *testing.T) {
	readyEU := syncTarget("eu-1", withLabels("region", "eu"), ready(metav1.ConditionTrue))
	unreadyEU := syncTarget("eu-2", withLabels("region", "eu"), ready(metav1.ConditionFalse))
	cellEU := syncTarget("eu-3", withCells("region", "eu"), ready(metav1.ConditionTrue))
	readyUS := syncTarget("us-1", withLabels("region", "us"), ready(metav1.ConditionTrue))
	noReadyCondition := syncTarget("eu-4", withLabels("region", "eu"))
	cordonedEU := syncTarget("eu-5", withLabels("region", "eu"), ready(metav1.ConditionTrue), unschedulable)
	drainedEU := syncTarget("eu-6", withLabels("region", "eu"), ready(metav1.ConditionTrue), evictAfter(t0.Add(-time.Minute)))
	drainingSoonEU := syncTarget("eu-7", withLabels("region", "eu"), ready(metav1.ConditionTrue), evictAfter(t0.Add(90*time.Second)))
	drainingLaterEU := syncTarget("eu-8", withLabels("region", "eu"), ready(metav1.ConditionTrue), evictAfter(t0.Add(time.Hour)))
	unreadyDrainingEU := syncTarget("eu-9", withLabels("region", "eu"), ready(metav1.ConditionFalse), evictAfter(t0.Add(time.Second)))

	tests := []struct {
		name          string
		loc           *schedulingv1alpha1.Location
		targets       []*workloadv1alpha1.SyncTarget
		wantWrite     bool
		wantInstances int32
		wantAvailable int32
		wantRequeue   time.Duration
		wantEvent     string
	}{
		{
			name:      "nil selector counts every target",
			loc:       location("all", nil, nil, nil),
			targets:   []*workloadv1alpha1.SyncTarget{readyEU, unreadyEU, readyUS},
			wantWrite: true, wantInstances: 3, wantAvailable: 2,
		},
		{
			name:      "empty selector counts every target",
			loc:       location("all", &metav1.LabelSelector{}, nil, nil),
			targets:   []*workloadv1alpha1.SyncTarget{readyEU, readyUS},
			wantWrite: true, wantInstances: 2, wantAvailable: 2,
		},
		{
			name:      "selector by label and by cell",
			loc:       location("eu", selector("region", "eu"), nil, nil),
			targets:   []*workloadv1alpha1.SyncTarget{readyEU, unreadyEU, cellEU, readyUS, noReadyCondition},
			wantWrite: true, wantInstances: 4, wantAvailable: 2,
		},
		{
			name:      "no targets yet",
			loc:       location("eu", selector("region", "eu"), nil, nil),
			wantWrite: true, wantInstances: 0, wantAvailable: 0,
		},
		{
			name:          "unchanged: no write",
			loc:           location("eu", selector("region", "eu"), i32(2), i32(1)),
			targets:       []*workloadv1alpha1.SyncTarget{readyEU, unreadyEU, readyUS},
			wantInstances: 2, wantAvailable: 1,
		},
		{
			name:      "only availableInstances changed",
			loc:       location("eu", selector("region", "eu"), i32(2), i32(2)),
			targets:   []*workloadv1alpha1.SyncTarget{readyEU, unreadyEU},
			wantWrite: true, wantInstances: 2, wantAvailable: 1,
		},
		{
			name:      "unschedulable is an instance but not available",
			loc:       location("eu", selector("region", "eu"), nil, nil),
			targets:   []*workloadv1alpha1.SyncTarget{readyEU, cordonedEU},
			wantWrite: true, wantInstances: 2, wantAvailable: 1,
		},
		{
			name:      "evictAfter in the past is not available",
			loc:       location("eu", selector("region", "eu"), nil, nil),
			targets:   []*workloadv1alpha1.SyncTarget{readyEU, drainedEU},
			wantWrite: true, wantInstances: 2, wantAvailable: 1,
		},
		{
			name:      "evictAfter in the future is available until then",
			loc:       location("eu", selector("region", "eu"), nil, nil),
			targets:   []*workloadv1alpha1.SyncTarget{readyEU, drainingLaterEU, drainingSoonEU},
			wantWrite: true, wantInstances: 3, wantAvailable: 3,
			wantRequeue: 90 * time.Second,
		},
		{
			name:          "unchanged but draining soon: no write, requeued for the drain",
			loc:           location("eu", selector("region", "eu"), i32(2), i32(2)),
			targets:       []*workloadv1alpha1.SyncTarget{readyEU, drainingSoonEU},
			wantInstances: 2, wantAvailable: 2,
			wantRequeue: 90 * time.Second,
		},
		{
			name:          "an unavailable target's evictAfter needs no requeue",
			loc:           location("eu", selector("region", "eu"), i32(2), i32(1)),
			targets:       []*workloadv1alpha1.SyncTarget{readyEU, unreadyDrainingEU},
			wantInstances: 2, wantAvailable: 1,
		},
		{
			name: "invalid selector counts nothing and warns",
			loc: location("bad", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "region", Operator: "Near"}}},
				i32(3), i32(3)),
			targets:   []*workloadv1alpha1.SyncTarget{readyEU},
			wantWrite: true, wantInstances: 0, wantAvailable: 0,
			wantEvent: "Warning " + EventReasonInvalidInstanceSelector,
		},
		{
			name: "unsupported resource counts nothing and warns",
			loc: func() *schedulingv1alpha1.Location {
				l := location("deploy", nil, nil, nil)
				l.Spec.Resource = &schedulingv1alpha1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
				return l
			}(),
			targets:   []*workloadv1alpha1.SyncTarget{readyEU},
			wantWrite: true, wantInstances: 0, wantAvailable: 0,
			wantEvent: "Warning " + EventReasonInvalidInstanceSelector,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, []*schedulingv1alpha1.Location{tt.loc}, tt.targets)
			requeue, err := f.c.reconcile(t.Context(), tt.loc.Name)
			if err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			if requeue != tt.wantRequeue {
				t.Errorf("requeue after %s, want %s", requeue, tt.wantRequeue)
			}
			updates := f.statusUpdates()
			if !tt.wantWrite {
				if n := f.writes(); n != 0 {
					t.Fatalf("wrote %d times, want no write", n)
				}
			} else {
				if len(updates) != 1 || f.writes() != 1 {
					t.Fatalf("%d status updates (%d writes), want 1", len(updates), f.writes())
				}
				got := updates[0]
				if got.Status.Instances == nil || *got.Status.Instances != tt.wantInstances ||
					got.Status.AvailableInstances == nil || *got.Status.AvailableInstances != tt.wantAvailable {
					t.Errorf("status = %v/%v, want instances %d, available %d",
						deref(got.Status.Instances), deref(got.Status.AvailableInstances), tt.wantInstances, tt.wantAvailable)
				}
				if !equality.Semantic.DeepEqual(got.Spec, tt.loc.Spec) {
					t.Errorf("status update changed the spec")
				}
			}
			events := f.events()
			switch {
			case tt.wantEvent == "" && len(events) != 0:
				t.Errorf("unexpected Events %q", events)
			case tt.wantEvent != "" && (len(events) != 1 || !strings.HasPrefix(events[0], tt.wantEvent)):
				t.Errorf("Events %q, want one %q", events, tt.wantEvent)
			}
			if got := testutil.ToFloat64(f.c.metrics.instances.WithLabelValues(testWorkspace, tt.loc.Name)); got != float64(tt.wantInstances) {
				t.Errorf("%s = %v, want %d", InstancesMetric, got, tt.wantInstances)
			}
			if got := testutil.ToFloat64(f.c.metrics.available.WithLabelValues(testWorkspace, tt.loc.Name)); got != float64(tt.wantAvailable) {
				t.Errorf("%s = %v, want %d", AvailableInstancesMetric, got, tt.wantAvailable)
			}
		})
	}
}

func deref(p *int32) any {
	if p == nil {
		return "<nil>"
	}
	return *p
}

// A target that starts draining in the future is counted as available until exactly then.
func TestLocationEvictionAtRequeueTime(t *testing.T) {
	draining := syncTarget("st", ready(metav1.ConditionTrue), evictAfter(t0.Add(time.Minute)))
	loc := location("all", nil, i32(1), i32(1))
	f := newFixture(t, []*schedulingv1alpha1.Location{loc}, []*workloadv1alpha1.SyncTarget{draining})

	f.clock.SetTime(t0.Add(15 * time.Second))
	requeue, err := f.c.reconcile(t.Context(), "all")
	if err != nil || requeue != 45*time.Second {
		t.Fatalf("reconcile = %s, %v; want requeue after the remaining 45s", requeue, err)
	}
	if f.writes() != 0 {
		t.Fatalf("wrote before the drain")
	}

	f.clock.SetTime(t0.Add(time.Minute))
	requeue, err = f.c.reconcile(t.Context(), "all")
	if err != nil || requeue != 0 {
		t.Fatalf("reconcile = %s, %v; want no requeue once evicting", requeue, err)
	}
	updates := f.statusUpdates()
	if len(updates) != 1 || *updates[0].Status.Instances != 1 || *updates[0].Status.AvailableInstances != 0 {
		t.Fatalf("status updates %+v, want instances 1, available 0", updates)
	}
}

func TestLocationUpdateStatusErrors(t *testing.T) {
	gr := schedulingv1alpha1.Resource("locations")
	tests := []struct {
		name    string
		err     error
		wantErr bool
	}{
		{name: "deleted meanwhile", err: apierrors.NewNotFound(gr, "all")},
		{name: "conflict", err: apierrors.NewConflict(gr, "all", nil), wantErr: true},
		{name: "forbidden", err: apierrors.NewForbidden(gr, "all", nil), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, []*schedulingv1alpha1.Location{location("all", nil, nil, nil)}, nil)
			f.tmcClient.PrependReactor("update", "locations", func(clienttesting.Action) (bool, runtime.Object, error) {
				return true, nil, tt.err
			})
			_, err := f.c.reconcile(t.Context(), "all")
			if (err != nil) != tt.wantErr {
				t.Fatalf("reconcile error = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestLocationDeleted(t *testing.T) {
	loc := location("all", nil, nil, nil)
	f := newFixture(t, []*schedulingv1alpha1.Location{loc}, nil)
	if _, err := f.c.reconcile(t.Context(), "all"); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if n := testutil.CollectAndCount(f.c.metrics.instances); n != 1 {
		t.Fatalf("%d %s series, want 1", n, InstancesMetric)
	}
	if err := f.locationIndexer.Delete(loc); err != nil {
		t.Fatal(err)
	}
	f.tmcClient.ClearActions()
	if requeue, err := f.c.reconcile(t.Context(), "all"); err != nil || requeue != 0 {
		t.Fatalf("reconcile of a deleted Location = %s, %v", requeue, err)
	}
	if f.writes() != 0 {
		t.Errorf("wrote for a deleted Location")
	}
	if n := testutil.CollectAndCount(f.c.metrics.instances) + testutil.CollectAndCount(f.c.metrics.available); n != 0 {
		t.Errorf("%d series left for a deleted Location", n)
	}
}
