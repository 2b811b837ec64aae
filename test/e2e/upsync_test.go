package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// TestUpsyncPods: the Pods of a synced Deployment appear in the workspace namespace with
// their downstream phase and node, follow a scale-down and go with the Deployment.
func TestUpsyncPods(t *testing.T) {
	ctx := t.Context()
	se := setupSyncerEnv(t)
	se.startSyncer(t, syncerOptions{})
	up := se.upstreamKube(t, wsA)
	down := se.downstreamKube(t)
	se.createUpstreamNamespace(t, wsA, "shop")
	if _, err := up.AppsV1().Deployments("shop").Create(ctx, deployment("web", 3, se.syncLabels()), metav1.CreateOptions{}); err != nil {
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
}
