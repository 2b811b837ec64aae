package syncer

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/tmc-dev/tmc/pkg/reconciler/queue"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// namespaceCaches is what the cleanup must know about the informer caches before it may
// decide that a namespace is no longer needed.
type namespaceCaches interface {
	allSynced() (bool, string)
	resourceList() []resourceInfo
	syncedResources() []workloadv1alpha1.SyncedResource
	downstreamObjectsIn(downstreamNamespace string) int
	upstreamSynced(workspace string) bool
	upstreamObjectsIn(workspace, upstreamNamespace string) int
}

// namespaceManager creates downstream namespaces (named by the hash of their locator, and
// carrying it) and deletes them once they are no longer needed: only after the clean delay,
// only when every informer has synced, and only when no synced object is left in them
// downstream or in their upstream namespace. Startup never deletes a namespace that holds
// anything (kcp bug #2041).
type namespaceManager struct {
	target               syncTarget
	namespaceLister      func() corelisters.NamespaceLister
	downstreamNamespaces typedcorev1.NamespaceInterface
	caches               namespaceCaches
	cleanDelay           time.Duration
	budget               deletionBudget
	metrics              *syncerMetrics
	queue                *queue.Queue[string]
}

// notYetError says that the cleanup cannot decide yet; it looks again after the delay.
type notYetError struct{ reason string }

func (e *notYetError) Error() string { return e.reason }

func notYet(format string, args ...any) error {
	return &notYetError{reason: fmt.Sprintf(format, args...)}
}

// locatorOf returns the locator of a downstream namespace this target owns.
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
	return loc, true
}

// ensure makes sure the downstream namespace for locator exists and is ours. A namespace of
// that name with another locator (or none) is a collision: reported, never merged.
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
		_, err = m.downstreamNamespaces.Create(ctx, &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{
				Name:        downstreamNamespace,
				Labels:      map[string]string{workloadv1alpha1.InternalDownstreamClusterLabel: m.target.key},
				Annotations: map[string]string{workloadv1alpha1.NamespaceLocatorAnnotation: want},
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
	if ns.DeletionTimestamp != nil {
		return fmt.Errorf("downstream namespace %s is being deleted; waiting", downstreamNamespace)
	}
	return nil
}

// consider schedules a cleanup check of a downstream namespace after the clean delay.
func (m *namespaceManager) consider(downstreamNamespace string) {
	m.queue.AddAfter(downstreamNamespace, m.cleanDelay)
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

// clean deletes a downstream namespace if it is ours and no longer needed.
func (m *namespaceManager) clean(ctx context.Context, downstreamNamespace string) error {
	if ok, what := m.caches.allSynced(); !ok {
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
	ns, err := m.namespaceLister().Get(downstreamNamespace)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.DeletionTimestamp != nil {
		return nil
	}
	loc, ok := m.locatorOf(downstreamNamespace)
	if !ok {
		return nil
	}
	if n := m.caches.downstreamObjectsIn(downstreamNamespace); n > 0 {
		klog.FromContext(ctx).V(4).Info("Keeping downstream namespace: it holds synced objects", "objects", n)
		return nil
	}
	if m.caches.upstreamSynced(loc.ClusterName) && m.caches.upstreamObjectsIn(loc.ClusterName, loc.Namespace) > 0 {
		klog.FromContext(ctx).V(4).Info("Keeping downstream namespace: its upstream namespace holds synced objects")
		return nil
	}
	err = m.downstreamNamespaces.Delete(ctx, downstreamNamespace, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: ptr.To(ns.UID)},
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to delete downstream namespace: %w", err)
	}
	m.metrics.downstreamWrite(operationDeleteNamespace)
	klog.FromContext(ctx).V(2).Info("Deleted empty downstream namespace", "workspace", loc.ClusterName, "upstreamNamespace", loc.Namespace)
	return nil
}
