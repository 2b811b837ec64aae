package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// TestUpsyncPods: the Pods of a synced Deployment appear in the workspace namespace with
// their downstream phase and node, follow a scale-down and go with the Deployment; and
// once the SyncTarget is deleted (a tmc-controller holding its finalizer, the syncer live),
// no upsynced object is left upstream and the SyncTarget is gone (issue 14, acceptance 1).
func TestUpsyncPods(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	se := setupSyncerEnv(t, func(o *localenv.Options) { o.Users = append(o.Users, controllerUser) })
	se.startSyncer(t, syncerOptions{})
	up := se.upstreamKube(t, wsA)
	down := se.downstreamKube(t)
	se.createUpstreamNamespace(t, wsA, "shop")
	if _, err := up.AppsV1().Deployments("shop").Create(ctx, deployment("web", 3, se.syncLabels()), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// store's Pods are still upsynced when the SyncTarget is deleted, at the end.
	se.createUpstreamNamespace(t, wsA, "store")
	if _, err := up.AppsV1().Deployments("store").Create(ctx, deployment("api", 2, se.syncLabels()), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	downstreamNamespace := se.downstreamNamespace(t, wsA, "shop")
	upsynced := metav1.ListOptions{LabelSelector: workloadv1alpha1.ClusterResourceStateLabel(se.stKey) + "=" + workloadv1alpha1.ResourceStateUpsync}

	// mirrored reports whether the workspace holds exactly n Pods, each Running on the node
	// of its downstream original.
	mirrored := func(n int) func(ctx context.Context) (bool, error) {
		return func(ctx context.Context) (bool, error) {
			upstreamPods, err := up.CoreV1().Pods("shop").List(ctx, upsynced)
			if err != nil || len(upstreamPods.Items) != n {
				return false, nil
			}
			for _, upstreamPod := range upstreamPods.Items {
				downstreamPod, err := down.CoreV1().Pods(downstreamNamespace).Get(ctx, upstreamPod.Name, metav1.GetOptions{})
				if err != nil || downstreamPod.DeletionTimestamp != nil {
					return false, nil
				}
				if upstreamPod.Status.Phase != corev1.PodRunning || upstreamPod.Spec.NodeName == "" || upstreamPod.Spec.NodeName != downstreamPod.Spec.NodeName {
					return false, nil
				}
				if upstreamPod.Annotations[workloadv1alpha1.UpsyncResourceVersionAnnotation] == "" || len(upstreamPod.OwnerReferences) != 0 {
					return false, fmt.Errorf("upstream pod %s: rv annotation %q, ownerReferences %v", upstreamPod.Name,
						upstreamPod.Annotations[workloadv1alpha1.UpsyncResourceVersionAnnotation], upstreamPod.OwnerReferences)
				}
			}
			return true, nil
		}
	}
	eventually(t, 90*time.Second, "3 Running pods upstream, on their downstream nodes", mirrored(3))

	// Scaled to 1: the copies of the removed pods go.
	scale := []byte(`{"spec":{"replicas":1}}`)
	if _, err := up.AppsV1().Deployments("shop").Patch(ctx, "web", types.MergePatchType, scale, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "1 pod left upstream after the scale-down", mirrored(1))

	// Deleted upstream by a user: the copy comes back, the downstream pod stays.
	upstreamPods, err := up.CoreV1().Pods("shop").List(ctx, upsynced)
	if err != nil || len(upstreamPods.Items) != 1 {
		t.Fatalf("upstream pods: %v, %v", upstreamPods, err)
	}
	victim := upstreamPods.Items[0]
	if err := up.CoreV1().Pods("shop").Delete(ctx, victim.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the deleted copy created again", func(ctx context.Context) (bool, error) {
		p, err := up.CoreV1().Pods("shop").Get(ctx, victim.Name, metav1.GetOptions{})
		return err == nil && p.UID != victim.UID && p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning, nil
	})
	if _, err := down.CoreV1().Pods(downstreamNamespace).Get(ctx, victim.Name, metav1.GetOptions{}); err != nil {
		t.Fatalf("downstream pod %s after its copy was deleted upstream: %v", victim.Name, err)
	}

	// The Deployment deleted: no pod left upstream.
	if err := up.AppsV1().Deployments("shop").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "no pod left upstream after the Deployment was deleted", func(ctx context.Context) (bool, error) {
		upstreamPods, err := up.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{})
		return err == nil && len(upstreamPods.Items) == 0, nil
	})

	se.deleteSyncTargetWithUpsyncedPods(t, "store", "api", 2)
}

// deleteSyncTargetWithUpsyncedPods starts a tmc-controller (whose finalizer holds the
// SyncTarget while the live syncer leaves it), waits until Deployment name of upstream
// namespace ns has n upsynced Pods, deletes the SyncTarget as a user would and asserts what
// DESIGN.md section 5 "Gone SyncTargets" and "Upsync" promise: no object labelled Upsync
// for the target is left in the workspace (none stuck Terminating), the Deployment's
// downstream copy is removed (deletion policy Delete), its upstream original is released,
// and the SyncTarget is gone.
func (se *syncerEnv) deleteSyncTargetWithUpsyncedPods(t *testing.T, ns, name string, n int) {
	t.Helper()
	ctx := t.Context()
	up := se.upstreamKube(t, wsA)
	down := se.downstreamKube(t)
	locTMC := tmcClient(t, se.env.Workspace(locationWS).AdminConfig())
	upsynced := metav1.ListOptions{LabelSelector: workloadv1alpha1.ClusterResourceStateLabel(se.stKey) + "=" + workloadv1alpha1.ResourceStateUpsync}
	eventually(t, 90*time.Second, fmt.Sprintf("%d upsynced pods of %s/%s", n, ns, name), func(ctx context.Context) (bool, error) {
		upstreamPods, err := up.CoreV1().Pods(ns).List(ctx, upsynced)
		return err == nil && len(upstreamPods.Items) == n, nil
	})

	if err := localenv.InstallCRDs(ctx, se.env.Workspace(wsA).AdminConfig()); err != nil {
		t.Fatal(err)
	}
	if err := se.env.GrantController(ctx, controllerUser, locationWS, wsA); err != nil {
		t.Fatal(err)
	}
	if _, err := se.env.StartController(ctx, localenv.ControllerOptions{
		Binary:                 filepath.Join(binDir, "tmc-controller"),
		User:                   controllerUser,
		LocationWorkspaces:     []string{locationWS},
		Workspaces:             []string{wsA},
		HeartbeatThreshold:     10 * time.Second,
		UnhealthyGracePeriod:   10 * time.Minute,
		SyncTargetReleaseGrace: 10 * time.Minute, // the live syncer must do it, not the controller
		QPS:                    -1,
		Verbosity:              2,
		ReadyTimeout:           60 * time.Second,
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the controller's finalizer on the SyncTarget", func(ctx context.Context) (bool, error) {
		st, err := locTMC.WorkloadV1alpha1().SyncTargets().Get(ctx, clusterName, metav1.GetOptions{})
		return err == nil && slices.Contains(st.Finalizers, workloadv1alpha1.SyncTargetCleanupFinalizer), nil
	})

	if err := locTMC.WorkloadV1alpha1().SyncTargets().Delete(ctx, clusterName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	localenv.Eventually(t, 200*time.Millisecond, 90*time.Second, "no upsynced object left in the workspace", func(ctx context.Context) (bool, string, error) {
		left, err := upsyncedLeft(ctx, up, upsynced)
		if err != nil {
			return false, err.Error(), nil
		}
		return len(left) == 0, fmt.Sprintf("left: %v", left), nil
	})
	eventually(t, 60*time.Second, "SyncTarget "+clusterName+" gone", func(ctx context.Context) (bool, error) {
		_, err := locTMC.WorkloadV1alpha1().SyncTargets().Get(ctx, clusterName, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if _, err := down.AppsV1().Deployments(se.downstreamNamespace(t, wsA, ns)).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the downstream copy of %s/%s after its SyncTarget was deleted: %v (want NotFound: deletion policy Delete)", ns, name, err)
	}
	left, err := keysLeft(ctx, up, ns, se.stKey)
	if err != nil || len(left) != 0 {
		t.Errorf("upstream objects of %s still held for the deleted SyncTarget: %v (err %v)", ns, left, err)
	}
	if events, err := releaseEvents(ctx, up, ns); err != nil || len(events) != 0 {
		t.Errorf("the controller released without the syncer (%v, err %v); the live syncer must have done it", events, err)
	}
}

// upsyncedLeft lists the Pods, Endpoints and PersistentVolumes of the workspace that
// selector matches, terminating or not.
func upsyncedLeft(ctx context.Context, up kubernetes.Interface, selector metav1.ListOptions) ([]string, error) {
	var left []string
	pods, err := up.CoreV1().Pods(metav1.NamespaceAll).List(ctx, selector)
	if err != nil {
		return nil, err
	}
	for _, p := range pods.Items {
		left = append(left, fmt.Sprintf("pod %s/%s (deletionTimestamp %v, finalizers %v)", p.Namespace, p.Name, p.DeletionTimestamp, p.Finalizers))
	}
	endpoints, err := up.CoreV1().Endpoints(metav1.NamespaceAll).List(ctx, selector)
	if err != nil {
		return nil, err
	}
	for _, e := range endpoints.Items {
		left = append(left, "endpoints "+e.Namespace+"/"+e.Name)
	}
	volumes, err := up.CoreV1().PersistentVolumes().List(ctx, selector)
	if err != nil {
		return nil, err
	}
	for _, v := range volumes.Items {
		left = append(left, "persistentvolume "+v.Name)
	}
	return left, nil
}
