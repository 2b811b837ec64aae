package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/tmc-dev/tmc/pkg/localenv"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/release"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/resource"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// releaseGrace is the controller's --synctarget-release-grace in the tests that need the
// controller to release without the syncer.
const releaseGrace = 15 * time.Second

// restartControllerWithReleaseGrace replaces the placement environment's controller by one
// with --synctarget-release-grace=grace (the heartbeat threshold stays 10s).
func (pe *placementEnv) restartControllerWithReleaseGrace(t *testing.T, grace time.Duration) {
	t.Helper()
	if err := pe.controller.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	c, err := pe.env.StartController(t.Context(), localenv.ControllerOptions{
		Binary:                 filepath.Join(binDir, "tmc-controller"),
		Name:                   "tmc-controller-release",
		User:                   controllerUser,
		LocationWorkspaces:     []string{locationWS},
		Workspaces:             []string{wsA},
		HeartbeatThreshold:     10 * time.Second,
		UnhealthyGracePeriod:   10 * time.Minute,
		SyncTargetReleaseGrace: grace,
		QPS:                    -1,
		Verbosity:              2,
		ReadyTimeout:           60 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	pe.controller = c
}

// placeWithDeployments creates a Placement (unless one exists), waits until both targets
// are available, creates namespace ns with the given Deployments (one replica each) and
// waits until they run on the target it was placed on, which it returns.
func (pe *placementEnv) placeWithDeployments(t *testing.T, ns string, deployments map[string]map[string]string) string {
	t.Helper()
	ctx := t.Context()
	upA := kubeClient(t, pe.env.Workspace(wsA).AdminConfig())
	placed := map[string]string{"tmc.dev/placed": "true"}
	if _, err := tmcClient(t, pe.env.Workspace(wsA).AdminConfig()).SchedulingV1alpha1().Placements().Get(ctx, "web", metav1.GetOptions{}); apierrors.IsNotFound(err) {
		pe.createPlacement(t, "web", placed)
	}
	eventually(t, 60*time.Second, "the Location did not count both targets available", func(ctx context.Context) (bool, error) {
		loc, err := tmcClient(t, pe.env.Workspace(locationWS).AdminConfig()).SchedulingV1alpha1().Locations().Get(ctx, "everywhere", metav1.GetOptions{})
		return err == nil && loc.Status.AvailableInstances != nil && *loc.Status.AvailableInstances == 2, nil
	})
	createNamespace(t, upA, ns, placed)
	eventually(t, 60*time.Second, "namespace "+ns+" was not scheduled", func(ctx context.Context) (bool, error) {
		return len(pe.targetsOf(ctx, t, ns)) == 1, nil
	})
	target := pe.targetsOf(ctx, t, ns)[0]
	for name, annotations := range deployments {
		d := deployment(name, 1, nil)
		d.Annotations = annotations
		if _, err := upA.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 90*time.Second, "the Deployments of "+ns+" did not run on "+target, func(ctx context.Context) (bool, error) {
		for name := range deployments {
			if pe.readyReplicas(ctx, t, target, ns, name) != 1 {
				return false, nil
			}
		}
		return true, nil
	})
	return target
}

// keysLeft lists the upstream namespace ns and the objects in it (Deployments, ConfigMaps,
// ServiceAccounts) that still carry a state label, a per-target annotation or the syncer
// finalizer of stKey.
func keysLeft(ctx context.Context, c kubernetes.Interface, ns, stKey string) ([]string, error) {
	var out []string
	check := func(kind string, o metav1.Object) {
		if slices.Contains(resource.TargetKeys(o.GetLabels(), o.GetAnnotations(), o.GetFinalizers()), stKey) {
			out = append(out, kind+"/"+o.GetName())
		}
	}
	n, err := c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	check("Namespace", n)
	deployments, err := c.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for i := range deployments.Items {
		check("Deployment", &deployments.Items[i])
	}
	configMaps, err := c.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for i := range configMaps.Items {
		check("ConfigMap", &configMaps.Items[i])
	}
	serviceAccounts, err := c.CoreV1().ServiceAccounts(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for i := range serviceAccounts.Items {
		check("ServiceAccount", &serviceAccounts.Items[i])
	}
	return out, nil
}

// releaseEvents returns the SyncTargetReleased Events on upstream namespace ns (Events on
// a namespace live in "default").
func releaseEvents(ctx context.Context, c kubernetes.Interface, ns string) ([]corev1.Event, error) {
	events, err := eventsFor(ctx, c, metav1.NamespaceDefault, ns)
	if err != nil {
		return nil, err
	}
	var out []corev1.Event
	for _, e := range events {
		if e.InvolvedObject.Kind == "Namespace" && e.Reason == release.EventReasonReleased {
			out = append(out, e)
		}
	}
	return out, nil
}

// waitReleaseEvent waits for a SyncTargetReleased Warning on upstream namespace ns naming
// SyncTarget target and the physical cluster where copies may remain.
func waitReleaseEvent(t *testing.T, c kubernetes.Interface, ns, target string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, fmt.Sprintf("no %s Event on namespace %s naming SyncTarget %s", release.EventReasonReleased, ns, target), func(ctx context.Context) (bool, error) {
		events, err := releaseEvents(ctx, c, ns)
		if err != nil {
			return false, nil
		}
		for _, e := range events {
			if e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, "SyncTarget "+target+" (location workspace "+locationWS+")") &&
				strings.Contains(e.Message, "copies may remain on the physical cluster of SyncTarget "+target) {
				t.Logf("Event on namespace %s: %s", ns, e.Message)
				return true, nil
			}
		}
		return false, nil
	})
}

// TestSyncTargetReleaseWithoutSyncer covers the SyncTargets whose syncer never comes back
// (issue 11, acceptance 1 scenario 3 and point 4): first a target whose syncer was killed is
// drained, and its namespace moves to the other target while the controller releases the
// old target's finalizers and per-target keys after threshold + grace; then the other
// target's syncer is killed, its SyncTarget deleted and the upstream namespace deleted: the
// namespace is fully deleted within grace + 30s, with an Event naming the physical cluster
// where copies may remain, and the SyncTarget is gone.
func TestSyncTargetReleaseWithoutSyncer(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pe := setupPlacementEnv(t)
	pe.restartControllerWithReleaseGrace(t, releaseGrace)
	upA := kubeClient(t, pe.env.Workspace(wsA).AdminConfig())
	locTMC := tmcClient(t, pe.env.Workspace(locationWS).AdminConfig())

	eventually(t, 30*time.Second, "the controller did not add its finalizer to both SyncTargets", func(ctx context.Context) (bool, error) {
		for name := range pe.targets {
			if !slices.Contains(pe.syncTarget(ctx, t, name).Finalizers, workloadv1alpha1.SyncTargetCleanupFinalizer) {
				return false, nil
			}
		}
		return true, nil
	})
	first := pe.placeWithDeployments(t, "app", map[string]map[string]string{"web": nil})
	other := map[string]string{"east": "west", "west": "east"}[first]

	// 1. Drain a target whose syncer is dead: the namespace moves, and the dead target's
	// keys are released without its syncer.
	if err := pe.targets[first].syncer.Kill(); err != nil {
		t.Fatal(err)
	}
	st := pe.syncTarget(ctx, t, first)
	now := metav1.Now()
	st.Spec.EvictAfter = &now
	if _, err := locTMC.WorkloadV1alpha1().SyncTargets().Update(ctx, st, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	firstKey := pe.targets[first].key
	localenv.Eventually(t, 200*time.Millisecond, 180*time.Second, "app did not move off the drained dead target with its keys released", func(ctx context.Context) (bool, string, error) {
		left, err := keysLeft(ctx, upA, "app", firstKey)
		if err != nil {
			return false, err.Error(), nil
		}
		targets, ready := pe.targetsOf(ctx, t, "app"), pe.readyReplicas(ctx, t, other, "app", "web")
		return len(left) == 0 && strings.Join(targets, ",") == other && ready == 1,
			fmt.Sprintf("placed on %v, %d ready on %s, %s keys left on %v", targets, ready, other, first, left), nil
	})
	waitReleaseEvent(t, upA, "app", first, 10*time.Second)
	if !slices.Contains(pe.syncTarget(ctx, t, first).Finalizers, workloadv1alpha1.SyncTargetCleanupFinalizer) {
		t.Errorf("the drained SyncTarget %s lost the controller's finalizer although it was not deleted", first)
	}

	// 2. Kill the other target's syncer, delete its SyncTarget, then the upstream namespace.
	if err := pe.targets[other].syncer.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := locTMC.WorkloadV1alpha1().SyncTargets().Delete(ctx, other, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	if err := upA.CoreV1().Namespaces().Delete(ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, releaseGrace+30*time.Second, "the upstream namespace was not fully deleted within grace + 30s of the SyncTarget's deletion", func(ctx context.Context) (bool, error) {
		_, err := upA.CoreV1().Namespaces().Get(ctx, "app", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	t.Logf("the upstream namespace was gone %s after SyncTarget %s was deleted (grace %s)", time.Since(deleted).Round(100*time.Millisecond), other, releaseGrace)
	waitReleaseEvent(t, upA, "app", other, 10*time.Second)
	eventually(t, 30*time.Second, "SyncTarget "+other+" was not deleted once released", func(ctx context.Context) (bool, error) {
		_, err := locTMC.WorkloadV1alpha1().SyncTargets().Get(ctx, other, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if n := metricValue(t, pe.controller.MetricsURL, release.ReleasedMetric, map[string]string{"reason": release.ReasonSyncTargetDeleted, "kind": "object"}); n < 1 {
		t.Errorf("%s{reason=%s,kind=object} = %v, want at least 1", release.ReleasedMetric, release.ReasonSyncTargetDeleted, n)
	}
	if n := metricValue(t, pe.controller.MetricsURL, release.ReleasedMetric, map[string]string{"reason": release.ReasonSyncerHeartbeatLost, "kind": "object"}); n < 1 {
		t.Errorf("%s{reason=%s,kind=object} = %v, want at least 1", release.ReleasedMetric, release.ReasonSyncerHeartbeatLost, n)
	}
}

// TestSyncTargetDeletedWithLiveSyncer covers acceptance 2: a SyncTarget deleted while its
// syncer runs. The syncer removes the downstream copy, except that of a Deployment with
// the deletion policy Orphan, which keeps running without the ownership label; the upstream
// objects are released, and the SyncTarget goes. The controller's grace is long, so that
// only the syncer can have done it.
func TestSyncTargetDeletedWithLiveSyncer(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pe := setupPlacementEnv(t)
	pe.restartControllerWithReleaseGrace(t, 10*time.Minute)
	upA := kubeClient(t, pe.env.Workspace(wsA).AdminConfig())
	target := pe.placeWithDeployments(t, "live", map[string]map[string]string{
		"web":  nil,
		"kept": {workloadv1alpha1.DeletionPolicyAnnotation: workloadv1alpha1.DeletionPolicyOrphan},
	})
	tgt := pe.targets[target]
	down := kubeClient(t, tgt.cluster.AdminConfig())
	downstreamNS := pe.downstreamNS(t, target, "live")
	eventually(t, 30*time.Second, "the controller did not add its finalizer", func(ctx context.Context) (bool, error) {
		return slices.Contains(pe.syncTarget(ctx, t, target).Finalizers, workloadv1alpha1.SyncTargetCleanupFinalizer), nil
	})

	if err := tmcClient(t, pe.env.Workspace(locationWS).AdminConfig()).WorkloadV1alpha1().SyncTargets().Delete(ctx, target, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "the syncer did not remove the downstream copy of web", func(ctx context.Context) (bool, error) {
		_, err := down.AppsV1().Deployments(downstreamNS).Get(ctx, "web", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	localenv.Eventually(t, 200*time.Millisecond, 60*time.Second, "the upstream objects were not released", func(ctx context.Context) (bool, string, error) {
		left, err := keysLeft(ctx, upA, "live", tgt.key)
		if err != nil {
			return false, err.Error(), nil
		}
		return len(left) == 0, fmt.Sprintf("keys left on %v", left), nil
	})
	eventually(t, 30*time.Second, "SyncTarget "+target+" was not deleted once released", func(ctx context.Context) (bool, error) {
		_, err := tmcClient(t, pe.env.Workspace(locationWS).AdminConfig()).WorkloadV1alpha1().SyncTargets().Get(ctx, target, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	kept, err := down.AppsV1().Deployments(downstreamNS).Get(ctx, "kept", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the downstream copy of the Orphan Deployment is gone: %v", err)
	}
	if owner, ok := kept.Labels[workloadv1alpha1.InternalDownstreamClusterLabel]; ok {
		t.Errorf("the orphaned copy still carries the ownership label %s=%s", workloadv1alpha1.InternalDownstreamClusterLabel, owner)
	}
	if kept.Status.ReadyReplicas != 1 {
		t.Errorf("the orphaned copy has %d ready replicas, want 1", kept.Status.ReadyReplicas)
	}
	if events, err := releaseEvents(ctx, upA, "live"); err != nil || len(events) != 0 {
		t.Errorf("the controller released without the syncer (%v, err %v); the live syncer must have done it", events, err)
	}
}
