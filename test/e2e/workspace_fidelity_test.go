package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// rootCAConfigMap is the ConfigMap every namespace of kcp and of a Kubernetes cluster holds.
const rootCAConfigMap = "kube-root-ca.crt"

// hubCAConfigMap is the syncer's copy, in every downstream namespace, of its upstream
// namespace's kube-root-ca.crt.
const hubCAConfigMap = "kcp-root-ca.crt"

// TestWorkspaceFidelity runs on workspaces that, like kcp, keep kube-root-ca.crt and a
// default ServiceAccount in every namespace: a placed namespace with a Deployment syncs
// without any ResourceConflict and leaves the physical cluster's own kube-root-ca.crt
// unchanged byte for byte (also when the hub's copy is labelled by hand), while the hub's
// CA is published next to it as kcp-root-ca.crt; an upstream namespace holding a
// PersistentVolumeClaim finishes deleting; a StatefulSet with
// volumeClaimTemplates binds its claims on the kwok cluster and reports its ready replicas
// upstream.
func TestWorkspaceFidelity(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pe := setupPlacementEnv(t)
	upA := kubeClient(t, pe.env.Workspace(wsA).AdminConfig())
	placed := map[string]string{"tmc.dev/placed": "true"}
	pe.createPlacement(t, "fidelity", placed)

	createNamespace(t, upA, "fid-web", placed)
	upstreamCA := waitPerNamespaceObjects(t, upA, "fid-web")
	target := pe.waitScheduled(t, "fid-web")
	if _, err := upA.AppsV1().Deployments("fid-web").Create(ctx, deployment("web", 2, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "the Deployment did not run downstream and report ready upstream", func(ctx context.Context) (bool, error) {
		d, err := upA.AppsV1().Deployments("fid-web").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == 2, nil
	})

	down := kubeClient(t, pe.targets[target].cluster.AdminConfig())
	dns := pe.downstreamNS(t, target, "fid-web")
	downstreamCA, err := down.CoreV1().ConfigMaps(dns).Get(ctx, rootCAConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the physical cluster's own %s in %s: %v", rootCAConfigMap, dns, err)
	}
	if downstreamCA.Data["ca.crt"] == upstreamCA.Data["ca.crt"] {
		t.Fatalf("the hub's and the physical cluster's %s are equal; the test could not tell an overwrite", rootCAConfigMap)
	}
	pe.waitHubCA(t, down, dns, upstreamCA, target)
	notLabelled := func(ctx context.Context) error {
		return pe.perNamespaceObjectsUnlabelled(ctx, upA, "fid-web")
	}
	if err := notLabelled(ctx); err != nil {
		t.Fatal(err)
	}

	// The syncer refuses the hub's copies even when labelled by hand.
	stKey := pe.targets[target].key
	for _, patch := range []func() error{
		func() error {
			_, err := upA.CoreV1().ConfigMaps("fid-web").Patch(ctx, rootCAConfigMap, "application/merge-patch+json", stateLabelPatch(stKey), metav1.PatchOptions{})
			return err
		},
		func() error {
			_, err := upA.CoreV1().ServiceAccounts("fid-web").Patch(ctx, "default", "application/merge-patch+json", stateLabelPatch(stKey), metav1.PatchOptions{})
			return err
		},
	} {
		if err := patch(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := upA.CoreV1().ConfigMaps("fid-web").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after"}, Data: map[string]string{"n": "1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "a ConfigMap created after the hand-labelling was not synced", func(ctx context.Context) (bool, error) {
		_, err := down.CoreV1().ConfigMaps(dns).Get(ctx, "after", metav1.GetOptions{})
		return err == nil, nil
	})
	unchanged := pe.physicalClusterUnchanged(t, down, dns, downstreamCA, target)
	holdFor(t, 10*time.Second, "the physical cluster's own per-namespace objects must be left alone, with no conflict reported", unchanged)

	t.Run("namespace holding a PVC finishes deleting", func(t *testing.T) {
		pe.namespaceWithClaimDeletes(t, upA, placed)
	})
	t.Run("StatefulSet with volumeClaimTemplates reports ready replicas", func(t *testing.T) {
		if _, err := upA.AppsV1().StatefulSets("fid-web").Create(ctx, statefulSetWithClaim("db", 2, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 120*time.Second, "the StatefulSet did not report 2 ready replicas upstream", func(ctx context.Context) (bool, error) {
			s, err := upA.AppsV1().StatefulSets("fid-web").Get(ctx, "db", metav1.GetOptions{})
			return err == nil && s.Status.ReadyReplicas == 2, nil
		})
		for _, claim := range []string{"data-db-0", "data-db-1"} {
			pvc, err := down.CoreV1().PersistentVolumeClaims(dns).Get(ctx, claim, metav1.GetOptions{})
			if err != nil || pvc.Status.Phase != corev1.ClaimBound {
				t.Errorf("downstream claim %s/%s: %v %v, want Bound", dns, claim, pvc.Status.Phase, err)
			}
		}
	})
	if err := unchanged(ctx); err != nil {
		t.Error(err)
	}
}

// waitPerNamespaceObjects waits until the workspace's controllers have created the
// namespace's kube-root-ca.crt and default ServiceAccount, as kcp's do, and returns the
// ConfigMap.
func waitPerNamespaceObjects(t *testing.T, up kubernetes.Interface, ns string) *corev1.ConfigMap {
	t.Helper()
	var ca *corev1.ConfigMap
	eventually(t, 30*time.Second, "the workspace did not create kube-root-ca.crt and the default ServiceAccount in "+ns, func(ctx context.Context) (bool, error) {
		var err error
		if ca, err = up.CoreV1().ConfigMaps(ns).Get(ctx, rootCAConfigMap, metav1.GetOptions{}); err != nil {
			return false, nil
		}
		_, err = up.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	return ca
}

// waitScheduled waits until the namespace is placed on one target and returns it.
func (pe *placementEnv) waitScheduled(t *testing.T, ns string) string {
	t.Helper()
	eventually(t, 60*time.Second, "namespace "+ns+" was not scheduled", func(ctx context.Context) (bool, error) {
		return len(pe.targetsOf(ctx, t, ns)) == 1, nil
	})
	return pe.targetsOf(t.Context(), t, ns)[0]
}

// perNamespaceObjectsUnlabelled fails if the label propagation labelled the namespace's
// kube-root-ca.crt or default ServiceAccount for any target.
func (pe *placementEnv) perNamespaceObjectsUnlabelled(ctx context.Context, up kubernetes.Interface, ns string) error {
	ca, err := up.CoreV1().ConfigMaps(ns).Get(ctx, rootCAConfigMap, metav1.GetOptions{})
	if err != nil {
		return err
	}
	sa, err := up.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, tgt := range pe.targets {
		label := workloadv1alpha1.ClusterResourceStateLabel(tgt.key)
		if _, ok := ca.Labels[label]; ok {
			return fmt.Errorf("upstream %s/%s was labelled %s", ns, rootCAConfigMap, label)
		}
		if _, ok := sa.Labels[label]; ok {
			return fmt.Errorf("upstream ServiceAccount %s/default was labelled %s", ns, label)
		}
	}
	return nil
}

// physicalClusterUnchanged returns a check that fails if the physical cluster's
// kube-root-ca.crt in dns changed in any way, if its default ServiceAccount carries our
// ownership label, or if the syncer reported a pre-existing object it had to leave alone
// (syncer_resource_conflicts_total).
func (pe *placementEnv) physicalClusterUnchanged(t *testing.T, down kubernetes.Interface, dns string, before *corev1.ConfigMap, target string) func(context.Context) error {
	metricsURL := pe.targets[target].syncer.MetricsURL
	return func(ctx context.Context) error {
		if err := downstreamUntouched(ctx, down, dns, before); err != nil {
			return err
		}
		m, err := localenv.ScrapeMetrics(ctx, metricsURL)
		if err != nil {
			return err
		}
		// Objects left alone because the physical cluster already has them without our label
		// (kube-root-ca.crt, default). Not syncer_errors_total{type=ResourceConflict}: that
		// also counts the optimistic-concurrency 409s a status write retries (seen in CI on
		// the StatefulSet racing its own finalizer patch).
		if n := m.Sum(metricResourceConflicts, nil); n != 0 {
			return fmt.Errorf("%s = %v, want 0:\n%s", metricResourceConflicts, n, m.Series(metricResourceConflicts))
		}
		return nil
	}
}

// downstreamUntouched fails if kube-root-ca.crt in dns differs from before in any way or
// the default ServiceAccount there carries our ownership label.
func downstreamUntouched(ctx context.Context, down kubernetes.Interface, dns string, before *corev1.ConfigMap) error {
	ca, err := down.CoreV1().ConfigMaps(dns).Get(ctx, rootCAConfigMap, metav1.GetOptions{})
	if err != nil {
		return err
	}
	switch {
	case ca.ResourceVersion != before.ResourceVersion:
		return fmt.Errorf("downstream %s/%s was written: resourceVersion %s → %s (labels %v)", dns, rootCAConfigMap, before.ResourceVersion, ca.ResourceVersion, ca.Labels)
	case ca.Data["ca.crt"] != before.Data["ca.crt"] || len(ca.Data) != len(before.Data) || len(ca.BinaryData) != 0:
		return fmt.Errorf("downstream %s/%s content changed", dns, rootCAConfigMap)
	case fmt.Sprint(ca.Labels) != fmt.Sprint(before.Labels) || fmt.Sprint(ca.Annotations) != fmt.Sprint(before.Annotations):
		return fmt.Errorf("downstream %s/%s metadata changed: labels %v, annotations %v", dns, rootCAConfigMap, ca.Labels, ca.Annotations)
	}
	sa, err := down.CoreV1().ServiceAccounts(dns).Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("the physical cluster's default ServiceAccount in %s: %w", dns, err)
	}
	if _, ok := sa.Labels[workloadv1alpha1.InternalDownstreamClusterLabel]; ok {
		return fmt.Errorf("downstream ServiceAccount %s/default carries the ownership label", dns)
	}
	return nil
}

// namespaceWithClaimDeletes places a namespace holding a PVC, waits until the claim is
// bound downstream (the kwok cluster's volume pool) and its status is up, then deletes the
// upstream namespace and waits until it is gone: the workspace's pvc-protection controller
// releases its finalizer, and the syncer its own once the downstream claim is gone.
func (pe *placementEnv) namespaceWithClaimDeletes(t *testing.T, up kubernetes.Interface, placed map[string]string) {
	ctx := t.Context()
	createNamespace(t, up, "fid-pvc", placed)
	target := pe.waitScheduled(t, "fid-pvc")
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if _, err := up.CoreV1().PersistentVolumeClaims("fid-pvc").Create(ctx, claim, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "the claim was not bound downstream and reported Bound upstream", func(ctx context.Context) (bool, error) {
		pvc, err := up.CoreV1().PersistentVolumeClaims("fid-pvc").Get(ctx, "data", metav1.GetOptions{})
		return err == nil && pvc.Status.Phase == corev1.ClaimBound, nil
	})
	dns := pe.downstreamNS(t, target, "fid-pvc")
	if err := up.CoreV1().Namespaces().Delete(ctx, "fid-pvc", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var last string
	eventually(t, 120*time.Second, "the upstream namespace holding a PVC did not finish deleting", func(ctx context.Context) (bool, error) {
		ns, err := up.CoreV1().Namespaces().Get(ctx, "fid-pvc", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err == nil {
			last = fmt.Sprintf("%s %v", ns.Status.Phase, ns.Status.Conditions)
		}
		return false, nil
	})
	t.Logf("upstream namespace fid-pvc is gone (last seen: %.200s)", last)
	_, err := kubeClient(t, pe.targets[target].cluster.AdminConfig()).CoreV1().PersistentVolumeClaims(dns).Get(ctx, "data", metav1.GetOptions{})
	if err == nil {
		t.Errorf("downstream claim %s/data still exists after its upstream namespace is gone", dns)
	} else if !apierrors.IsNotFound(err) && !errors.Is(err, context.Canceled) {
		t.Logf("downstream claim: %v", err)
	}
}

// syncSelector selects the upstream objects labelled Sync for this SyncTarget: a test
// counting its own objects must not count the kube-root-ca.crt every namespace holds.
func (se *syncerEnv) syncSelector() string { return labels.FormatLabels(se.syncLabels()) }

// stateLabelPatch is a merge patch labelling an object Sync for stKey.
func stateLabelPatch(stKey string) []byte {
	return fmt.Appendf(nil, `{"metadata":{"labels":{%q:%q}}}`, workloadv1alpha1.ClusterResourceStateLabel(stKey), workloadv1alpha1.ResourceStateSync)
}

// waitHubCA waits until the downstream namespace dns holds the syncer's kcp-root-ca.crt:
// the workspace namespace's CA bundle, byte for byte, with the ownership label.
func (pe *placementEnv) waitHubCA(t *testing.T, down kubernetes.Interface, dns string, upstreamCA *corev1.ConfigMap, target string) {
	t.Helper()
	stKey := pe.targets[target].key
	var last string
	eventually(t, 60*time.Second, "the hub CA was not published downstream as "+hubCAConfigMap, func(ctx context.Context) (bool, error) {
		cm, err := down.CoreV1().ConfigMaps(dns).Get(ctx, hubCAConfigMap, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("labels %v, %d data keys", cm.Labels, len(cm.Data))
		return cm.Data["ca.crt"] == upstreamCA.Data["ca.crt"] && len(cm.Data) == 1 &&
			cm.Labels[workloadv1alpha1.InternalDownstreamClusterLabel] == stKey, nil
	})
	t.Logf("downstream %s/%s holds the hub CA (%d bytes; %s)", dns, hubCAConfigMap, len(upstreamCA.Data["ca.crt"]), last)
}
