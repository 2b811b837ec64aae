package syncer

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// namespaceManager creates downstream namespaces (named by the hash of their locator, and
// carrying it) and deletes them once they are no longer needed: only after the clean delay,
// only when every informer has synced, and only when no synced object is left in them
// downstream or in their upstream namespace. Startup never deletes a namespace that holds
// anything (kcp bug #2041).
type namespaceManager struct {
	syncer *Syncer
	queue  workqueue.TypedDelayingInterface[string]
}

func newNamespaceManager(s *Syncer) *namespaceManager {
	return &namespaceManager{
		syncer: s,
		queue: workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[string]{
			Name:            "namespace-cleanup",
			MetricsProvider: s.metrics.tmc.WorkqueueMetricsProvider(),
		}),
	}
}

// locatorOf returns the locator of a downstream namespace this target owns.
func (m *namespaceManager) locatorOf(downstreamNamespace string) (workloadv1alpha1.NamespaceLocator, bool) {
	lister := m.syncer.engine.namespaceLister
	if lister == nil {
		return workloadv1alpha1.NamespaceLocator{}, false
	}
	ns, err := lister.Get(downstreamNamespace)
	if err != nil {
		return workloadv1alpha1.NamespaceLocator{}, false
	}
	loc, err := workloadv1alpha1.ParseNamespaceLocator(ns.Annotations[workloadv1alpha1.NamespaceLocatorAnnotation])
	if err != nil || !loc.SameSyncTarget(m.syncer.locator("", "")) {
		return workloadv1alpha1.NamespaceLocator{}, false
	}
	return loc, true
}

// ensure makes sure the downstream namespace for locator exists and is ours. A namespace of
// that name with another locator (or none) is a collision: reported, never merged.
func (m *namespaceManager) ensure(ctx context.Context, locator workloadv1alpha1.NamespaceLocator, name string) error {
	s := m.syncer
	want, err := locator.MarshalAnnotation()
	if err != nil {
		return err
	}
	ns, err := s.engine.namespaceLister.Get(name)
	if apierrors.IsNotFound(err) {
		_, err = s.downstreamKube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Labels:      map[string]string{workloadv1alpha1.InternalDownstreamClusterLabel: s.stKey},
				Annotations: map[string]string{workloadv1alpha1.NamespaceLocatorAnnotation: want},
			},
		}, metav1.CreateOptions{})
		if err == nil {
			s.metrics.downstreamWrite(operationCreateNamespace)
			klog.FromContext(ctx).V(2).Info("Created downstream namespace")
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("failed to create downstream namespace %s: %w", name, err)
		}
		ns, err = s.downstreamKube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("failed to get downstream namespace %s: %w", name, err)
	}
	got, err := workloadv1alpha1.ParseNamespaceLocator(ns.Annotations[workloadv1alpha1.NamespaceLocatorAnnotation])
	if err != nil || got != locator {
		msg := fmt.Sprintf("downstream namespace %s exists but belongs to %q, not to %s", name, ns.Annotations[workloadv1alpha1.NamespaceLocatorAnnotation], want)
		return tmc.NewTMCError(tmc.TMCErrorTypeNamespaceCollision, errors.New(msg), "namespace collision", tmc.TMCErrorSeverityHigh)
	}
	if ns.DeletionTimestamp != nil {
		return fmt.Errorf("downstream namespace %s is being deleted; waiting", name)
	}
	return nil
}

// consider schedules a cleanup check of a downstream namespace after the clean delay.
func (m *namespaceManager) consider(name string) {
	m.queue.AddAfter(name, m.syncer.cfg.DownstreamNamespaceCleanDelay)
}

func (m *namespaceManager) run(ctx context.Context) {
	defer m.queue.ShutDown()
	go wait.UntilWithContext(ctx, func(ctx context.Context) {
		for m.processNext(ctx) {
		}
	}, time.Second)
	<-ctx.Done()
}

func (m *namespaceManager) processNext(ctx context.Context) bool {
	name, quit := m.queue.Get()
	if quit {
		return false
	}
	defer m.queue.Done(name)
	logger := klog.FromContext(ctx).WithValues("downstreamNamespace", name)
	if err := m.clean(klog.NewContext(ctx, logger), name); err != nil {
		logger.V(2).Info("Namespace cleanup failed; will retry", "err", err)
		m.queue.AddAfter(name, m.syncer.cfg.DownstreamNamespaceCleanDelay)
	}
	return true
}

func (m *namespaceManager) clean(ctx context.Context, name string) error {
	s := m.syncer
	if ok, what := s.engine.allSynced(); !ok {
		return fmt.Errorf("informers not synced yet (%s)", what)
	}
	if len(s.engine.resourceList()) == 0 {
		// Until a discovery succeeds no object informer runs, so every namespace would look
		// empty; this is exactly the startup deletion of kcp bug #2041.
		return errors.New("no resource types accepted yet")
	}
	for _, st := range s.engine.resourceStates() {
		if st.State == workloadv1alpha1.ResourceStateUnauthorized {
			// Objects of a type the syncer may no longer read could still be in there.
			return fmt.Errorf("cannot tell whether namespace is empty: %s is unauthorized", st.String())
		}
	}
	ns, err := s.engine.namespaceLister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.DeletionTimestamp != nil {
		return nil
	}
	loc, ok := m.locatorOf(name)
	if !ok {
		return nil
	}
	if n := s.engine.downstreamObjectsIn(name); n > 0 {
		klog.FromContext(ctx).V(4).Info("Keeping downstream namespace: it holds synced objects", "objects", n)
		return nil
	}
	if s.engine.upstreamSynced(loc.ClusterName) && s.engine.upstreamObjectsIn(loc.ClusterName, loc.Namespace) > 0 {
		klog.FromContext(ctx).V(4).Info("Keeping downstream namespace: its upstream namespace holds synced objects")
		return nil
	}
	err = s.downstreamKube.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: ptr.To(ns.UID)},
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to delete downstream namespace: %w", err)
	}
	s.metrics.downstreamWrite(operationDeleteNamespace)
	klog.FromContext(ctx).V(2).Info("Deleted empty downstream namespace", "workspace", loc.ClusterName, "upstreamNamespace", loc.Namespace)
	return nil
}
