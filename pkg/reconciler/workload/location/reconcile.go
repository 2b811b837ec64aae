package location

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

// reconcile brings the instance counts of the Location name up to date and returns when it
// must be counted again without any change (0: only on the next change).
func (c *Controller) reconcile(ctx context.Context, name string) (time.Duration, error) {
	logger := klog.FromContext(ctx)

	loc, err := c.locationLister.Get(name)
	if apierrors.IsNotFound(err) {
		logger.V(4).Info("Location is gone")
		c.metrics.forget(name)
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("failed to get Location %s: %w", name, err)
	}

	var got counts
	selector, err := InstanceSelector(loc)
	if err != nil {
		// Nothing is selected until the user fixes the spec; the spec change requeues.
		logger.V(2).Info("Location selects no instances", "reason", err.Error())
		c.recorder.Event(loc, corev1.EventTypeWarning, EventReasonInvalidInstanceSelector, err.Error()+"; the Location selects no SyncTargets")
	} else {
		targets, err := c.syncTargetLister.List(labels.Everything())
		if err != nil {
			return 0, fmt.Errorf("failed to list SyncTargets: %w", err)
		}
		got = countInstances(selector, targets, c.clock.Now())
	}

	if ptr.Equal(loc.Status.Instances, &got.instances) && ptr.Equal(loc.Status.AvailableInstances, &got.available) {
		logger.V(4).Info("Location status is up to date", "instances", got.instances, "availableInstances", got.available)
		c.metrics.set(name, got.instances, got.available)
		return got.requeueAfter, nil
	}

	updated := loc.DeepCopy()
	updated.Status.Instances = ptr.To(got.instances)
	updated.Status.AvailableInstances = ptr.To(got.available)
	if _, err := c.locationClient.UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return 0, nil
		}
		// A conflict means the cache is behind; the retry reads the newer Location.
		return 0, fmt.Errorf("failed to update status of Location %s: %w", name, err)
	}
	logger.V(3).Info("Updated Location status", "instances", got.instances, "availableInstances", got.available)
	c.metrics.set(name, got.instances, got.available)
	return got.requeueAfter, nil
}
