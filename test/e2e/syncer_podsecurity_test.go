package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/utils/ptr"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const podSecurityEnforceLabel = "pod-security.kubernetes.io/enforce"

// TestSyncerPodSecurity checks tenant containment by Pod Security Admission on the physical
// cluster: the downstream namespace carries the SyncTarget's levels (baseline by default,
// whatever the tenant's upstream namespace asks for), a privileged pod template gets no pod
// downstream and a PodsRejected Warning Event on the upstream Deployment, a normal
// Deployment next to it becomes ready, and a change of spec.podSecurity reaches the
// existing namespace.
func TestSyncerPodSecurity(t *testing.T) {
	ctx := t.Context()
	se := setupSyncerEnv(t)
	se.startSyncer(t, syncerOptions{})
	up := se.upstreamKube(t, wsA)
	down := se.downstreamKube(t)

	const ns = "tenant"
	// The tenant tries to lower the level through its own namespace's labels.
	if _, err := up.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{
		podSecurityEnforceLabel: "privileged", "pod-security.kubernetes.io/warn": "privileged", "pod-security.kubernetes.io/audit": "privileged",
	}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	privileged := deployment("root", 1, se.syncLabels())
	privileged.Spec.Template.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
	web := deployment("web", 2, se.syncLabels())
	for _, d := range []*appsv1.Deployment{privileged, web} {
		if _, err := up.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	dns := se.downstreamNamespace(t, wsA, ns)

	want := map[string]string{
		podSecurityEnforceLabel:                      "baseline",
		"pod-security.kubernetes.io/enforce-version": "latest",
		"pod-security.kubernetes.io/warn":            "restricted",
		"pod-security.kubernetes.io/audit":           "restricted",
	}
	eventually(t, time.Minute, "the downstream namespace to carry the default pod security labels", func(ctx context.Context) (bool, error) {
		got, err := down.CoreV1().Namespaces().Get(ctx, dns, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for k, v := range want {
			if got.Labels[k] != v {
				return false, nil
			}
		}
		return true, nil
	})

	// The rejection reaches the upstream Deployment as an Event naming PodSecurity.
	selector := fields.Set{"involvedObject.kind": "Deployment", "involvedObject.name": "root", "reason": "PodsRejected"}.String()
	var rejected corev1.Event
	eventually(t, 2*time.Minute, "a PodsRejected Event on the upstream Deployment root", func(ctx context.Context) (bool, error) {
		events, err := up.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: selector})
		if err != nil || len(events.Items) == 0 {
			return false, nil
		}
		rejected = events.Items[0]
		return true, nil
	})
	if rejected.Type != corev1.EventTypeWarning || !strings.Contains(rejected.Message, "PodSecurity") || !strings.Contains(rejected.Message, "privileged") {
		t.Errorf("Event %s %s: %q, want a Warning naming the PodSecurity violation", rejected.Type, rejected.Reason, rejected.Message)
	}
	t.Logf("upstream Event: %s %s: %s", rejected.Type, rejected.Reason, rejected.Message)

	// The normal Deployment in the same namespace runs and reports it upstream.
	eventually(t, 2*time.Minute, "Deployment web ready upstream", func(ctx context.Context) (bool, error) {
		d, err := up.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == 2, nil
	})
	pods, err := down.CoreV1().Pods(dns).List(ctx, metav1.ListOptions{LabelSelector: "app=root"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 0 {
		t.Errorf("%d pods of the privileged Deployment exist downstream, want none", len(pods.Items))
	}
	// Once per failure, not per status write: one Event, never repeated.
	events, err := up.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	if len(events.Items) != 1 || events.Items[0].Count > 1 {
		t.Errorf("got %d PodsRejected Events %+v, want exactly one recorded once", len(events.Items), events.Items)
	}

	// Raising the level on the SyncTarget reaches the existing namespace.
	sts := tmcClient(t, se.env.Workspace(locationWS).AdminConfig()).WorkloadV1alpha1().SyncTargets()
	st, err := sts.Get(ctx, clusterName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st.Spec.PodSecurity = &workloadv1alpha1.PodSecurity{Enforce: workloadv1alpha1.PodSecurityLevelRestricted}
	if _, err := sts.Update(ctx, st, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the downstream namespace to enforce restricted", func(ctx context.Context) (bool, error) {
		got, err := down.CoreV1().Namespaces().Get(ctx, dns, metav1.GetOptions{})
		return err == nil && got.Labels[podSecurityEnforceLabel] == "restricted", nil
	})
}
