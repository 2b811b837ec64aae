package location

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// Reasons a Location's instances cannot be selected; both need the user to fix the spec.
var (
	errInvalidSelector     = errors.New("invalid spec.instanceSelector")
	errUnsupportedResource = errors.New("unsupported spec.resource")
)

// SelectionLabels returns what a Location's instanceSelector is matched against: the
// SyncTarget's spec.cells overlaid with its labels (a label wins over a cell of the same
// key).
func SelectionLabels(st *workloadv1alpha1.SyncTarget) labels.Set {
	out := make(labels.Set, len(st.Spec.Cells)+len(st.Labels))
	maps.Copy(out, st.Spec.Cells)
	maps.Copy(out, st.Labels)
	return out
}

// IsAvailable reports whether st can take new workloads at now: Ready=True, not
// unschedulable and not evicting (evictAfter unset or after now).
func IsAvailable(st *workloadv1alpha1.SyncTarget, now time.Time) bool {
	return meta.IsStatusConditionTrue(st.Status.Conditions, workloadv1alpha1.SyncTargetReady) &&
		!st.Spec.Unschedulable &&
		!isEvicting(st, now)
}

// isEvicting reports whether st's evictAfter has been reached.
func isEvicting(st *workloadv1alpha1.SyncTarget, now time.Time) bool {
	return st.Spec.EvictAfter != nil && !now.Before(st.Spec.EvictAfter.Time)
}

// InstanceSelector returns the selector of loc's instances. A nil or empty
// instanceSelector selects every SyncTarget. It fails for an invalid selector and for a
// spec.resource other than workload.kcp.io synctargets (empty means the default, which is
// synctargets).
func InstanceSelector(loc *schedulingv1alpha1.Location) (labels.Selector, error) {
	if r := loc.Spec.Resource; r != nil && *r != (schedulingv1alpha1.GroupVersionResource{}) &&
		(r.Group != workloadv1alpha1.GroupName || r.Resource != "synctargets") {
		return nil, fmt.Errorf("%w: spec.resource %s.%s is not synctargets.%s", errUnsupportedResource, r.Resource, r.Group, workloadv1alpha1.GroupName)
	}
	if loc.Spec.InstanceSelector == nil {
		return labels.Everything(), nil
	}
	selector, err := metav1.LabelSelectorAsSelector(loc.Spec.InstanceSelector)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalidSelector, err)
	}
	return selector, nil
}

// counts are the instance counts of a Location and when they next change by themselves.
type counts struct {
	instances int32
	available int32
	// requeueAfter is the time until the first future evictAfter of an instance that is
	// available now; 0 if there is none.
	requeueAfter time.Duration
}

// countInstances counts the targets selector selects and the available ones at now.
func countInstances(selector labels.Selector, targets []*workloadv1alpha1.SyncTarget, now time.Time) counts {
	var c counts
	for _, st := range targets {
		if !selector.Matches(SelectionLabels(st)) {
			continue
		}
		c.instances++
		if !IsAvailable(st, now) {
			continue
		}
		c.available++
		if st.Spec.EvictAfter != nil {
			// Available implies evictAfter is after now.
			if d := st.Spec.EvictAfter.Sub(now); c.requeueAfter == 0 || d < c.requeueAfter {
				c.requeueAfter = d
			}
		}
	}
	return c
}
