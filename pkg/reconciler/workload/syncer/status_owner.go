package syncer

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/klog/v2"
	"k8s.io/utils/lru"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const (
	// statusOwnedUpstreamReason is the reason of the Warning Event on an upstream object
	// whose .status another field manager writes.
	statusOwnedUpstreamReason = "StatusOwnedUpstream"
	// legacyStatusManager is the field manager the API server recorded for the syncer's
	// status writes before they named FieldManager: the name part of its user agent,
	// "workload-syncer/<version>". A status an earlier syncer wrote is still the syncer's.
	legacyStatusManager = "workload-syncer"
	// statusSubresource is the managedFields subresource of status writes.
	statusSubresource = "status"
	// statusOwnerReportsRemembered bounds the objects whose StatusOwnedUpstream Event is
	// remembered; one forgotten gets its Event again, nothing else.
	statusOwnerReportsRemembered = 4096
)

// statusOwnerReports remembers the upstream objects already given a StatusOwnedUpstream
// Event by this process, so each gets one, not one per status change.
type statusOwnerReports struct {
	reported *lru.Cache
}

func newStatusOwnerReports() *statusOwnerReports {
	return &statusOwnerReports{reported: lru.New(statusOwnerReportsRemembered)}
}

// firstTime reports whether the object with key is seen for the first time, remembering it.
// lru.Cache locks itself; a race between two workers at most records the Event twice.
func (r *statusOwnerReports) firstTime(key string) bool {
	if _, ok := r.reported.Get(key); ok {
		return false
	}
	r.reported.Add(key, struct{}{})
	return true
}

// otherStatusManager returns the field manager, other than the syncer, that wrote
// upstreamObj's status subresource, if there is one: on a plain Kubernetes hub the
// Deployment, StatefulSet, Job... controllers own the status of their objects and compute it
// from the hub's own pods.
func otherStatusManager(upstreamObj *unstructured.Unstructured) (string, bool) {
	for _, entry := range upstreamObj.GetManagedFields() {
		if entry.Subresource != statusSubresource {
			continue
		}
		if entry.Manager == FieldManager || entry.Manager == legacyStatusManager {
			continue
		}
		return entry.Manager, true
	}
	return "", false
}

// statusOwnedUpstream reports whether another field manager writes upstreamObj's .status.
// The syncer then does not fight it: the downstream status goes to the per-target status
// annotation instead, and the object gets one Warning Event saying so.
func (c *statusController) statusOwnedUpstream(ctx context.Context, upstream upstreamView, upstreamObj *unstructured.Unstructured, workspace string) bool {
	manager, ok := otherStatusManager(upstreamObj)
	if !ok {
		return false
	}
	if !c.statusOwners.firstTime(workspace + "|" + string(upstreamObj.GetUID())) {
		return true
	}
	annotation := workloadv1alpha1.StatusAnnotation(c.target.key)
	klog.FromContext(ctx).V(2).Info("Upstream status written by another field manager, reporting the downstream status in the annotation",
		"workspace", workspace, "upstreamObject", klog.KObj(upstreamObj), "manager", manager, "annotation", annotation)
	msg := fmt.Sprintf("The status of %s %s is written by %s, not by the syncer: the syncer of SyncTarget %s reports the downstream status in annotation %s instead. "+
		"On a plain Kubernetes hub, run its kube-controller-manager without the workload controllers (README, \"Running the controller\", plain Kubernetes hub)",
		upstreamObj.GetKind(), upstreamObj.GetName(), manager, c.target.name, annotation)
	event(upstream, upstreamObj, corev1.EventTypeWarning, statusOwnedUpstreamReason, msg)
	return true
}
