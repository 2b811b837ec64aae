package location

import (
	"errors"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func TestLocationInstanceSelector(t *testing.T) {
	eu := syncTarget("eu", withLabels("region", "eu", "tier", "gold"))
	us := syncTarget("us", withLabels("region", "us"))
	bare := syncTarget("bare")
	tests := []struct {
		name      string
		loc       func() *schedulingv1alpha1.Location
		wantErr   error
		wantMatch []string
	}{
		{name: "nil selects all", loc: func() *schedulingv1alpha1.Location { return location("l", nil, nil, nil) }, wantMatch: []string{"eu", "us", "bare"}},
		{name: "empty selects all", loc: func() *schedulingv1alpha1.Location { return location("l", &metav1.LabelSelector{}, nil, nil) }, wantMatch: []string{"eu", "us", "bare"}},
		{name: "matchLabels", loc: func() *schedulingv1alpha1.Location { return location("l", selector("region", "eu"), nil, nil) }, wantMatch: []string{"eu"}},
		{name: "matchExpressions", loc: func() *schedulingv1alpha1.Location {
			return location("l", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "region", Operator: metav1.LabelSelectorOpExists}}}, nil, nil)
		}, wantMatch: []string{"eu", "us"}},
		{name: "default (empty) resource", loc: func() *schedulingv1alpha1.Location {
			l := location("l", selector("region", "us"), nil, nil)
			l.Spec.Resource = &schedulingv1alpha1.GroupVersionResource{}
			return l
		}, wantMatch: []string{"us"}},
		{name: "invalid operator", loc: func() *schedulingv1alpha1.Location {
			return location("l", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "region", Operator: "Near"}}}, nil, nil)
		}, wantErr: errInvalidSelector},
		{name: "invalid label value", loc: func() *schedulingv1alpha1.Location {
			return location("l", selector("region", "not a value!"), nil, nil)
		}, wantErr: errInvalidSelector},
		{name: "other resource", loc: func() *schedulingv1alpha1.Location {
			l := location("l", nil, nil, nil)
			l.Spec.Resource = &schedulingv1alpha1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
			return l
		}, wantErr: errUnsupportedResource},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel, err := InstanceSelector(tt.loc())
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("InstanceSelector: %v", err)
			}
			var got []string
			for _, st := range []*workloadv1alpha1.SyncTarget{eu, us, bare} {
				if sel.Matches(SelectionLabels(st)) {
					got = append(got, st.Name)
				}
			}
			if !slices.Equal(got, tt.wantMatch) {
				t.Errorf("selected %v, want %v", got, tt.wantMatch)
			}
		})
	}
}

func TestLocationSelectionLabels(t *testing.T) {
	st := syncTarget("st", withLabels("region", "eu", "tier", "gold"), withCells("region", "us", "cloud", "aws"))
	got := SelectionLabels(st)
	want := labels.Set{"region": "eu", "tier": "gold", "cloud": "aws"}
	if !labels.Equals(got, want) {
		t.Errorf("SelectionLabels = %v, want %v (labels win over cells)", got, want)
	}
	if st.Labels["cloud"] != "" {
		t.Errorf("SelectionLabels modified the SyncTarget's labels")
	}
}

func TestLocationIsAvailable(t *testing.T) {
	now := t0
	tests := []struct {
		name string
		st   *workloadv1alpha1.SyncTarget
		want bool
	}{
		{name: "ready", st: syncTarget("st", ready(metav1.ConditionTrue)), want: true},
		{name: "Ready missing", st: syncTarget("st")},
		{name: "Ready False", st: syncTarget("st", ready(metav1.ConditionFalse))},
		{name: "Ready Unknown", st: syncTarget("st", ready(metav1.ConditionUnknown))},
		{name: "unschedulable", st: syncTarget("st", ready(metav1.ConditionTrue), unschedulable)},
		{name: "evicting since the past", st: syncTarget("st", ready(metav1.ConditionTrue), evictAfter(now.Add(-time.Second)))},
		{name: "evicting from now", st: syncTarget("st", ready(metav1.ConditionTrue), evictAfter(now))},
		{name: "evicting in the future", st: syncTarget("st", ready(metav1.ConditionTrue), evictAfter(now.Add(time.Second))), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsAvailable(tt.st, now); got != tt.want {
				t.Errorf("IsAvailable = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLocationSyncTargetUpdateFilter(t *testing.T) {
	base := syncTarget("st", withLabels("region", "eu"), ready(metav1.ConditionTrue))
	heartbeat := base.DeepCopy()
	heartbeat.Status.LastSyncerHeartbeatTime = &metav1.Time{Time: t0}
	heartbeat.Status.Conditions[0].Message = "new message"
	tests := []struct {
		name   string
		change func(*workloadv1alpha1.SyncTarget)
		want   bool
	}{
		{name: "heartbeat only", change: func(st *workloadv1alpha1.SyncTarget) { *st = *heartbeat.DeepCopy() }},
		{name: "label changed", change: func(st *workloadv1alpha1.SyncTarget) { st.Labels["region"] = "us" }, want: true},
		{name: "cell added", change: withCells("cloud", "aws"), want: true},
		{name: "cordoned", change: unschedulable, want: true},
		{name: "drain scheduled", change: evictAfter(t0), want: true},
		{name: "became unready", change: func(st *workloadv1alpha1.SyncTarget) { st.Status.Conditions[0].Status = metav1.ConditionFalse }, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			updated := base.DeepCopy()
			tt.change(updated)
			if got := countsMayDiffer(base, updated); got != tt.want {
				t.Errorf("countsMayDiffer = %v, want %v", got, tt.want)
			}
		})
	}
}
