package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// TestSyncerContainment checks, with the real syncer, that one tenant of a shared physical
// cluster cannot reach another's: external IPs, load-balancer IPs, volume names and bind
// annotations never go down (unless the SyncTarget allows the IPs), a bound claim is never
// fought over, and a forged namespace locator never writes status into another workspace.
func TestSyncerContainment(t *testing.T) {
	t.Parallel()
	se := setupSyncerEnv(t)
	syncer := se.startSyncer(t, syncerOptions{})
	t.Run("fields dropped", func(t *testing.T) { testContainmentFieldsDropped(t, se, syncer) })
	t.Run("forged locator", func(t *testing.T) { testContainmentForgedLocator(t, se, syncer) })
}

func testContainmentFieldsDropped(t *testing.T, se *syncerEnv, syncer *syncerProcess) {
	ctx := t.Context()
	labels := se.syncLabels()
	up, down := se.upstreamKube(t, wsA), se.downstreamKube(t)
	se.createUpstreamNamespace(t, wsA, "edge")
	dns := se.downstreamNamespace(t, wsA, "edge")

	// Another tenant's static volume (Available, of another class) and a free one of the
	// tenant's class.
	for name, class := range map[string]string{"victim-pv": "reserved", "free-pv": "containment"} {
		if _, err := down.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PersistentVolumeSpec{
				StorageClassName:       class,
				AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/" + name}},
			},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := up.CoreV1().Services("edge").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: labels},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "web"},
			Ports:       []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
			ExternalIPs: []string{"203.0.113.7"}, LoadBalancerIP: "203.0.113.8",
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := up.CoreV1().PersistentVolumeClaims("edge").Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: labels, Annotations: map[string]string{
			"volume.kubernetes.io/selected-node":            "tenant-chosen-node",
			"volume.beta.kubernetes.io/storage-provisioner": "tenant.example/provisioner",
			"pv.kubernetes.io/bind-completed":               "yes",
		}},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To("containment"),
			VolumeName:       "victim-pv",
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The Service arrives without both addresses.
	eventually(t, 60*time.Second, "the Service did not arrive downstream", func(ctx context.Context) (bool, error) {
		_, err := down.CoreV1().Services(dns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil, nil
	})
	svc, err := down.CoreV1().Services(dns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Spec.ExternalIPs) != 0 || svc.Spec.LoadBalancerIP != "" {
		t.Errorf("downstream Service has externalIPs %v, loadBalancerIP %q; want neither", svc.Spec.ExternalIPs, svc.Spec.LoadBalancerIP)
	}
	if got := svc.Annotations[transform.DroppedFieldsAnnotation]; got != "spec.externalIPs,spec.loadBalancerIP" {
		t.Errorf("dropped-fields annotation on the Service = %q", got)
	}
	waitEvent(t, up, "edge", "web", "FieldsDropped", 30*time.Second)

	// The claim binds downstream to the free volume the binder picked, never to the one the
	// tenant named, and carries none of the tenant's bind annotations.
	eventually(t, 90*time.Second, "the claim did not bind downstream", func(ctx context.Context) (bool, error) {
		pvc, err := down.CoreV1().PersistentVolumeClaims(dns).Get(ctx, "data", metav1.GetOptions{})
		return err == nil && pvc.Status.Phase == corev1.ClaimBound, nil
	})
	pvc, err := down.CoreV1().PersistentVolumeClaims(dns).Get(ctx, "data", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pvc.Spec.VolumeName != "free-pv" {
		t.Errorf("downstream claim bound to %q, want free-pv", pvc.Spec.VolumeName)
	}
	for a, tenantValue := range map[string]string{"volume.kubernetes.io/selected-node": "tenant-chosen-node", "volume.beta.kubernetes.io/storage-provisioner": "tenant.example/provisioner"} {
		if pvc.Annotations[a] == tenantValue {
			t.Errorf("the tenant's annotation %s=%s went down", a, tenantValue)
		}
	}
	if victim, err := down.CoreV1().PersistentVolumes().Get(ctx, "victim-pv", metav1.GetOptions{}); err != nil || victim.Spec.ClaimRef != nil {
		t.Errorf("the other tenant's volume was claimed: %+v (%v)", victim.Spec.ClaimRef, err)
	}
	waitEvent(t, up, "edge", "data", "FieldsDropped", 30*time.Second)

	// No fight with the binder: the bound claim is left alone (its resourceVersion and the
	// syncer's apply count stay put while the syncer keeps watching it).
	stable := waitStable(t, 60*time.Second, 10*time.Second, "the syncer kept writing the bound claim", func(ctx context.Context) (string, error) {
		pvc, err := down.CoreV1().PersistentVolumeClaims(dns).Get(ctx, "data", metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		applies := metricValue(t, syncer.MetricsURL, "syncer_downstream_writes_total", map[string]string{"operation": "apply"})
		return fmt.Sprintf("rv=%s volume=%s applies=%v", pvc.ResourceVersion, pvc.Spec.VolumeName, applies), nil
	})
	if !strings.Contains(stable, "volume=free-pv") {
		t.Errorf("bound claim settled at %s, want volume free-pv", stable)
	}

	// The owner of the cluster allows external IPs: they arrive, the load-balancer IP not.
	sts := tmcClient(t, se.env.Workspace(locationWS).AdminConfig()).WorkloadV1alpha1().SyncTargets()
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		st, err := sts.Get(ctx, clusterName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		st.Spec.Tenancy = &workloadv1alpha1.SyncTargetTenancy{AllowExternalIPs: true}
		_, err = sts.Update(ctx, st, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "externalIPs did not arrive once allowed", func(ctx context.Context) (bool, error) {
		svc, err := down.CoreV1().Services(dns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && slices.Equal(svc.Spec.ExternalIPs, []string{"203.0.113.7"}) && svc.Spec.LoadBalancerIP == "", nil
	})
}

func testContainmentForgedLocator(t *testing.T, se *syncerEnv, syncer *syncerProcess) {
	ctx := t.Context()
	upB, down := se.upstreamKube(t, wsB), se.downstreamKube(t)
	se.createUpstreamNamespace(t, wsB, "shop")
	if _, err := upB.AppsV1().Deployments("shop").Create(ctx, deployment("web", 1, se.syncLabels()), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "workspace B's Deployment did not report its ready replica", func(ctx context.Context) (bool, error) {
		d, err := upB.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == 1, nil
	})

	// A namespace made by hand with our ownership label and a locator naming workspace B's
	// shop namespace on our SyncTarget, under a name that is not that locator's.
	locator, err := workloadv1alpha1.NewNamespaceLocator(se.env.Workspace(locationWS).Name, clusterName, se.st.UID, se.env.Workspace(wsB).Name, "shop").MarshalAnnotation()
	if err != nil {
		t.Fatal(err)
	}
	const forged = "kcp-forged0e2e0"
	if forged == se.downstreamNamespace(t, wsB, "shop") {
		t.Fatal("the forged name is the real one")
	}
	ownership := map[string]string{workloadv1alpha1.InternalDownstreamClusterLabel: se.stKey}
	if _, err := down.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: forged, Labels: ownership, Annotations: map[string]string{workloadv1alpha1.NamespaceLocatorAnnotation: locator},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := down.AppsV1().Deployments(forged).Create(ctx, deployment("web", 3, ownership), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "the forged Deployment did not get a status downstream", func(ctx context.Context) (bool, error) {
		d, err := down.AppsV1().Deployments(forged).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == 3, nil
	})
	eventually(t, 30*time.Second, "the forged namespace was not counted", func(context.Context) (bool, error) {
		return metricValue(t, syncer.MetricsURL, "syncer_forged_namespace_locators_total", nil) == 1, nil
	})
	se.expectSyncTargetEvent(t, "ForgedNamespaceLocator")

	// Sample workspace B's Deployment for a while (the forged copy's status changes were
	// seen by the syncer above): its status stays the real copy's.
	for i := range 40 {
		d, err := upB.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d.Status.Replicas != 1 || d.Status.ReadyReplicas != 1 {
			t.Fatalf("sample %d: workspace B's Deployment reports %d/%d replicas: the forged namespace's status went up", i, d.Status.ReadyReplicas, d.Status.Replicas)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Nothing was written into, or deleted from, the forged namespace.
	d, err := down.AppsV1().Deployments(forged).Get(ctx, "web", metav1.GetOptions{})
	if err != nil || *d.Spec.Replicas != 3 || d.Annotations[transform.SpecHashAnnotation] != "" {
		t.Errorf("the forged Deployment was touched: %v (%v)", d, err)
	}
	if ns, err := down.CoreV1().Namespaces().Get(ctx, forged, metav1.GetOptions{}); err != nil || ns.DeletionTimestamp != nil {
		t.Errorf("the forged namespace was deleted: %v", err)
	}
	if got := metricValue(t, syncer.MetricsURL, "syncer_forged_namespace_locators_total", nil); got != 1 {
		t.Errorf("forged namespace counted %v times, want once", got)
	}
}
