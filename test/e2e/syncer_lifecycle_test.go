package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// Metric names as the syncer exposes them (pkg/reconciler/workload/syncer/metrics.go and
// pkg/reconciler/workload/tmc/recovery_metrics.go).
const (
	metricSyncerErrors       = "syncer_errors_total"
	metricResourceConflicts  = "syncer_resource_conflicts_total"
	metricRecoveryAttempts   = "tmc_recovery_attempts_total"
	lifecycleCleanDelay      = 3 * time.Second // --downstream-namespace-clean-delay of the harness
	lifecycleSamplePeriod    = 100 * time.Millisecond
	lifecycleStablePeriod    = 500 * time.Millisecond
	lifecycleDeletionTimeout = 60 * time.Second
)

func labelledConfigMap(name string, labels map[string]string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Data: data}
}

func labelledService(name string, labels map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
}

// holdFor checks cond every 500ms for d and fails the test at the first check that does not
// hold (or errors).
func holdFor(t *testing.T, d time.Duration, what string, cond func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if err := cond(t.Context()); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if time.Now().After(deadline) {
			return
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("%s: %v", what, t.Context().Err())
		case <-time.After(lifecycleStablePeriod):
		}
	}
}

// waitDownstreamConfigMap waits until the downstream copy of a ConfigMap exists and carries
// the ownership label, and returns it.
func (se *syncerEnv) waitDownstreamConfigMap(t *testing.T, ws, ns, name string, timeout time.Duration) *corev1.ConfigMap {
	t.Helper()
	down := se.downstreamKube(t)
	dns := se.downstreamNamespace(t, ws, ns)
	var got *corev1.ConfigMap
	eventually(t, timeout, fmt.Sprintf("ConfigMap %s/%s of %s did not appear downstream in %s", ns, name, ws, dns), func(ctx context.Context) (bool, error) {
		cm, err := down.CoreV1().ConfigMaps(dns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || cm.Labels[workloadv1alpha1.InternalDownstreamClusterLabel] != se.stKey {
			return false, nil
		}
		got = cm
		return true, nil
	})
	return got
}

// eventsFor lists the Events of an upstream object in namespace ns of the workspace.
func eventsFor(ctx context.Context, c kubernetes.Interface, ns, name string) ([]corev1.Event, error) {
	list, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// waitEvent waits for an Event with reason on the upstream object ns/name and returns it.
func waitEvent(t *testing.T, c kubernetes.Interface, ns, name, reason string, timeout time.Duration) corev1.Event {
	t.Helper()
	var found corev1.Event
	var seen []string
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		events, err := eventsFor(ctx, c, ns, name)
		if err != nil {
			return false, nil
		}
		seen = seen[:0]
		for _, e := range events {
			seen = append(seen, e.Reason+": "+e.Message)
			if e.Reason == reason {
				found = e
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no Event with reason %s on upstream %s/%s within %s (events seen: %q): %v", reason, ns, name, timeout, seen, err)
	}
	return found
}

// updateUpstreamConfigMap changes an upstream ConfigMap with mutate, retrying on conflicts
// (the syncer writes finalizers and labels on the same object).
func updateUpstreamConfigMap(t *testing.T, c kubernetes.Interface, ns, name string, mutate func(cm *corev1.ConfigMap)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := c.CoreV1().ConfigMaps(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		mutate(cm)
		_, err = c.CoreV1().ConfigMaps(ns).Update(t.Context(), cm, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("failed to update upstream ConfigMap %s/%s: %v", ns, name, err)
	}
}

// TestSyncerDeletion covers the deletion order (downstream copy first, then the upstream
// finalizer), the delayed clean-up of empty downstream namespaces, that a restart never
// deletes anything, and per-target removal with a soft finalizer.
func TestSyncerDeletion(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	se := setupSyncerEnv(t)
	sp := se.startSyncer(t, syncerOptions{})
	labels := se.syncLabels()
	up := se.upstreamKube(t, wsA)
	down := se.downstreamKube(t)
	finalizer := workloadv1alpha1.SyncerFinalizerName(se.stKey)
	stateLabel := workloadv1alpha1.ClusterResourceStateLabel(se.stKey)

	for _, ns := range []string{"orders", "keep", "detach"} {
		se.createUpstreamNamespace(t, wsA, ns)
	}
	if _, err := up.CoreV1().ConfigMaps("orders").Create(ctx, labelledConfigMap("settings", labels, map[string]string{"a": "1"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := up.AppsV1().Deployments("orders").Create(ctx, deployment("web", 1, labels), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := up.CoreV1().ConfigMaps("keep").Create(ctx, labelledConfigMap("kept", labels, map[string]string{"k": "v"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := up.CoreV1().ConfigMaps("detach").Create(ctx, labelledConfigMap("detached", labels, map[string]string{"d": "1"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	ordersNS := se.downstreamNamespace(t, wsA, "orders")
	keepNS := se.downstreamNamespace(t, wsA, "keep")
	detachNS := se.downstreamNamespace(t, wsA, "detach")
	se.waitDownstreamConfigMap(t, wsA, "orders", "settings", 60*time.Second)
	se.waitDownstreamConfigMap(t, wsA, "keep", "kept", 60*time.Second)
	se.waitDownstreamConfigMap(t, wsA, "detach", "detached", 60*time.Second)
	eventually(t, 60*time.Second, "deployment orders/web did not appear downstream in "+ordersNS, func(ctx context.Context) (bool, error) {
		d, err := down.AppsV1().Deployments(ordersNS).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Labels[workloadv1alpha1.InternalDownstreamClusterLabel] == se.stKey, nil
	})
	eventually(t, 30*time.Second, "upstream deployment orders/web did not get the syncer finalizer", func(ctx context.Context) (bool, error) {
		d, err := up.AppsV1().Deployments("orders").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && containsString(d.Finalizers, finalizer), nil
	})

	// 1. Upstream delete → downstream delete → finalizer released → upstream gone. A test
	// finalizer on the downstream copy keeps it (terminating) for a few seconds, so that the
	// order is observable and not just a race of a few milliseconds. Every sample reads
	// upstream first, then downstream: once the upstream object has lost the syncer finalizer
	// (or is gone), a later read must never find the downstream copy.
	const holdFinalizer = "e2e.tmc.dev/hold"
	const holdDownstream = 4 * time.Second
	setDownstreamFinalizers(t, down, ordersNS, "web", []string{holdFinalizer})
	t.Log("deleting the upstream deployment orders/web")
	if err := up.AppsV1().Deployments("orders").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	var downTerminatingAt, downGoneAt, finalizerGoneAt time.Duration
	released := false
	samplesWithBoth := 0
	for {
		if time.Since(began) > lifecycleDeletionTimeout {
			switch {
			case downTerminatingAt == 0:
				t.Fatalf("the syncer did not delete the downstream deployment %s/web within %s of the upstream delete", ordersNS, lifecycleDeletionTimeout)
			case downGoneAt == 0:
				t.Fatalf("the downstream deployment %s/web was not gone within %s of the upstream delete", ordersNS, lifecycleDeletionTimeout)
			case finalizerGoneAt == 0:
				t.Fatalf("the downstream deployment is gone (after %s) but the upstream finalizer %s was not removed within %s", downGoneAt, finalizer, lifecycleDeletionTimeout)
			default:
				t.Fatalf("the upstream finalizer was removed (after %s) but the upstream deployment is still there after %s", finalizerGoneAt, lifecycleDeletionTimeout)
			}
		}
		now := time.Since(began)
		u, uErr := up.AppsV1().Deployments("orders").Get(ctx, "web", metav1.GetOptions{})
		d, dErr := down.AppsV1().Deployments(ordersNS).Get(ctx, "web", metav1.GetOptions{})
		if uErr != nil && !apierrors.IsNotFound(uErr) {
			t.Fatalf("reading the upstream deployment: %v", uErr)
		}
		if dErr != nil && !apierrors.IsNotFound(dErr) {
			t.Fatalf("reading the downstream deployment: %v", dErr)
		}
		upExists := uErr == nil
		upHasFinalizer := upExists && containsString(u.Finalizers, finalizer)
		downExists := dErr == nil

		if downExists {
			if downGoneAt != 0 {
				t.Fatalf("the downstream deployment was seen gone after %s and re-appeared after %s", downGoneAt, now)
			}
			if !upHasFinalizer {
				t.Fatalf("after %s the upstream deployment was released (exists=%v, finalizers=%v) while the downstream copy still existed (deletionTimestamp=%v)", now, upExists, finalizersOf(u, upExists), d.DeletionTimestamp)
			}
			if u.DeletionTimestamp == nil {
				t.Fatalf("the upstream deployment has no deletionTimestamp after being deleted")
			}
			samplesWithBoth++
			if d.DeletionTimestamp != nil && downTerminatingAt == 0 {
				downTerminatingAt = now
				t.Logf("the syncer deleted the downstream deployment after %s; holding it with %s for %s", now, holdFinalizer, holdDownstream)
			}
			if downTerminatingAt != 0 && !released && now-downTerminatingAt >= holdDownstream {
				setDownstreamFinalizers(t, down, ordersNS, "web", nil)
				released = true
				t.Logf("released the downstream deployment after %s", now)
			}
		} else if downGoneAt == 0 {
			if downTerminatingAt == 0 {
				t.Fatalf("the downstream deployment vanished after %s without being seen terminating, despite the %s finalizer", now, holdFinalizer)
			}
			downGoneAt = now
			t.Logf("downstream deployment gone after %s", now)
		}
		if !upHasFinalizer && finalizerGoneAt == 0 {
			if downGoneAt == 0 {
				t.Fatalf("the upstream finalizer was removed after %s, before the downstream copy was seen gone", now)
			}
			finalizerGoneAt = now
			t.Logf("upstream finalizer removed after %s (upstream object exists=%v)", now, upExists)
		}
		if !upExists {
			t.Logf("upstream deployment gone after %s", now)
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(lifecycleSamplePeriod):
		}
	}
	t.Logf("deletion order held: %d samples with the downstream copy still present, all with the upstream finalizer in place", samplesWithBoth)
	if _, err := down.CoreV1().Namespaces().Get(ctx, ordersNS, metav1.GetOptions{}); err != nil {
		t.Fatalf("downstream namespace %s must stay while it holds the ConfigMap: %v", ordersNS, err)
	}

	// 2. The last object goes: the namespace stays while the upstream namespace exists, and
	// is removed once the upstream namespace is deleted.
	t.Log("deleting the upstream ConfigMap orders/settings")
	if err := up.CoreV1().ConfigMaps("orders").Delete(ctx, "settings", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var lastGone time.Time
	eventually(t, lifecycleDeletionTimeout, "the downstream ConfigMap "+ordersNS+"/settings was not deleted", func(ctx context.Context) (bool, error) {
		_, err := down.CoreV1().ConfigMaps(ordersNS).Get(ctx, "settings", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			lastGone = time.Now()
			return true, nil
		}
		return false, nil
	})
	// An empty downstream namespace stays while its upstream namespace lives (issue 11:
	// emptiness alone never deletes; a StatefulSet's PVCs would go with it).
	holdFor(t, 3*lifecycleCleanDelay, "downstream namespace "+ordersNS+" must stay while upstream namespace orders exists", func(ctx context.Context) error {
		ns, err := down.CoreV1().Namespaces().Get(ctx, ordersNS, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("namespace: %w", err)
		}
		if ns.DeletionTimestamp != nil {
			return fmt.Errorf("namespace %s is being deleted (since %s)", ordersNS, ns.DeletionTimestamp)
		}
		return nil
	})
	t.Log("deleting the upstream namespace orders")
	if err := up.CoreV1().Namespaces().Delete(ctx, "orders", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	lastGone = time.Now()
	var deletionSeen time.Duration
	eventually(t, 30*time.Second, "the empty downstream namespace "+ordersNS+" was not deleted within 30s of its upstream namespace", func(ctx context.Context) (bool, error) {
		ns, err := down.CoreV1().Namespaces().Get(ctx, ordersNS, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return false, nil
		}
		if deletionSeen == 0 && (apierrors.IsNotFound(err) || ns.DeletionTimestamp != nil) {
			deletionSeen = time.Since(lastGone)
			t.Logf("downstream namespace %s deletion started %s after its upstream namespace was deleted", ordersNS, deletionSeen)
		}
		return apierrors.IsNotFound(err), nil
	})

	// 3. A restart never deletes anything (kcp bug #2041): the namespace of "keep" and its
	// ConfigMap survive well beyond the clean delay, untouched.
	before, err := down.CoreV1().ConfigMaps(keepNS).Get(ctx, "kept", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("restarting the syncer")
	sp.restart(t)
	holdFor(t, 10*time.Second, "after a syncer restart, downstream namespace "+keepNS+" and its ConfigMap must stay untouched", func(ctx context.Context) error {
		ns, err := down.CoreV1().Namespaces().Get(ctx, keepNS, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("namespace: %w", err)
		}
		if ns.DeletionTimestamp != nil {
			return fmt.Errorf("namespace %s is being deleted (since %s)", keepNS, ns.DeletionTimestamp)
		}
		cm, err := down.CoreV1().ConfigMaps(keepNS).Get(ctx, "kept", metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("ConfigMap: %w", err)
		}
		if cm.ResourceVersion != before.ResourceVersion {
			return fmt.Errorf("ConfigMap %s/kept was written: resourceVersion %s → %s", keepNS, before.ResourceVersion, cm.ResourceVersion)
		}
		return nil
	})

	// 4. Per-target removal, held by a soft finalizer.
	t.Log("requesting per-target removal of detach/detached with a soft finalizer")
	updateUpstreamConfigMap(t, up, "detach", "detached", func(cm *corev1.ConfigMap) {
		if cm.Annotations == nil {
			cm.Annotations = map[string]string{}
		}
		cm.Annotations[workloadv1alpha1.DeletionAnnotation(se.stKey)] = time.Now().UTC().Format(time.RFC3339)
		cm.Annotations[workloadv1alpha1.SoftFinalizersAnnotation(se.stKey)] = "external"
	})
	holdFor(t, 5*time.Second, "a soft finalizer must hold back the per-target removal of "+detachNS+"/detached", func(ctx context.Context) error {
		cm, err := down.CoreV1().ConfigMaps(detachNS).Get(ctx, "detached", metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("downstream copy: %w", err)
		}
		if cm.DeletionTimestamp != nil {
			return fmt.Errorf("the downstream copy is being deleted")
		}
		return nil
	})
	t.Log("removing the soft finalizer")
	updateUpstreamConfigMap(t, up, "detach", "detached", func(cm *corev1.ConfigMap) {
		delete(cm.Annotations, workloadv1alpha1.SoftFinalizersAnnotation(se.stKey))
	})
	eventually(t, lifecycleDeletionTimeout, "the downstream copy "+detachNS+"/detached was not removed after the soft finalizer went", func(ctx context.Context) (bool, error) {
		_, err := down.CoreV1().ConfigMaps(detachNS).Get(ctx, "detached", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	var last *corev1.ConfigMap
	eventually(t, 30*time.Second, "the upstream ConfigMap detach/detached was not released (state label, syncer finalizer and deletion annotation removed)", func(ctx context.Context) (bool, error) {
		cm, err := up.CoreV1().ConfigMaps("detach").Get(ctx, "detached", metav1.GetOptions{})
		if err != nil {
			return false, fmt.Errorf("the upstream object must survive a per-target removal: %w", err)
		}
		last = cm
		_, hasLabel := cm.Labels[stateLabel]
		_, hasAnnotation := cm.Annotations[workloadv1alpha1.DeletionAnnotation(se.stKey)]
		return !hasLabel && !hasAnnotation && !containsString(cm.Finalizers, finalizer), nil
	})
	if last.DeletionTimestamp != nil {
		t.Errorf("the upstream ConfigMap detach/detached is being deleted; a per-target removal must leave it alone")
	}
	if last.Data["d"] != "1" {
		t.Errorf("the upstream ConfigMap detach/detached lost its data: %v", last.Data)
	}
}

// setDownstreamFinalizers sets the finalizers of a downstream deployment (as admin).
func setDownstreamFinalizers(t *testing.T, c kubernetes.Interface, ns, name string, finalizers []string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := c.AppsV1().Deployments(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Finalizers = finalizers
		_, err = c.AppsV1().Deployments(ns).Update(t.Context(), d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("failed to set the finalizers of downstream deployment %s/%s: %v", ns, name, err)
	}
}

func finalizersOf(d interface{ GetFinalizers() []string }, exists bool) []string {
	if !exists {
		return nil
	}
	return d.GetFinalizers()
}
