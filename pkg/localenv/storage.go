package localenv

import (
	"context"
	"fmt"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

const (
	// StorageClassName is the default StorageClass of every physical cluster: claims
	// without a class get it, and its PersistentVolumes are the cluster's pool.
	StorageClassName = "standard"
	// defaultPersistentVolumes is the pool size when PhysicalClusterOptions leaves it 0.
	defaultPersistentVolumes = 32
	// defaultPersistentVolumeSize is each pool volume's capacity.
	defaultPersistentVolumeSize = "10Gi"
	// poolVolumeLabel marks the pool's volumes with the cluster name.
	poolVolumeLabel = "tmc.dev/localenv-volume-pool"
)

// createVolumePool gives a physical cluster a default StorageClass with no provisioner and
// a pool of pre-created PersistentVolumes of that class, so that the cluster's own
// persistentvolume-binder binds claims (a StatefulSet's volumeClaimTemplates included)
// at once; binding is control-plane only, which is all kwok's fake pods need. No process
// has to keep running, so `dev up` clusters bind claims too.
//
// The volumes are hostPath volumes under the environment directory that nothing ever
// mounts (the pods are fake), with reclaim policy Retain: a volume whose claim is deleted
// turns Released and is not handed out again, so the pool bounds the claims a cluster
// binds in its life (PhysicalClusterOptions.PersistentVolumes). Nothing on the host is
// created or deleted. The volumes offer ReadWriteOnce, ReadOnlyMany and ReadWriteMany; a
// ReadWriteOncePod claim stays Pending (such a volume may offer no other mode).
func createVolumePool(ctx context.Context, client kubernetes.Interface, dir string, opts PhysicalClusterOptions) error {
	class := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        StorageClassName,
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"},
		},
		Provisioner:       "kubernetes.io/no-provisioner",
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimRetain),
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingImmediate),
	}
	if _, err := client.StorageV1().StorageClasses().Create(ctx, class, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create StorageClass %s: %w", class.Name, err)
	}
	size, err := resource.ParseQuantity(opts.PersistentVolumeSize)
	if err != nil {
		return fmt.Errorf("invalid PersistentVolumeSize %q: %w", opts.PersistentVolumeSize, err)
	}
	for i := range opts.PersistentVolumes {
		name := fmt.Sprintf("pool-%s-%d", opts.Name, i)
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{poolVolumeLabel: opts.Name}},
			Spec: corev1.PersistentVolumeSpec{
				Capacity: corev1.ResourceList{corev1.ResourceStorage: size},
				AccessModes: []corev1.PersistentVolumeAccessMode{
					corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany,
				},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				StorageClassName:              StorageClassName,
				PersistentVolumeSource: corev1.PersistentVolumeSource{
					HostPath: &corev1.HostPathVolumeSource{Path: filepath.Join(dir, "volumes", opts.Name, name)},
				},
			},
		}
		if _, err := client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("failed to create PersistentVolume %s: %w", name, err)
		}
	}
	return nil
}
