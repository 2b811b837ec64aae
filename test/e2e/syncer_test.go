package e2e

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func deployment(name string, replicas int32, labels map[string]string) *appsv1.Deployment {
	sel := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}}},
			},
		},
	}
}

// TestSyncerSpecDownStatusUp covers spec down, status up, workspace isolation, updates,
// drift repair and status changes, with the real syncer binary.
func TestSyncerSpecDownStatusUp(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	se := setupSyncerEnv(t)
	syncer := se.startSyncer(t, syncerOptions{})
	_ = syncer
	labels := se.syncLabels()
	down := se.downstreamKube(t)

	// The same namespace and names in both workspaces; the replica counts tell them apart.
	replicas := map[string]int32{wsA: 2, wsB: 3}
	for _, ws := range []string{wsA, wsB} {
		up := se.upstreamKube(t, ws)
		se.createUpstreamNamespace(t, ws, "shop")
		if _, err := up.AppsV1().Deployments("shop").Create(ctx, deployment("web", replicas[ws], labels), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := up.CoreV1().Services("shop").Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: labels},
			Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := up.CoreV1().ConfigMaps("shop").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Labels: labels}, Data: map[string]string{"workspace": ws}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := up.CoreV1().Secrets("shop").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Labels: labels}, StringData: map[string]string{"password": ws}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	nsA, nsB := se.downstreamNamespace(t, wsA, "shop"), se.downstreamNamespace(t, wsB, "shop")
	if nsA == nsB {
		t.Fatalf("both workspaces map to downstream namespace %s", nsA)
	}
	for ws, dns := range map[string]string{wsA: nsA, wsB: nsB} {
		eventually(t, 60*time.Second, "objects of "+ws+" did not appear downstream in "+dns, func(ctx context.Context) (bool, error) {
			ns, err := down.CoreV1().Namespaces().Get(ctx, dns, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			loc, err := workloadv1alpha1.ParseNamespaceLocator(ns.Annotations[workloadv1alpha1.NamespaceLocatorAnnotation])
			if err != nil || loc.ClusterName != se.env.Workspace(ws).Name || loc.Namespace != "shop" || ns.Labels[workloadv1alpha1.InternalDownstreamClusterLabel] != se.stKey {
				return false, nil
			}
			cm, err := down.CoreV1().ConfigMaps(dns).Get(ctx, "settings", metav1.GetOptions{})
			if err != nil || cm.Data["workspace"] != ws || cm.Labels[workloadv1alpha1.InternalDownstreamClusterLabel] != se.stKey {
				return false, nil
			}
			if _, ok := cm.Labels[workloadv1alpha1.ClusterResourceStateLabel(se.stKey)]; ok {
				return false, nil
			}
			sec, err := down.CoreV1().Secrets(dns).Get(ctx, "creds", metav1.GetOptions{})
			if err != nil || string(sec.Data["password"]) != ws {
				return false, nil
			}
			if _, err := down.CoreV1().Services(dns).Get(ctx, "web", metav1.GetOptions{}); err != nil {
				return false, nil
			}
			d, err := down.AppsV1().Deployments(dns).Get(ctx, "web", metav1.GetOptions{})
			return err == nil && d.Labels[workloadv1alpha1.InternalDownstreamClusterLabel] == se.stKey, nil
		})
	}

	// Status comes back up: the kwok pods become ready and each workspace sees its own count.
	for _, ws := range []string{wsA, wsB} {
		up := se.upstreamKube(t, ws)
		eventually(t, 90*time.Second, "upstream deployment in "+ws+" did not report ready replicas", func(ctx context.Context) (bool, error) {
			d, err := up.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return d.Status.ReadyReplicas == replicas[ws] && d.Status.AvailableReplicas == replicas[ws], nil
		})
		d, _ := up.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		if !containsString(d.Finalizers, workloadv1alpha1.SyncerFinalizerName(se.stKey)) {
			t.Errorf("%s: upstream deployment lacks the syncer finalizer: %v", ws, d.Finalizers)
		}
	}

	// An upstream spec update goes down.
	upA := se.upstreamKube(t, wsA)
	cm, err := upA.CoreV1().ConfigMaps("shop").Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["color"] = "blue"
	if _, err := upA.CoreV1().ConfigMaps("shop").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "upstream update did not reach downstream", func(ctx context.Context) (bool, error) {
		cm, err := down.CoreV1().ConfigMaps(nsA).Get(ctx, "settings", metav1.GetOptions{})
		return err == nil && cm.Data["color"] == "blue", nil
	})

	// A hand edit of a synced field downstream is reverted.
	dcm, err := down.CoreV1().ConfigMaps(nsA).Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dcm.Data["color"] = "red"
	if _, err := down.CoreV1().ConfigMaps(nsA).Update(ctx, dcm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "downstream drift was not reverted", func(ctx context.Context) (bool, error) {
		cm, err := down.CoreV1().ConfigMaps(nsA).Get(ctx, "settings", metav1.GetOptions{})
		return err == nil && cm.Data["color"] == "blue", nil
	})
	// A downstream object deleted by hand is re-created.
	if err := down.CoreV1().Secrets(nsA).Delete(ctx, "creds", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "a downstream object deleted by hand was not re-created", func(ctx context.Context) (bool, error) {
		_, err := down.CoreV1().Secrets(nsA).Get(ctx, "creds", metav1.GetOptions{})
		return err == nil, nil
	})

	// A downstream status change reaches upstream: scale up, the new pods become ready.
	d, err := upA.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Replicas = ptr.To[int32](4)
	if _, err := upA.AppsV1().Deployments("shop").Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "scaled status did not come back up", func(ctx context.Context) (bool, error) {
		d, err := upA.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == 4, nil
	})
	// ...and never crosses to the other workspace.
	dB, err := se.upstreamKube(t, wsB).AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dB.Status.ReadyReplicas != replicas[wsB] || dB.Status.Replicas != replicas[wsB] {
		t.Errorf("workspace B's status changed with A's: %+v", dB.Status)
	}
	if _, err := down.CoreV1().Namespaces().Get(ctx, nsB, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		t.Errorf("namespace of B is gone")
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
