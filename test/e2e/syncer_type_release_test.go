package e2e

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// TestSyncerTypeRemovedWhileDown (issue 11, Build item 6 with acceptance 4): configmaps and
// a Deployment are synced; the syncer is SIGKILLed; configmaps are removed from
// spec.resources while it is down; started again, it knows from the previous run's
// status.syncedResources that it synced configmaps, releases their upstream finalizers
// (so that an upstream delete completes), leaves the downstream copies untouched, keeps
// syncing the Deployment, and stops reporting configmaps once released.
func TestSyncerTypeRemovedWhileDown(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	se := setupSyncerEnv(t)
	sp := se.startSyncer(t, syncerOptions{})
	up, down := se.upstreamKube(t, wsA), se.downstreamKube(t)
	const ns = "app"
	se.createPlacedNamespace(t, wsA, ns)
	names := indexedNames("cm", 3)
	if err := createConfigMaps(ctx, up, ns, names, se.syncLabels(), 3); err != nil {
		t.Fatal(err)
	}
	if _, err := up.AppsV1().Deployments(ns).Create(ctx, deployment("web", 1, se.syncLabels()), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dns := se.downstreamNamespace(t, wsA, ns)
	finalizer := workloadv1alpha1.SyncerFinalizerName(se.stKey)
	waitUpstreamFinalizers(t, up, ns, names, finalizer, true)
	eventually(t, 60*time.Second, "the ConfigMaps and the Deployment to be synced down", func(ctx context.Context) (bool, error) {
		have, err := downstreamConfigMaps(ctx, down, dns, se.ownershipSelector())
		if err != nil || len(have) != len(names) {
			return false, nil
		}
		_, err = down.AppsV1().Deployments(dns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil, nil
	})
	// The previous run's status is what the restarted syncer learns the synced types from.
	eventually(t, 30*time.Second, "configmaps reported Accepted in status.syncedResources", func(ctx context.Context) (bool, error) {
		return se.syncedResourceState(t, ctx, "configmaps") == workloadv1alpha1.ResourceStateAccepted, nil
	})
	versionsBefore, _ := downstreamResourceVersions(t, down, dns, se.ownershipSelector())

	if err := sp.Kill(); err != nil {
		t.Fatalf("failed to kill the syncer: %v", err)
	}
	if err := sp.ExitError(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the syncer did not die of SIGKILL: exit %v", err)
	}
	withoutConfigMaps := slices.DeleteFunc(workloadv1alpha1.DefaultResources(), func(r workloadv1alpha1.ResourceToSync) bool {
		return r.Group == "" && r.Resource == "configmaps"
	})
	se.setResources(t, withoutConfigMaps)
	t.Log("removed configmaps from spec.resources while the syncer was down; starting it again")
	if err := sp.Start(); err != nil {
		t.Fatalf("failed to start the syncer again: %v", err)
	}
	if _, err := sp.WaitReady(ctx, 90*time.Second); err != nil {
		t.Fatalf("the restarted syncer did not become ready: %v", err)
	}

	waitUpstreamFinalizers(t, up, ns, names, finalizer, false)
	if err := up.CoreV1().ConfigMaps(ns).Delete(ctx, names[0], metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the upstream delete of "+names[0]+" to complete", func(ctx context.Context) (bool, error) {
		_, err := up.CoreV1().ConfigMaps(ns).Get(ctx, names[0], metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	eventually(t, 30*time.Second, "configmaps no longer reported once released", func(ctx context.Context) (bool, error) {
		return se.syncedResourceState(t, ctx, "configmaps") == "", nil
	})

	// The other type keeps syncing: a change of the Deployment reaches the copy.
	patch := []byte(`{"spec":{"replicas":2}}`)
	if _, err := up.AppsV1().Deployments(ns).Patch(ctx, "web", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the Deployment change to reach the copy", func(ctx context.Context) (bool, error) {
		d, err := down.AppsV1().Deployments(dns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Spec.Replicas != nil && *d.Spec.Replicas == 2, nil
	})

	// Give the syncer every chance to act wrongly on the copies and their namespace.
	holdFor(t, 4*syncerCleanDelay, "the downstream copies to stay untouched", func(ctx context.Context) error {
		versions, _ := downstreamResourceVersions(t, down, dns, se.ownershipSelector())
		if !maps.Equal(versions, versionsBefore) {
			return fmt.Errorf("downstream ConfigMaps changed: %v, were %v", versions, versionsBefore)
		}
		return nil
	})
}

// syncedResourceState returns the state the SyncTarget reports for the core resource res,
// "" if it is not reported.
func (se *syncerEnv) syncedResourceState(t *testing.T, ctx context.Context, res string) workloadv1alpha1.ResourceState {
	t.Helper()
	st, err := tmcClient(t, se.env.Workspace(locationWS).AdminConfig()).WorkloadV1alpha1().SyncTargets().Get(ctx, clusterName, metav1.GetOptions{})
	if err != nil {
		return "<" + workloadv1alpha1.ResourceState(err.Error()) + ">"
	}
	for _, r := range st.Status.SyncedResources {
		if r.Group == "" && r.Resource == res {
			return r.State
		}
	}
	return ""
}

// TestSyncTargetReleaseUncachedType: the syncer syncs configmaps, which the tmc-controller's
// --resources (deployments only) does not cover. The syncer is killed and its SyncTarget
// deleted: after the grace period the controller finds the ConfigMap by a live list, releases
// it (an upstream delete then completes) and only then lets the SyncTarget go.
func TestSyncTargetReleaseUncachedType(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	se := setupSyncerEnv(t, func(o *localenv.Options) { o.Users = append(o.Users, controllerUser) })
	sp := se.startSyncer(t, syncerOptions{})
	up := se.upstreamKube(t, wsA)
	const ns = "app"
	se.createPlacedNamespace(t, wsA, ns)
	names := indexedNames("cm", 2)
	if err := createConfigMaps(ctx, up, ns, names, se.syncLabels(), 2); err != nil {
		t.Fatal(err)
	}
	finalizer := workloadv1alpha1.SyncerFinalizerName(se.stKey)
	waitUpstreamFinalizers(t, up, ns, names, finalizer, true)
	eventually(t, 30*time.Second, "configmaps reported Accepted in status.syncedResources", func(ctx context.Context) (bool, error) {
		return se.syncedResourceState(t, ctx, "configmaps") == workloadv1alpha1.ResourceStateAccepted, nil
	})

	// The controller watches Placements in the workload workspace.
	if err := localenv.InstallCRDs(ctx, se.env.Workspace(wsA).AdminConfig()); err != nil {
		t.Fatal(err)
	}
	if err := se.env.GrantController(ctx, controllerUser, locationWS, wsA); err != nil {
		t.Fatal(err)
	}
	if _, err := se.env.StartController(ctx, localenv.ControllerOptions{
		Binary: filepath.Join(binDir, "tmc-controller"), User: controllerUser,
		LocationWorkspaces: []string{locationWS}, Workspaces: []string{wsA},
		HeartbeatThreshold: 10 * time.Second, UnhealthyGracePeriod: 10 * time.Minute, SyncTargetReleaseGrace: releaseGrace,
		QPS: -1, Verbosity: 2, ReadyTimeout: 60 * time.Second, ExtraArgs: []string{"--resources=deployments.apps"},
	}); err != nil {
		t.Fatal(err)
	}
	locTMC := tmcClient(t, se.env.Workspace(locationWS).AdminConfig())
	eventually(t, 30*time.Second, "the controller's finalizer on the SyncTarget", func(ctx context.Context) (bool, error) {
		st, err := locTMC.WorkloadV1alpha1().SyncTargets().Get(ctx, clusterName, metav1.GetOptions{})
		return err == nil && slices.Contains(st.Finalizers, workloadv1alpha1.SyncTargetCleanupFinalizer), nil
	})

	if err := sp.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := locTMC.WorkloadV1alpha1().SyncTargets().Delete(ctx, clusterName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	if err := up.CoreV1().ConfigMaps(ns).Delete(ctx, names[0], metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, releaseGrace+30*time.Second, "the upstream delete of "+names[0]+" to complete within grace + 30s", func(ctx context.Context) (bool, error) {
		_, err := up.CoreV1().ConfigMaps(ns).Get(ctx, names[0], metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	t.Logf("the upstream ConfigMap was gone %s after the SyncTarget's deletion (grace %s)", time.Since(deleted).Round(100*time.Millisecond), releaseGrace)
	waitUpstreamFinalizers(t, up, ns, names[1:], finalizer, false)
	eventually(t, 30*time.Second, "the SyncTarget to go once released", func(ctx context.Context) (bool, error) {
		_, err := locTMC.WorkloadV1alpha1().SyncTargets().Get(ctx, clusterName, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}
