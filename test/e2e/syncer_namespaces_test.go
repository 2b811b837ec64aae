package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// syncerCleanDelay is the --downstream-namespace-clean-delay startSyncer gives the syncer.
const syncerCleanDelay = 3 * time.Second

// createPlacedNamespace creates upstream namespace ns in ws labelled for this SyncTarget,
// as the placement controller leaves a namespace it placed here.
func (se *syncerEnv) createPlacedNamespace(t *testing.T, ws, ns string) {
	t.Helper()
	if _, err := se.upstreamKube(t, ws).CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: se.syncLabels()},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// statefulSetWithClaim is a StatefulSet whose pods each get a 1Gi claim "data".
func statefulSetWithClaim(name string, replicas int32, labels map[string]string) *appsv1.StatefulSet {
	sel := map[string]string{"app": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To(replicas),
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "db", Image: "postgres:17",
					VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/postgresql/data"}},
				}}},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}},
		},
	}
}

// TestSyncerKeepsNamespaceWhileUpstreamNamespaceLives is issue 11's first scenario: the last
// synced objects of a placed namespace are deleted upstream (a StatefulSet with a claim
// template and a ConfigMap, as a helm recreate does). The downstream namespace, and with it
// the PersistentVolumeClaim the downstream StatefulSet controller created, stays while the
// upstream namespace exists and is placed; it goes once the upstream namespace is deleted,
// although it still holds the syncer's kcp-root-ca.crt (not a synced object).
func TestSyncerKeepsNamespaceWhileUpstreamNamespaceLives(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	se := setupSyncerEnv(t)
	sp := se.startSyncer(t, syncerOptions{})
	up, down := se.upstreamKube(t, wsA), se.downstreamKube(t)
	const ns = "db"
	se.createPlacedNamespace(t, wsA, ns)
	if _, err := up.AppsV1().StatefulSets(ns).Create(ctx, statefulSetWithClaim("db", 1, se.syncLabels()), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := up.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings", Labels: se.syncLabels()}, Data: map[string]string{"k": "v"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dns := se.downstreamNamespace(t, wsA, ns)
	eventually(t, 90*time.Second, "the StatefulSet, its claim data-db-0, the ConfigMap and the hub CA copy to exist downstream", func(ctx context.Context) (bool, error) {
		_, errSts := down.AppsV1().StatefulSets(dns).Get(ctx, "db", metav1.GetOptions{})
		_, errCM := down.CoreV1().ConfigMaps(dns).Get(ctx, "settings", metav1.GetOptions{})
		_, errPVC := down.CoreV1().PersistentVolumeClaims(dns).Get(ctx, "data-db-0", metav1.GetOptions{})
		_, errHubCA := down.CoreV1().ConfigMaps(dns).Get(ctx, hubCAConfigMap, metav1.GetOptions{})
		return errSts == nil && errCM == nil && errPVC == nil && errHubCA == nil, nil
	})

	cleanupChecks := func() float64 {
		return metricValue(t, sp.MetricsURL, "workqueue_adds_total", map[string]string{"name": "namespace-cleanup"})
	}
	checksBefore := cleanupChecks()
	if err := up.AppsV1().StatefulSets(ns).Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := up.CoreV1().ConfigMaps(ns).Delete(ctx, "settings", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the upstream objects to be deleted (finalizers released) and their copies gone", func(ctx context.Context) (bool, error) {
		_, errSts := up.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
		_, errCM := up.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{})
		_, errDownSts := down.AppsV1().StatefulSets(dns).Get(ctx, "db", metav1.GetOptions{})
		_, errDownCM := down.CoreV1().ConfigMaps(dns).Get(ctx, "settings", metav1.GetOptions{})
		return apierrors.IsNotFound(errSts) && apierrors.IsNotFound(errCM) && apierrors.IsNotFound(errDownSts) && apierrors.IsNotFound(errDownCM), nil
	})

	// The namespace is empty of synced objects now; the old cleanup deleted it one clean
	// delay later. Watch it over several clean delays, and make sure the cleanup really
	// looked at it in that time.
	kept := func(ctx context.Context) error {
		nsObj, err := down.CoreV1().Namespaces().Get(ctx, dns, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("downstream namespace: %w", err)
		}
		if nsObj.DeletionTimestamp != nil {
			return fmt.Errorf("downstream namespace %s is being deleted", dns)
		}
		if _, err := down.CoreV1().PersistentVolumeClaims(dns).Get(ctx, "data-db-0", metav1.GetOptions{}); err != nil {
			return fmt.Errorf("claim data-db-0: %w", err)
		}
		return nil
	}
	holdFor(t, 5*syncerCleanDelay, "the downstream namespace and the claim to stay while the upstream namespace is placed", kept)
	if after := cleanupChecks(); after <= checksBefore {
		t.Fatalf("the namespace cleanup never looked at the namespace (workqueue_adds_total{name=\"namespace-cleanup\"} %v → %v); the test proves nothing", checksBefore, after)
	}
	if _, err := up.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		t.Fatalf("the upstream namespace must still exist: %v", err)
	}

	// The upstream namespace goes: so does the downstream one.
	if err := up.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "the downstream namespace to be deleted after its upstream namespace", func(ctx context.Context) (bool, error) {
		nsObj, err := down.CoreV1().Namespaces().Get(ctx, dns, metav1.GetOptions{})
		return apierrors.IsNotFound(err) || (err == nil && nsObj.DeletionTimestamp != nil), nil
	})
}

// TestSyncerTypeRemovalKeepsCopies is issue 11's acceptance 4: configmaps removed from the
// SyncTarget's spec.resources leave their downstream copies untouched and release their
// upstream objects, so that deleting one upstream completes; re-added, the copies are
// adopted again without a single downstream write.
func TestSyncerTypeRemovalKeepsCopies(t *testing.T) {
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
	dns := se.downstreamNamespace(t, wsA, ns)
	finalizer := workloadv1alpha1.SyncerFinalizerName(se.stKey)
	waitUpstreamFinalizers(t, up, ns, names, finalizer, true)
	eventually(t, 60*time.Second, "the ConfigMaps to be synced down", func(ctx context.Context) (bool, error) {
		have, err := downstreamConfigMaps(ctx, down, dns, se.ownershipSelector())
		return err == nil && len(have) == len(names), nil
	})
	versionsBefore, _ := downstreamResourceVersions(t, down, dns, se.ownershipSelector())

	withoutConfigMaps := slices.DeleteFunc(workloadv1alpha1.DefaultResources(), func(r workloadv1alpha1.ResourceToSync) bool {
		return r.Group == "" && r.Resource == "configmaps"
	})
	se.setResources(t, withoutConfigMaps)
	waitUpstreamFinalizers(t, up, ns, names, finalizer, false)
	if err := up.CoreV1().ConfigMaps(ns).Delete(ctx, names[0], metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the upstream delete of "+names[0]+" to complete", func(ctx context.Context) (bool, error) {
		_, err := up.CoreV1().ConfigMaps(ns).Get(ctx, names[0], metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	// Give the syncer every chance to act wrongly on the deleted object and the namespace.
	holdFor(t, 4*syncerCleanDelay, "the downstream copies to stay untouched", func(ctx context.Context) error {
		versions, _ := downstreamResourceVersions(t, down, dns, se.ownershipSelector())
		if !maps.Equal(versions, versionsBefore) {
			return fmt.Errorf("downstream ConfigMaps changed: %v, were %v", versions, versionsBefore)
		}
		return nil
	})

	// Re-added: the finalizers come back, the copies are found up to date.
	remaining := names[1:]
	m := scrape(t, ctx, sp.MetricsURL)
	appliesBefore := m.Sum("syncer_downstream_writes_total", map[string]string{"operation": "apply"})
	skippedBefore := m.Sum("syncer_skipped_writes_total", map[string]string{"direction": "down"})
	se.setResources(t, workloadv1alpha1.DefaultResources())
	waitUpstreamFinalizers(t, up, ns, remaining, finalizer, true)
	localenv.Eventually(t, 200*time.Millisecond, 60*time.Second, "the re-added copies to be compared downstream", func(ctx context.Context) (bool, string, error) {
		v := metricValue(t, sp.MetricsURL, "syncer_skipped_writes_total", map[string]string{"direction": "down"})
		return v >= skippedBefore+float64(len(remaining)), fmt.Sprintf("syncer_skipped_writes_total{direction=\"down\"} %v, was %v", v, skippedBefore), nil
	})
	if applies := metricValue(t, sp.MetricsURL, "syncer_downstream_writes_total", map[string]string{"operation": "apply"}); applies != appliesBefore {
		t.Errorf("re-adopting unchanged copies applied %v times, want 0", applies-appliesBefore)
	}
	versions, _ := downstreamResourceVersions(t, down, dns, se.ownershipSelector())
	for _, name := range remaining {
		if versions[name] != versionsBefore[name] {
			t.Errorf("downstream ConfigMap %s was written (resourceVersion %s → %s)", name, versionsBefore[name], versions[name])
		}
	}
	t.Logf("the copy of %s, deleted upstream while configmaps were not synced: resourceVersion %q", names[0], versions[names[0]])
}

// setResources sets the SyncTarget's spec.resources.
func (se *syncerEnv) setResources(t *testing.T, resources []workloadv1alpha1.ResourceToSync) {
	t.Helper()
	tc := tmcClient(t, se.env.Workspace(locationWS).AdminConfig())
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		st, err := tc.WorkloadV1alpha1().SyncTargets().Get(t.Context(), clusterName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		st.Spec.Resources = resources
		_, err = tc.WorkloadV1alpha1().SyncTargets().Update(t.Context(), st, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("failed to set the SyncTarget's resources: %v", err)
	}
}

// waitUpstreamFinalizers waits until every named upstream ConfigMap carries finalizer (want) or
// does not.
func waitUpstreamFinalizers(t *testing.T, up kubernetes.Interface, ns string, names []string, finalizer string, want bool) {
	t.Helper()
	localenv.Eventually(t, 200*time.Millisecond, 60*time.Second, fmt.Sprintf("finalizer %s on the upstream ConfigMaps: %v", finalizer, want), func(ctx context.Context) (bool, string, error) {
		for _, name := range names {
			cm, err := up.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			if slices.Contains(cm.Finalizers, finalizer) != want {
				return false, fmt.Sprintf("%s has finalizers %v", name, cm.Finalizers), nil
			}
		}
		return true, "", nil
	})
}
