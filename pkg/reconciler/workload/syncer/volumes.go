package syncer

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// PersistentVolumes, the one cluster-scoped type the syncer syncs down (opt-in: listed in
// the SyncTarget's spec.resources). A PersistentVolume is shared by the whole physical
// cluster, so its copy is confined to one tenant's claim: it must be pre-bound
// (spec.claimRef) to a claim in a namespace of the same workspace that is placed on this
// target; the copy's claimRef names that namespace's downstream namespace and the copy
// carries the locator of (workspace, claim namespace) in NamespaceLocatorAnnotation, which
// says whose copy it is. A downstream volume of that name that is not ours, or ours for
// another workspace, is never touched, whatever the conflict policy.

// volumeRefusedEventReason is the Event reason on an upstream PersistentVolume that is not
// synced down.
const volumeRefusedEventReason = "VolumeRefused"

// persistentVolumesResource is the cluster-scoped type that is synced.
var persistentVolumesResource = schema.GroupResource{Group: "", Resource: "persistentvolumes"}

// syncedClusterScoped reports whether the cluster-scoped resource gr may be synced.
func syncedClusterScoped(gr schema.GroupResource) bool {
	return gr == persistentVolumesResource
}

// reconcileVolume syncs one upstream PersistentVolume down, after the containment checks:
// nothing is written, upstream or downstream, for a volume that fails them.
func (c *specController) reconcileVolume(ctx context.Context, req specRequest, upstreamObj *unstructured.Unstructured) (time.Duration, error) {
	locator, downstreamClaimNamespace, err := c.volumeLocator(req, upstreamObj)
	if err != nil {
		event(req.upstream, upstreamObj, corev1.EventTypeWarning, volumeRefusedEventReason, err.Error())
		return 0, tmc.NewTMCError(tmc.TMCErrorTypeInvalidResource, err, "the PersistentVolume cannot be synced to this SyncTarget", tmc.TMCErrorSeverityMedium).
			WithResource(req.key.gvr.Resource + " " + req.key.name).WithWorkspace(req.key.workspace)
	}
	if added, err := c.ensureFinalizer(ctx, req, upstreamObj); added || err != nil {
		return 0, err
	}
	desired, err := c.desired(ctx, req, upstreamObj)
	if desired == nil || err != nil {
		return 0, err
	}
	if err := bindVolumeCopy(desired, locator, downstreamClaimNamespace); err != nil {
		return 0, err
	}
	downstreamObj, watched, err := c.current(ctx, req)
	if !watched || err != nil {
		return 0, err
	}
	if downstreamObj != nil {
		if why := volumeNotOurs(c.target.key, locator, downstreamObj); why != "" {
			return 0, c.volumeConflict(ctx, req, upstreamObj, why)
		}
		if downstreamObj.GetDeletionTimestamp() != nil {
			return c.remover.stuck.wait(ctx, req, upstreamObj, downstreamObj, c.target.name), nil
		}
	}
	c.remover.stuck.forget(req.key)
	return 0, c.apply(ctx, req, upstreamObj, desired, downstreamObj)
}

// volumeLocator checks that upstreamObj may go down and returns the locator of its claim's
// namespace and that namespace's downstream name. A volume must be bound to a claim in a
// namespace of its workspace placed here (an unbound volume downstream could be bound by
// any tenant's claim), and a hostPath or local volume needs the SyncTarget's
// spec.tenancy.allowHostPathVolumes.
func (c *specController) volumeLocator(req specRequest, upstreamObj *unstructured.Unstructured) (workloadv1alpha1.NamespaceLocator, string, error) {
	claimNamespace, _, _ := unstructured.NestedString(upstreamObj.Object, "spec", "claimRef", "namespace")
	claimName, _, _ := unstructured.NestedString(upstreamObj.Object, "spec", "claimRef", "name")
	if claimNamespace == "" || claimName == "" {
		return workloadv1alpha1.NamespaceLocator{}, "", fmt.Errorf("PersistentVolume %s has no spec.claimRef (namespace and name); "+
			"only a volume bound to a claim in a namespace placed on SyncTarget %s is synced there", req.key.name, c.target.name)
	}
	if kind, _, _ := unstructured.NestedString(upstreamObj.Object, "spec", "claimRef", "kind"); kind != "" && kind != "PersistentVolumeClaim" {
		return workloadv1alpha1.NamespaceLocator{}, "", fmt.Errorf("PersistentVolume %s has a spec.claimRef of kind %s, not PersistentVolumeClaim", req.key.name, kind)
	}
	upstreamNamespace, ok := c.remover.upstreamNamespace(req.key.workspace, claimNamespace)
	if !ok || !placedOnTarget(c.target.key, upstreamNamespace) {
		return workloadv1alpha1.NamespaceLocator{}, "", fmt.Errorf("PersistentVolume %s is bound to a claim in namespace %s, which is not placed on SyncTarget %s; it is not synced there",
			req.key.name, claimNamespace, c.target.name)
	}
	if source := hostVolumeSource(upstreamObj); source != "" && !c.tenancyAllowances().AllowHostPathVolumes {
		return workloadv1alpha1.NamespaceLocator{}, "", fmt.Errorf("PersistentVolume %s has a %s volume source, which reaches a node's file system; "+
			"SyncTarget %s does not set spec.tenancy.allowHostPathVolumes", req.key.name, source, c.target.name)
	}
	cluster, ok := c.clusterName(req.key.workspace)
	if !ok {
		return workloadv1alpha1.NamespaceLocator{}, "", fmt.Errorf("the logical-cluster name of workspace %s is not known yet", req.key.workspace)
	}
	locator := c.target.locator(cluster, claimNamespace)
	downstreamClaimNamespace, err := c.namespaces.downstreamName(locator)
	if err != nil {
		return workloadv1alpha1.NamespaceLocator{}, "", err
	}
	return locator, downstreamClaimNamespace, nil
}

// hostVolumeSource names the volume source of a PersistentVolume that reaches a node's
// file system (hostPath, local), or "".
func hostVolumeSource(obj *unstructured.Unstructured) string {
	for _, source := range []string{"hostPath", "local"} {
		if _, found, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", source); found {
			return source
		}
	}
	return ""
}

// bindVolumeCopy makes desired the copy of its claim's locator: the locator annotation, and
// a claimRef to the claim's downstream namespace (name and kind kept; uid and
// resourceVersion are the upstream claim's and mean nothing downstream). The spec hash is
// computed again.
func bindVolumeCopy(desired *unstructured.Unstructured, locator workloadv1alpha1.NamespaceLocator, downstreamClaimNamespace string) error {
	value, err := locator.MarshalAnnotation()
	if err != nil {
		return err
	}
	annotations := desired.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[workloadv1alpha1.NamespaceLocatorAnnotation] = value
	desired.SetAnnotations(annotations)
	claimRef, _, _ := unstructured.NestedMap(desired.Object, "spec", "claimRef")
	out := map[string]any{"namespace": downstreamClaimNamespace, "name": claimRef["name"]}
	for _, field := range []string{"apiVersion", "kind"} {
		if v, ok := claimRef[field]; ok {
			out[field] = v
		}
	}
	if err := unstructured.SetNestedField(desired.Object, out, "spec", "claimRef"); err != nil {
		return fmt.Errorf("failed to set the claimRef of PersistentVolume %s: %w", desired.GetName(), err)
	}
	return transform.SetHash(desired)
}

// volumeNotOurs says why the downstream volume downstreamObj is not the copy of the volume
// whose claim has locator, or "": it lacks our ownership label, carries another target's,
// or carries ours with another locator (another workspace's volume of the same name).
func volumeNotOurs(stKey string, locator workloadv1alpha1.NamespaceLocator, downstreamObj *unstructured.Unstructured) string {
	switch owner, labelled := downstreamObj.GetLabels()[workloadv1alpha1.InternalDownstreamClusterLabel]; {
	case !labelled || owner == "":
		return fmt.Sprintf("it does not carry %s=%s", workloadv1alpha1.InternalDownstreamClusterLabel, stKey)
	case owner != stKey:
		return fmt.Sprintf("another SyncTarget owns it (%s=%s)", workloadv1alpha1.InternalDownstreamClusterLabel, owner)
	}
	got, ok := volumeCopyLocator(downstreamObj)
	if !ok || got.ClusterName != locator.ClusterName || !got.SameSyncTarget(locator) {
		return "it is the copy of another workspace's PersistentVolume"
	}
	return ""
}

// volumeCopyLocator returns the locator a downstream volume carries.
func volumeCopyLocator(downstreamObj *unstructured.Unstructured) (workloadv1alpha1.NamespaceLocator, bool) {
	locator, err := workloadv1alpha1.ParseNamespaceLocator(downstreamObj.GetAnnotations()[workloadv1alpha1.NamespaceLocatorAnnotation])
	return locator, err == nil
}

// volumeConflict reports a downstream volume that is left untouched, whatever the conflict
// policy: a PersistentVolume is never adopted or overwritten.
func (c *specController) volumeConflict(ctx context.Context, req specRequest, upstreamObj *unstructured.Unstructured, why string) error {
	msg := fmt.Sprintf("PersistentVolume %s already exists in the physical cluster of SyncTarget %s and %s; TMC leaves it untouched "+
		"(a PersistentVolume is never adopted or overwritten, whatever the conflict policy)", req.key.name, c.target.name, why)
	event(req.upstream, upstreamObj, corev1.EventTypeWarning, "ResourceConflict", msg)
	c.metrics.conflicts.WithLabelValues(c.metrics.clusterName, req.key.workspace, req.resource.label()).Inc()
	klog.FromContext(ctx).V(2).Info("Downstream PersistentVolume is not our copy; leaving it alone", "reason", why)
	return tmc.NewTMCError(tmc.TMCErrorTypeResourceConflict, errors.New(msg), "downstream object not owned by TMC", tmc.TMCErrorSeverityMedium).
		WithResource(req.key.gvr.Resource + " " + req.key.name).WithWorkspace(req.key.workspace)
}

// ownVolumeCopy reports whether downstreamObj, a volume carrying our ownership label, is the
// copy of workspace cluster's volume (removals touch nothing else).
func ownVolumeCopy(target syncTarget, cluster string, downstreamObj *unstructured.Unstructured) bool {
	got, ok := volumeCopyLocator(downstreamObj)
	return ok && got.ClusterName == cluster && got.SameSyncTarget(target.locator(cluster, ""))
}

// volumeWorkspace returns the workspace whose volume the downstream cluster-scoped object
// downstreamObj (from the cache of our ownership label) is the copy of, from its locator;
// false for a namespaced object. The spec controller checks the copy again before acting.
func (e *engine) volumeWorkspace(downstreamObj *unstructured.Unstructured) (string, bool) {
	if downstreamObj.GetNamespace() != "" {
		return "", false
	}
	locator, ok := volumeCopyLocator(downstreamObj)
	if !ok {
		return "", false
	}
	return e.workspaceOf(locator.ClusterName)
}

// clusterScopedLister lets the controllers read a cluster-scoped cache as they read a
// namespaced one: ByNamespace("").Get(name) finds the object keyed by its name alone.
type clusterScopedLister struct {
	cache.GenericLister
}

// ByNamespace implements cache.GenericLister.
func (l clusterScopedLister) ByNamespace(namespace string) cache.GenericNamespaceLister {
	if namespace != "" {
		return l.GenericLister.ByNamespace(namespace)
	}
	return l.GenericLister
}

// statusLocator returns the locator of the upstream object of a downstream one: its
// namespace's (namespaceLocator checks it), or for a cluster-scoped volume its own, when it
// names this SyncTarget (with Namespace "": the upstream volume is cluster-scoped too).
func (c *statusController) statusLocator(downstreamNamespace string, downstreamObj *unstructured.Unstructured) (workloadv1alpha1.NamespaceLocator, bool) {
	if downstreamNamespace != "" {
		return c.locatorOf(downstreamNamespace)
	}
	locator, ok := volumeCopyLocator(downstreamObj)
	if !ok || !locator.SameSyncTarget(c.target.locator(locator.ClusterName, "")) {
		return workloadv1alpha1.NamespaceLocator{}, false
	}
	locator.Namespace = ""
	return locator, true
}
