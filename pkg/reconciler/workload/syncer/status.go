package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/reconciler/queue"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// statusKey names a downstream object: the status controller copies its status up.
type statusKey struct {
	gvr                 schema.GroupVersionResource
	downstreamNamespace string
	name                string
}

func (k statusKey) String() string {
	return k.gvr.String() + "|" + k.downstreamNamespace + "/" + k.name
}

// statusController copies the status of downstream objects to their upstream objects: the
// status subresource for an object on one target, the per-target status annotation for an
// object on several or whose .status another field manager writes (status_owner.go).
type statusController struct {
	target     syncTarget
	resource   func(schema.GroupVersionResource) (resourceInfo, bool)
	downstream func(schema.GroupVersionResource) (downstreamView, bool)
	upstream   func(workspace string, gvr schema.GroupVersionResource) (upstreamView, bool)
	locatorOf  func(downstreamNamespace string) (workloadv1alpha1.NamespaceLocator, bool)
	// workspaceOf is the watched workspace of a locator's logical cluster.
	workspaceOf func(cluster string) (string, bool)
	metrics     *syncerMetrics
	latency     *latencyTracker
	queue       *queue.Queue[statusKey]
	// statusOwners remembers the objects told that another manager owns their .status.
	statusOwners *statusOwnerReports
	// serverSummarises is set with syncer views: every status goes to the status
	// subresource, and the virtual-workspace server keeps it per target and summarises.
	serverSummarises bool
}

// enqueue queues a downstream object, remembering when its change was seen.
func (c *statusController) enqueue(key statusKey) {
	c.latency.seen("status|" + key.String())
	c.queue.Add(key)
}

// reconcile copies the status of one downstream object up, only when it differs.
func (c *statusController) reconcile(ctx context.Context, key statusKey) (time.Duration, error) {
	res, ok := c.resource(key.gvr)
	if !ok || !res.hasStatus {
		return 0, nil
	}
	downstream, ok := c.downstream(key.gvr)
	if !ok {
		return 0, nil
	}
	obj, err := downstream.lister.ByNamespace(key.downstreamNamespace).Get(key.name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	downstreamObj := obj.(*unstructured.Unstructured)
	// Only a namespace whose locator names this SyncTarget and hashes to the namespace's own
	// name speaks for an upstream namespace: a forged locator never writes status upstream
	// (a cluster-scoped volume speaks for its own locator, volumes.go).
	locator, ok := c.statusLocator(key.downstreamNamespace, downstreamObj)
	if !ok {
		return 0, nil
	}
	ws, ok := c.workspaceOf(locator.ClusterName)
	if !ok {
		return 0, nil
	}
	upstream, ok := c.upstream(ws, key.gvr)
	if !ok {
		return 0, nil
	}
	defer func(began time.Time) { c.metrics.observeSync(ws, res.label(), time.Since(began)) }(time.Now())
	up, err := upstream.lister.ByNamespace(locator.Namespace).Get(key.name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	upstreamObj := up.(*unstructured.Unstructured)
	if upstreamObj.GetDeletionTimestamp() != nil {
		return 0, nil
	}
	c.reportRejections(upstream, upstreamObj, downstreamObj)
	upstreamClient := upstream.client.Namespace(locator.Namespace)
	if c.serverSummarises {
		return 0, c.writeStatusThroughView(ctx, key, upstreamClient, upstreamObj, downstreamObj, ws, res)
	}
	if onSeveralTargets(upstreamObj) || c.statusOwnedUpstream(ctx, upstream, upstreamObj, ws) {
		return 0, c.writeStatusAnnotation(ctx, key, upstreamClient, upstreamObj, downstreamObj, ws, res)
	}
	return 0, c.writeStatus(ctx, key, upstreamClient, upstreamObj, downstreamObj, ws, res)
}

// writeStatus writes the downstream status to the upstream status subresource.
func (c *statusController) writeStatus(ctx context.Context, key statusKey, upstreamClient dynamic.ResourceInterface, upstreamObj, downstreamObj *unstructured.Unstructured, ws string, res resourceInfo) error {
	updated, changed := transform.StatusForUpstream(upstreamObj, downstreamObj)
	if !changed {
		c.metrics.skipped(directionUp)
		c.latency.take("status|" + key.String())
		return nil
	}
	return c.updateStatus(ctx, key, upstreamClient, updated, ws, res)
}

// updateStatus writes updated's status to the upstream status subresource.
func (c *statusController) updateStatus(ctx context.Context, key statusKey, upstreamClient dynamic.ResourceInterface, updated *unstructured.Unstructured, ws string, res resourceInfo) error {
	if _, err := upstreamClient.UpdateStatus(ctx, updated, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("failed to update upstream status: %w", err)
	}
	c.metrics.upstreamWrite(operationUpdateStatus)
	c.metrics.synced(ws, res.label(), directionUp)
	c.metrics.observeEndToEnd(directionUp, c.latency.take("status|"+key.String()))
	klog.FromContext(ctx).V(3).Info("Updated upstream status", "workspace", ws, "upstreamNamespace", updated.GetNamespace())
	return nil
}

// writeStatusThroughView writes the downstream status through the syncer view, which keeps
// it as this target's status and summarises .status across targets: unchanged when this
// target's recorded status (the annotation, or .status on one target) already equals it.
func (c *statusController) writeStatusThroughView(ctx context.Context, key statusKey, upstreamClient dynamic.ResourceInterface, upstreamObj, downstreamObj *unstructured.Unstructured, ws string, res resourceInfo) error {
	if onSeveralTargets(upstreamObj) {
		status, found, err := unstructured.NestedFieldNoCopy(downstreamObj.Object, "status")
		if err != nil || !found {
			return nil
		}
		b, err := json.Marshal(status)
		if err != nil {
			return fmt.Errorf("failed to marshal downstream status: %w", err)
		}
		if upstreamObj.GetAnnotations()[workloadv1alpha1.StatusAnnotation(c.target.key)] == string(b) {
			c.metrics.skipped(directionUp)
			return nil
		}
		updated := upstreamObj.DeepCopy()
		updated.Object["status"] = status
		return c.updateStatus(ctx, key, upstreamClient, updated, ws, res)
	}
	return c.writeStatus(ctx, key, upstreamClient, upstreamObj, downstreamObj, ws, res)
}

// writeStatusAnnotation records the downstream status in the per-target status annotation,
// used instead of .status when the object runs on several targets.
func (c *statusController) writeStatusAnnotation(ctx context.Context, key statusKey, upstreamClient dynamic.ResourceInterface, upstreamObj, downstreamObj *unstructured.Unstructured, workspace string, res resourceInfo) error {
	status, found, err := unstructured.NestedFieldNoCopy(downstreamObj.Object, "status")
	if err != nil || !found {
		return nil
	}
	b, err := json.Marshal(status)
	if err != nil {
		return fmt.Errorf("failed to marshal downstream status: %w", err)
	}
	annotation := workloadv1alpha1.StatusAnnotation(c.target.key)
	if upstreamObj.GetAnnotations()[annotation] == string(b) {
		c.metrics.skipped(directionUp)
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{annotation: string(b)}}})
	if err != nil {
		return fmt.Errorf("failed to build status annotation patch: %w", err)
	}
	if _, err := upstreamClient.Patch(ctx, key.name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("failed to write the per-target status annotation: %w", err)
	}
	c.metrics.upstreamWrite(operationUpdateStatus)
	c.metrics.synced(workspace, res.label(), directionUp)
	c.metrics.observeEndToEnd(directionUp, c.latency.take("status|"+key.String()))
	return nil
}

// onSeveralTargets reports whether the upstream object is synced to more than one target.
func onSeveralTargets(upstreamObj *unstructured.Unstructured) bool {
	n := 0
	for k, v := range upstreamObj.GetLabels() {
		if _, ok := workloadv1alpha1.SyncTargetKeyFromLabel(workloadv1alpha1.ClusterResourceStateLabelPrefix, k); ok && v == workloadv1alpha1.ResourceStateSync {
			n++
		}
	}
	return n > 1
}
