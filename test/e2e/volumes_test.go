package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// TestVolumes covers issue 14, acceptance 2, with a syncer registered for
// persistentvolumes: a claim synced and bound downstream gets its PersistentVolume upsynced
// with its locator and the upstream namespace in its claimRef; a pre-provisioned volume
// labelled for the target goes down with the locator and a claimRef to the downstream
// namespace; another target's downstream volume of the same name is never touched and a
// ResourceConflict Event says so on the upstream volume.
func TestVolumes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	resources := append(workloadv1alpha1.DefaultResources(), workloadv1alpha1.ResourceToSync{Group: "", Resource: "persistentvolumes"})
	se := setupSyncerEnvFor(t, resources)
	se.setResources(t, resources)
	se.startSyncer(t, syncerOptions{})
	up := se.upstreamKube(t, wsA)
	down := se.downstreamKube(t)
	const ns = "data"
	se.createPlacedNamespace(t, wsA, ns)
	downstreamNamespace := se.downstreamNamespace(t, wsA, ns)
	for _, name := range []string{"claim-up", "claim-down"} {
		if _, err := up.CoreV1().PersistentVolumeClaims(ns).Create(ctx, volumeClaim(name, se.syncLabels()), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// Another target's volume downstream, of the name of a volume labelled for ours upstream.
	otherKey := workloadv1alpha1.ToSyncTargetKey(se.env.Workspace(locationWS).Name, "west")
	// Pre-bound to a claim of the other target's, so that the physical cluster's binder never
	// gives it to one of our claims (it did, when it was free).
	otherVolume := persistentVolume("pv-other", map[string]string{workloadv1alpha1.InternalDownstreamClusterLabel: otherKey},
		&corev1.ObjectReference{Namespace: "kcp-west-only", Name: "theirs"})
	otherVolume, err := down.CoreV1().PersistentVolumes().Create(ctx, otherVolume, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.CoreV1().PersistentVolumes().Create(ctx, persistentVolume("pv-other", se.syncLabels(), &corev1.ObjectReference{Namespace: ns, Name: "claim-other"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A pre-provisioned volume for claim-down, labelled for our target upstream.
	if _, err := up.CoreV1().PersistentVolumes().Create(ctx, persistentVolume("pv-down", se.syncLabels(), &corev1.ObjectReference{Namespace: ns, Name: "claim-down"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Down: the copy carries the claim namespace's locator and names the downstream namespace.
	eventually(t, 60*time.Second, "pv-down synced down with the locator and claimRef "+downstreamNamespace+"/claim-down", func(ctx context.Context) (bool, error) {
		pv, err := down.CoreV1().PersistentVolumes().Get(ctx, "pv-down", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return pv.Annotations[workloadv1alpha1.NamespaceLocatorAnnotation] != "" && pv.Spec.ClaimRef != nil &&
			pv.Spec.ClaimRef.Namespace == downstreamNamespace && pv.Spec.ClaimRef.Name == "claim-down" &&
			pv.Labels[workloadv1alpha1.InternalDownstreamClusterLabel] == se.stKey, nil
	})

	// Upsync: the cluster admin provisions a volume for the synced claim-up; the physical
	// cluster binds them; the volume appears upstream.
	eventually(t, 60*time.Second, "claim-up synced down", func(ctx context.Context) (bool, error) {
		_, err := down.CoreV1().PersistentVolumeClaims(downstreamNamespace).Get(ctx, "claim-up", metav1.GetOptions{})
		return err == nil, nil
	})
	if _, err := down.CoreV1().PersistentVolumes().Create(ctx, persistentVolume("pv-up", nil, &corev1.ObjectReference{Namespace: downstreamNamespace, Name: "claim-up"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "pv-up upsynced with the locator and claimRef "+ns+"/claim-up", func(ctx context.Context) (bool, error) {
		pv, err := up.CoreV1().PersistentVolumes().Get(ctx, "pv-up", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return pv.Labels[workloadv1alpha1.ClusterResourceStateLabel(se.stKey)] == workloadv1alpha1.ResourceStateUpsync &&
			pv.Annotations[workloadv1alpha1.NamespaceLocatorAnnotation] != "" &&
			pv.Spec.ClaimRef != nil && pv.Spec.ClaimRef.Namespace == ns && pv.Spec.ClaimRef.Name == "claim-up", nil
	})
	// Both claims bound downstream by the physical cluster's binder (claim-down to the copy).
	for claim, volume := range map[string]string{"claim-up": "pv-up", "claim-down": "pv-down"} {
		eventually(t, 60*time.Second, "downstream "+claim+" bound to "+volume, func(ctx context.Context) (bool, error) {
			pvc, err := down.CoreV1().PersistentVolumeClaims(downstreamNamespace).Get(ctx, claim, metav1.GetOptions{})
			return err == nil && pvc.Status.Phase == corev1.ClaimBound && pvc.Spec.VolumeName == volume, nil
		})
	}

	// Another target's volume: the conflict is reported, and (pv-down and pv-up synced since)
	// the downstream volume is exactly as it was.
	waitEvent(t, up, metav1.NamespaceDefault, "pv-other", "ResourceConflict", 60*time.Second)
	pv, err := down.CoreV1().PersistentVolumes().Get(ctx, "pv-other", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("another target's volume pv-other downstream: %v", err)
	}
	// The physical cluster's volume controller writes its status (a new resourceVersion):
	// what matters is that no write of the syncer's field managers ever reached it.
	var managers []string
	for _, m := range pv.ManagedFields {
		managers = append(managers, m.Manager)
		if strings.HasPrefix(m.Manager, syncer.FieldManager) {
			t.Errorf("another target's volume pv-other was written by the syncer (%s, %s)", m.Manager, m.Operation)
		}
	}
	if pv.Labels[workloadv1alpha1.InternalDownstreamClusterLabel] != otherKey ||
		pv.Annotations[workloadv1alpha1.NamespaceLocatorAnnotation] != "" || !equality.Semantic.DeepEqual(pv.Spec, otherVolume.Spec) {
		t.Errorf("another target's volume pv-other was touched: labels %v, annotations %v, claimRef %v, managers %v",
			pv.Labels, pv.Annotations, pv.Spec.ClaimRef, managers)
	}
}

// volumeClaim is a 1Gi ReadWriteOnce claim of no storage class: only a volume of no class,
// such as persistentVolume's, binds it (not the physical cluster's pool of the default class).
func volumeClaim(name string, labels map[string]string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: new(string),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
}

// persistentVolume is a 1Gi NFS volume (not a node's file system) pre-bound to claimRef.
func persistentVolume(name string, labels map[string]string, claimRef *corev1.ObjectReference) *corev1.PersistentVolume {
	if claimRef != nil {
		claimRef.Kind = "PersistentVolumeClaim"
		claimRef.APIVersion = "v1"
	}
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PersistentVolumeSpec{
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			ClaimRef:                      claimRef,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{NFS: &corev1.NFSVolumeSource{Server: "nfs.example.invalid", Path: "/" + name}},
		},
	}
}
