package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// Issue 13, acceptance 4: a Deployment of wsA placed on two SyncTargets (east, west; one
// physical cluster), its replicas split 2/3 by spec-diff, shows in .status the aggregate
// (5 ready) and in each target's status annotation its part; taking west off promotes
// east's status to .status exactly. wsB's Deployment of the same name, on east only with
// 4 replicas, keeps its own status throughout.
func TestVirtualWorkspaceStatusAcrossTargets(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const ns, name = "web", "hello"
	ve := setupViewEnv(t, viewEnvOptions{targets: []string{"east", "west"}})
	ve.bindWorkspaces(t, wsA, wsB)
	ve.startController(t)
	ve.startSyncer(t, "east")
	ve.startSyncer(t, "west")
	east, west := ve.targets["east"].key, ve.targets["west"].key

	upA := kubeClient(t, ve.env.Workspace(wsA).AdminConfig())
	upB := kubeClient(t, ve.env.Workspace(wsB).AdminConfig())
	ve.placeNamespace(t, wsA, ns, "east", "west")
	ve.placeNamespace(t, wsB, ns, "east")
	split := deployment(name, 5, nil)
	split.Annotations = map[string]string{
		workloadv1alpha1.SpecDiffAnnotation(east): `[{"op":"replace","path":"/replicas","value":2}]`,
		workloadv1alpha1.SpecDiffAnnotation(west): `[{"op":"replace","path":"/replicas","value":3}]`,
	}
	if _, err := upA.AppsV1().Deployments(ns).Create(ctx, split, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := upB.AppsV1().Deployments(ns).Create(ctx, deployment(name, 4, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// wsB's Deployment is on east only: its .status is east's copy of it, never more.
	checkB := func(ctx context.Context) error {
		d, err := upB.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.Replicas > 4 || d.Status.ReadyReplicas > 4 {
			return fmt.Errorf("wsB's Deployment shows %d/%d ready: another workspace's status crossed", d.Status.ReadyReplicas, d.Status.Replicas)
		}
		for k := range d.Annotations {
			if k == workloadv1alpha1.StatusAnnotation(west) {
				return fmt.Errorf("wsB's Deployment, not on west, carries west's status annotation")
			}
		}
		return nil
	}

	eventually(t, 180*time.Second, "wsA's Deployment aggregated over east (2) and west (3), wsB's at 4", func(ctx context.Context) (bool, error) {
		if err := checkB(ctx); err != nil {
			return false, err
		}
		d, err := upA.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.ReadyReplicas == 5 && d.Status.Replicas == 5 &&
			targetReady(d, east) == 2 && targetReady(d, west) == 3, nil
	})
	for _, tgt := range []struct {
		name string
		want int32
	}{{"east", 2}, {"west", 3}} {
		dns := ve.downstreamNamespace(t, tgt.name, wsA, ns)
		d, err := kubeClient(t, ve.env.Cluster(clusterName).AdminConfig()).AppsV1().Deployments(dns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *d.Spec.Replicas != tgt.want {
			t.Errorf("%s's copy has %d replicas, want %d (spec-diff)", tgt.name, *d.Spec.Replicas, tgt.want)
		}
	}
	eventually(t, 60*time.Second, "wsB's Deployment at 4 ready", func(ctx context.Context) (bool, error) {
		d, err := upB.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.ReadyReplicas == 4, checkB(ctx)
	})

	t.Run("west taken off: east's status promoted exactly", func(t *testing.T) {
		ve.takeOff(t, upA, ns, name, "west")
		down := kubeClient(t, ve.env.Cluster(clusterName).AdminConfig())
		eastCopy := ve.downstreamNamespace(t, "east", wsA, ns)
		eventually(t, 120*time.Second, ".status of wsA's Deployment equal to east's copy's status", func(ctx context.Context) (bool, error) {
			if err := checkB(ctx); err != nil {
				return false, err
			}
			d, err := upA.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			copyOf, err := down.AppsV1().Deployments(eastCopy).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if _, recorded := d.Annotations[workloadv1alpha1.StatusAnnotation(east)]; recorded && !reflect.DeepEqual(d.Status, annotatedStatus(t, d, east)) {
				return false, nil
			}
			return d.Status.ReadyReplicas == 2 && reflect.DeepEqual(d.Status, copyOf.Status), nil
		})
		westCopy := ve.downstreamNamespace(t, "west", wsA, ns)
		if _, err := down.AppsV1().Deployments(westCopy).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("west's copy after west was taken off: %v, want NotFound", err)
		}
		d, err := upA.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := d.Annotations[workloadv1alpha1.StatusAnnotation(west)]; ok {
			t.Errorf("west's status annotation stayed after west was taken off")
		}
		if err := checkB(ctx); err != nil {
			t.Error(err)
		}
	})
}

// takeOff removes upstream object ns/name of ws's Deployments from SyncTarget target as
// placement does: the namespace's deletion annotation (the resource controller copies it
// to the object, the target's syncer deletes its copy and releases the object), then,
// once the object no longer carries the target's label, the namespace's label and
// annotation.
func (ve *viewEnv) takeOff(t *testing.T, up kubernetes.Interface, ns, name, target string) {
	t.Helper()
	ctx := t.Context()
	key := ve.targets[target].key
	patch := func(value any) []byte {
		b, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{workloadv1alpha1.DeletionAnnotation(key): value}}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if _, err := up.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, patch(time.Now().UTC().Format(time.RFC3339)), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 120*time.Second, "the Deployment released by "+target, func(ctx context.Context) (bool, error) {
		d, err := up.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		_, labelled := d.Labels[workloadv1alpha1.ClusterResourceStateLabel(key)]
		return !labelled && !containsString(d.Finalizers, workloadv1alpha1.SyncerFinalizerName(key)), nil
	})
	release, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"labels":      map[string]any{workloadv1alpha1.ClusterResourceStateLabel(key): nil},
		"annotations": map[string]any{workloadv1alpha1.DeletionAnnotation(key): nil},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, release, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// targetReady is the readyReplicas of SyncTarget key's status annotation on d (-1: none).
func targetReady(d *appsv1.Deployment, key string) int32 {
	raw, ok := d.Annotations[workloadv1alpha1.StatusAnnotation(key)]
	if !ok {
		return -1
	}
	var status appsv1.DeploymentStatus
	if err := json.Unmarshal([]byte(raw), &status); err != nil {
		return -1
	}
	return status.ReadyReplicas
}

// annotatedStatus decodes SyncTarget key's status annotation on d.
func annotatedStatus(t *testing.T, d *appsv1.Deployment, key string) appsv1.DeploymentStatus {
	t.Helper()
	var status appsv1.DeploymentStatus
	raw := d.Annotations[workloadv1alpha1.StatusAnnotation(key)]
	if err := json.Unmarshal([]byte(raw), &status); err != nil {
		t.Errorf("status annotation of %s: %v", key, err)
	}
	return status
}
