package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/tmc-dev/tmc/pkg/reconciler/queue"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// namespaceCaches is what the cleanup must know about the informer caches before it may
// decide that a namespace is no longer needed, and the live reads that confirm it.
type namespaceCaches interface {
	downstreamSynced() (bool, string)
	resourceList() []resourceInfo
	syncedResources() []workloadv1alpha1.SyncedResource
	downstreamObjectsIn(downstreamNamespace string) int
	upstreamSynced(workspace string) bool
	upstreamObjectsIn(workspace, upstreamNamespace string) int
	upstreamNamespace(workspace, name string) (*corev1.Namespace, bool)
	upstreamNamespaces(workspace string) (typedcorev1.NamespaceInterface, bool)
	// clusterName and workspaceOf map watched workspaces to the logical-cluster names
	// locators carry, and back (workspace_names.go).
	clusterName(workspace string) (string, bool)
	workspaceOf(cluster string) (string, bool)
}

// operationReleaseNamespace is the downstream write that hands a namespace holding
// orphaned copies over to its users (the ownership label dropped).
const (
	operationReleaseNamespace = "release_namespace"
	// operationMarkNamespace records PlacedNamespaceAnnotation on an existing namespace.
	operationMarkNamespace = "mark_namespace"
)

// namespaceManager creates downstream namespaces (named by the hash of their locator, and
// carrying it) and removes them once they are no longer needed: only when their upstream
// namespace is gone or no longer placed on this target (or the SyncTarget is being
// deleted), never merely because they hold no synced object; only after the clean delay,
// with the caches of their workspace and of the downstream side synced, once no synced
// object is left in them on either side, and only as far as the deletion budget admits.
// A namespace holding orphaned copies is released instead of deleted. Startup never
// deletes a namespace that holds anything (kcp bug #2041).
type namespaceManager struct {
	target               syncTarget
	namespaceLister      func() corelisters.NamespaceLister
	downstreamNamespaces typedcorev1.NamespaceInterface
	caches               namespaceCaches
	// targetDeleting reports whether the served SyncTarget is being deleted.
	targetDeleting func() bool
	// podSecurity returns the served SyncTarget's spec.podSecurity (nil: the defaults).
	podSecurity func() *workloadv1alpha1.PodSecurity
	cleanDelay  time.Duration
	budget      deletionBudget
	metrics     *syncerMetrics
	queue       *queue.Queue[string]
	// forged reports namespaces whose locator does not name them (nil: not reported).
	forged *forgedLocators
}

// notYetError says that the cleanup cannot decide yet; it looks again after the delay.
type notYetError struct{ reason string }

func (e *notYetError) Error() string { return e.reason }

func notYet(format string, args ...any) error {
	return &notYetError{reason: fmt.Sprintf(format, args...)}
}

// locatorOf returns the locator of a downstream namespace this target owns: its locator
// names this SyncTarget (location workspace, name and UID) and, hashed, the namespace's own
// name. A namespace whose locator names another one is ignored and reported
// (namespace_locator.go).
func (m *namespaceManager) locatorOf(downstreamNamespace string) (workloadv1alpha1.NamespaceLocator, bool) {
	lister := m.namespaceLister()
	if lister == nil {
		return workloadv1alpha1.NamespaceLocator{}, false
	}
	ns, err := lister.Get(downstreamNamespace)
	if err != nil {
		return workloadv1alpha1.NamespaceLocator{}, false
	}
	loc, err := workloadv1alpha1.ParseNamespaceLocator(ns.Annotations[workloadv1alpha1.NamespaceLocatorAnnotation])
	if err != nil || !loc.SameSyncTarget(m.target.locator("", "")) {
		return workloadv1alpha1.NamespaceLocator{}, false
	}
	if !m.forged.namesNamespace(downstreamNamespace, loc) {
		return workloadv1alpha1.NamespaceLocator{}, false
	}
	return loc, true
}

// downstreamName returns the downstream namespace of locator: kcp's name, unless this
// locator's namespace exists under the name TMC gave it before it wrote kcp's leading
// zeros — that one stays in use, since moving would leave its workloads and volumes behind.
func (m *namespaceManager) downstreamName(locator workloadv1alpha1.NamespaceLocator) (string, error) {
	name, err := locator.DownstreamNamespaceName()
	if err != nil {
		return "", err
	}
	legacy, differs, err := locator.LegacyDownstreamNamespaceName()
	if err != nil || !differs {
		return name, err
	}
	if got, ok := m.locatorOf(legacy); ok && got.ClusterName == locator.ClusterName && got.Namespace == locator.Namespace {
		return legacy, nil
	}
	return name, nil
}

// ensure makes sure the downstream namespace for locator exists, is ours and carries the
// SyncTarget's Pod Security Admission labels (never the upstream namespace's). A namespace
// of that name with another locator (or none) is a collision: reported, never merged.
func (m *namespaceManager) ensure(ctx context.Context, locator workloadv1alpha1.NamespaceLocator, downstreamNamespace string) error {
	want, err := locator.MarshalAnnotation()
	if err != nil {
		return err
	}
	lister := m.namespaceLister()
	if lister == nil {
		return notYet("downstream namespaces not watched yet")
	}
	ns, err := lister.Get(downstreamNamespace)
	if apierrors.IsNotFound(err) {
		annotations := map[string]string{workloadv1alpha1.NamespaceLocatorAnnotation: want}
		if ws, ok := m.caches.workspaceOf(locator.ClusterName); ok {
			if upstreamNS, ok := m.caches.upstreamNamespace(ws, locator.Namespace); ok && placedOnTarget(m.target.key, upstreamNS) {
				annotations[workloadv1alpha1.PlacedNamespaceAnnotation] = "true"
			}
		}
		nsLabels := m.podSecurityLabels()
		nsLabels[workloadv1alpha1.InternalDownstreamClusterLabel] = m.target.key
		_, err = m.downstreamNamespaces.Create(ctx, &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{
				Name:        downstreamNamespace,
				Labels:      nsLabels,
				Annotations: annotations,
			},
		}, metav1.CreateOptions{})
		if err == nil {
			m.metrics.downstreamWrite(operationCreateNamespace)
			klog.FromContext(ctx).V(2).Info("Created downstream namespace")
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("failed to create downstream namespace %s: %w", downstreamNamespace, err)
		}
		ns, err = m.downstreamNamespaces.Get(ctx, downstreamNamespace, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("failed to get downstream namespace %s: %w", downstreamNamespace, err)
	}
	got, err := workloadv1alpha1.ParseNamespaceLocator(ns.Annotations[workloadv1alpha1.NamespaceLocatorAnnotation])
	if err != nil || got != locator {
		msg := fmt.Sprintf("downstream namespace %s exists but belongs to %q, not to %s", downstreamNamespace, ns.Annotations[workloadv1alpha1.NamespaceLocatorAnnotation], want)
		return tmc.NewTMCError(tmc.TMCErrorTypeNamespaceCollision, errors.New(msg), "namespace collision", tmc.TMCErrorSeverityHigh)
	}
	if ns.Labels[workloadv1alpha1.InternalDownstreamClusterLabel] != m.target.key {
		// Released earlier because it holds orphaned copies: it is its users' now.
		msg := fmt.Sprintf("downstream namespace %s was released by TMC (it holds orphaned copies) and no longer carries %s=%s; label it again to let TMC use it",
			downstreamNamespace, workloadv1alpha1.InternalDownstreamClusterLabel, m.target.key)
		return tmc.NewTMCError(tmc.TMCErrorTypeNamespaceCollision, errors.New(msg), "namespace released", tmc.TMCErrorSeverityHigh)
	}
	if ns.DeletionTimestamp != nil {
		return fmt.Errorf("downstream namespace %s is being deleted; waiting", downstreamNamespace)
	}
	// Fail closed: nothing is synced into a namespace without its pod security labels.
	return m.ensurePodSecurity(ctx, ns, m.podSecurityLabels())
}

// consider schedules a cleanup check of a downstream namespace after the clean delay.
func (m *namespaceManager) consider(downstreamNamespace string) {
	if downstreamNamespace == "" {
		// A cluster-scoped copy (a volume) lies in no namespace.
		return
	}
	m.queue.AddAfter(downstreamNamespace, m.cleanDelay)
}

// upstreamNamespaceChanged schedules the cleanup check of the downstream namespace of
// upstream namespace ns of workspace ws, if this target owns one.
func (m *namespaceManager) upstreamNamespaceChanged(ws, ns string) {
	cluster, ok := m.caches.clusterName(ws)
	if !ok {
		return
	}
	downstreamNamespace, err := m.downstreamName(m.target.locator(cluster, ns))
	if err != nil {
		return
	}
	if _, ok := m.locatorOf(downstreamNamespace); ok {
		m.consider(downstreamNamespace)
	}
}

// reconcile runs the cleanup check of one namespace: one that cannot be decided yet is
// looked at again after the clean delay; API failures follow the queue's retry rule.
func (m *namespaceManager) reconcile(ctx context.Context, downstreamNamespace string) (time.Duration, error) {
	logger := klog.FromContext(ctx).WithValues("downstreamNamespace", downstreamNamespace)
	err := m.clean(klog.NewContext(ctx, logger), downstreamNamespace)
	var wait *notYetError
	if errors.As(err, &wait) {
		logger.V(2).Info("Namespace cleanup cannot decide yet; will look again", "reason", wait.reason)
		return m.cleanDelay, nil
	}
	return 0, err
}

// clean removes a downstream namespace of ours that is no longer needed, phase by phase:
// ours? → caches synced → upstream namespace gone or no longer placed here → no synced
// object left → released (orphans) or deleted within the deletion budget. Whatever cannot
// be decided yet is looked at again after the clean delay.
func (m *namespaceManager) clean(ctx context.Context, downstreamNamespace string) error {
	ns, loc, ok, err := m.owned(downstreamNamespace)
	if !ok || err != nil {
		return err
	}
	// Only a watched workspace (its logical-cluster name known) can say its namespace is
	// gone; a locator of any other logical cluster keeps its namespace.
	ws, ok := m.caches.workspaceOf(loc.ClusterName)
	if !ok {
		return notYet("the workspace of logical cluster %s is not watched", loc.ClusterName)
	}
	if err := m.cachesReady(ws); err != nil {
		return err
	}
	why, err := m.unplaced(ctx, ns, ws, loc)
	if why == "" || err != nil {
		return err
	}
	logger := klog.FromContext(ctx).WithValues("workspace", ws, "upstreamNamespace", loc.Namespace)
	objects := m.caches.downstreamObjectsIn(downstreamNamespace)
	if objects > 0 {
		logger.V(4).Info("Keeping downstream namespace: it holds synced objects", "objects", objects, "why", why)
		return nil
	}
	if m.caches.upstreamObjectsIn(ws, loc.Namespace) > 0 {
		logger.V(4).Info("Keeping downstream namespace: its upstream namespace holds synced objects", "why", why)
		return nil
	}
	if _, orphans := ns.Annotations[workloadv1alpha1.DownstreamOrphansAnnotation]; orphans {
		return m.release(klog.NewContext(ctx, logger), ns, why)
	}
	if !m.budget.admit(ctx, plannedDeletion{
		workspace: ws, resource: "namespaces", downstreamNamespace: downstreamNamespace, name: downstreamNamespace,
		reason: deletionNamespaceCleanup, objects: objects,
	}) {
		return notYet("the deletion budget holds the deletion (%s)", why)
	}
	err = m.downstreamNamespaces.Delete(ctx, downstreamNamespace, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: ptr.To(ns.UID), ResourceVersion: ptr.To(ns.ResourceVersion)},
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to delete downstream namespace: %w", err)
	}
	m.metrics.downstreamWrite(operationDeleteNamespace)
	logger.V(2).Info("Deleted downstream namespace", "why", why)
	return nil
}

// owned returns the cached downstream namespace and its locator if it is ours and not
// being deleted already; ok is false when there is nothing to do.
func (m *namespaceManager) owned(downstreamNamespace string) (*corev1.Namespace, workloadv1alpha1.NamespaceLocator, bool, error) {
	var loc workloadv1alpha1.NamespaceLocator
	lister := m.namespaceLister()
	if lister == nil {
		return nil, loc, false, notYet("downstream namespaces not watched yet")
	}
	ns, err := lister.Get(downstreamNamespace)
	if apierrors.IsNotFound(err) {
		return nil, loc, false, nil
	}
	if err != nil {
		return nil, loc, false, err
	}
	if ns.DeletionTimestamp != nil {
		return nil, loc, false, nil
	}
	loc, ok := m.locatorOf(downstreamNamespace)
	return ns, loc, ok, nil
}

// cachesReady checks that the caches the decision reads are complete: the downstream side
// and the upstream side of workspace ws only (another unreadable workspace neither blocks
// nor triggers anything here).
func (m *namespaceManager) cachesReady(ws string) error {
	if ok, what := m.caches.downstreamSynced(); !ok {
		return notYet("informers not synced yet (%s)", what)
	}
	if len(m.caches.resourceList()) == 0 {
		// Until a discovery succeeds no object informer runs, so every namespace would look
		// empty; this is exactly the startup deletion of kcp bug #2041.
		return notYet("no resource types accepted yet")
	}
	for _, st := range m.caches.syncedResources() {
		if st.State == workloadv1alpha1.ResourceStateUnauthorized {
			// Objects of a type the syncer may no longer read could still be in there.
			return notYet("cannot tell whether namespace is empty: %s is unauthorized", st.String())
		}
	}
	if !m.caches.upstreamSynced(ws) {
		return notYet("the caches of workspace %s are not synced (or it is not watched)", ws)
	}
	return nil
}

// unplaced says why the downstream namespace ns of loc is no longer needed, "" while its
// upstream namespace exists and is placed on this target. The cache answers "placed"; its
// "not placed" is confirmed by a live read, so a lagging or lost cache never deletes. An
// upstream namespace that never carried the state label (its objects were labelled by
// hand: ns lacks PlacedNamespaceAnnotation) keeps ns until it is deleted.
func (m *namespaceManager) unplaced(ctx context.Context, ns *corev1.Namespace, ws string, loc workloadv1alpha1.NamespaceLocator) (string, error) {
	if m.targetDeleting() {
		return "the SyncTarget is being deleted", nil
	}
	if upstreamNS, ok := m.caches.upstreamNamespace(ws, loc.Namespace); ok && placedOnTarget(m.target.key, upstreamNS) {
		klog.FromContext(ctx).V(4).Info("Keeping downstream namespace: its upstream namespace is placed on this SyncTarget")
		return "", m.markPlaced(ctx, ns)
	}
	upstreamNamespaces, ok := m.caches.upstreamNamespaces(ws)
	if !ok {
		return "", notYet("workspace %s is not watched", ws)
	}
	upstreamNS, err := upstreamNamespaces.Get(ctx, loc.Namespace, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "the upstream namespace is gone", nil
	case err != nil:
		return "", fmt.Errorf("failed to get upstream namespace %s: %w", loc.Namespace, err)
	case upstreamNS.DeletionTimestamp != nil:
		return "the upstream namespace is being deleted", nil
	case placedOnTarget(m.target.key, upstreamNS):
		// The cache lags; its event will bring the namespace here again.
		klog.FromContext(ctx).V(4).Info("Keeping downstream namespace: its upstream namespace is placed on this SyncTarget (cache lags)")
		return "", nil
	}
	if _, removing := upstreamNS.Annotations[workloadv1alpha1.DeletionAnnotation(m.target.key)]; removing {
		return "the upstream namespace is being removed from this SyncTarget", nil
	}
	if ns.Annotations[workloadv1alpha1.PlacedNamespaceAnnotation] != "true" {
		// Nothing watches such an upstream namespace: look again after the clean delay.
		return "", notYet("the upstream namespace was never placed by its label (objects labelled by hand); the downstream namespace goes when it is deleted")
	}
	return "the upstream namespace is no longer placed on this SyncTarget", nil
}

// markPlaced records on ns that its upstream namespace is placed by its state label, once
// (namespaces created before the annotation existed get it here).
func (m *namespaceManager) markPlaced(ctx context.Context, ns *corev1.Namespace) error {
	if ns.Annotations[workloadv1alpha1.PlacedNamespaceAnnotation] == "true" {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": ns.ResourceVersion,
		"annotations":     map[string]any{workloadv1alpha1.PlacedNamespaceAnnotation: "true"},
	}})
	if err != nil {
		return fmt.Errorf("failed to encode the namespace annotation patch: %w", err)
	}
	if _, err := m.downstreamNamespaces.Patch(ctx, ns.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to mark downstream namespace as placed: %w", err)
	}
	m.metrics.downstreamWrite(operationMarkNamespace)
	return nil
}

// release hands a namespace holding orphaned copies over to its users instead of deleting
// it: the ownership label is dropped (a merge patch guarded by the resourceVersion), so
// that TMC never touches it again.
func (m *namespaceManager) release(ctx context.Context, ns *corev1.Namespace, why string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": ns.ResourceVersion,
		"labels":          map[string]any{workloadv1alpha1.InternalDownstreamClusterLabel: nil},
	}})
	if err != nil {
		return fmt.Errorf("failed to encode the namespace release patch: %w", err)
	}
	if _, err := m.downstreamNamespaces.Patch(ctx, ns.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("failed to release downstream namespace: %w", err)
	}
	m.metrics.downstreamWrite(operationReleaseNamespace)
	klog.FromContext(ctx).Info("Released downstream namespace instead of deleting it: it holds orphaned copies", "why", why,
		"orphansSince", ns.Annotations[workloadv1alpha1.DownstreamOrphansAnnotation])
	return nil
}
