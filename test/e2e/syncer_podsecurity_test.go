package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const podSecurityEnforceLabel = "pod-security.kubernetes.io/enforce"

// TestSyncerPodSecurity checks tenant containment by Pod Security Admission on the physical
// cluster: the downstream namespace carries the SyncTarget's levels (baseline by default,
// whatever the tenant's upstream namespace asks for), a privileged pod template gets no pod
// downstream and a PodsRejected Warning Event on the upstream Deployment, a privileged
// StatefulSet and Job (whose controllers report the rejection only as downstream
// FailedCreate Events) get exactly one PodsRejected Event each upstream however often the
// downstream controllers retry, also across a syncer restart, a normal Deployment next to
// them becomes ready, and a change of spec.podSecurity reaches the existing namespace.
func TestSyncerPodSecurity(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	se := setupSyncerEnv(t)
	sp := se.startSyncer(t, syncerOptions{})
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
	if _, err := up.AppsV1().StatefulSets(ns).Create(ctx, privilegedStatefulSet("root-db", se.syncLabels()), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := up.BatchV1().Jobs(ns).Create(ctx, privilegedJob("root-job", se.syncLabels()), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
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

	expectWorkloadRejectionsOnce(t, sp, up, down, ns, dns)

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
	// The downstream controllers kept retrying meanwhile: still one Event each.
	for _, w := range rejectedWorkloads {
		expectOnePodsRejected(t, up, ns, w.kind, w.name)
	}
}

// rejectedWorkloads are the privileged StatefulSet and Job of TestSyncerPodSecurity.
var rejectedWorkloads = []struct{ kind, name string }{{"StatefulSet", "root-db"}, {"Job", "root-job"}}

// expectWorkloadRejectionsOnce checks that each of rejectedWorkloads gets one PodsRejected
// Event upstream from the downstream FailedCreate Events, once however often the downstream
// controller retries (a Job's retries are new Events naming a new pod each), also after a
// restart of the syncer.
func expectWorkloadRejectionsOnce(t *testing.T, sp *syncerProcess, up, down kubernetes.Interface, ns, dns string) {
	t.Helper()
	ctx := t.Context()
	for _, w := range rejectedWorkloads {
		rejected := onePodsRejected(t, up, ns, w.kind, w.name)
		if !strings.Contains(rejected.Message, w.kind+" "+w.name+" (FailedCreate)") || !strings.Contains(rejected.Message, "PodSecurity") ||
			!strings.Contains(rejected.Message, clusterName) {
			t.Errorf("Event on %s %s: %q, want the SyncTarget, the downstream object and its PodSecurity rejection", w.kind, w.name, rejected.Message)
		}
		t.Logf("upstream Event on %s %s: %s", w.kind, w.name, rejected.Message)
		eventually(t, 2*time.Minute, "the downstream "+w.kind+" controller to retry "+w.name, func(ctx context.Context) (bool, error) {
			return downstreamFailedCreates(ctx, down, dns, w.kind, w.name) >= 3, nil
		})
		expectOnePodsRejected(t, up, ns, w.kind, w.name)
	}
	// A restarted syncer lists the downstream Events already forwarded and records nothing
	// again when the downstream controllers retry afterwards.
	sp.restart(t)
	retried := map[string]int32{}
	for _, w := range rejectedWorkloads {
		retried[w.name] = downstreamFailedCreates(ctx, down, dns, w.kind, w.name)
	}
	eventually(t, 5*time.Minute, "the downstream controllers to retry root-db and root-job after the restart", func(ctx context.Context) (bool, error) {
		for _, w := range rejectedWorkloads {
			if downstreamFailedCreates(ctx, down, dns, w.kind, w.name) <= retried[w.name] {
				return false, nil
			}
		}
		return true, nil
	})
	for _, w := range rejectedWorkloads {
		expectOnePodsRejected(t, up, ns, w.kind, w.name)
	}
}

// privilegedStatefulSet is a StatefulSet whose pods Pod Security baseline refuses.
func privilegedStatefulSet(name string, labels map[string]string) *appsv1.StatefulSet {
	sel := map[string]string{"app": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To(int32(1)),
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{privilegedContainer()}},
			},
		},
	}
}

// privilegedJob is a Job whose pods Pod Security baseline refuses.
func privilegedJob(name string, labels map[string]string) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{privilegedContainer()},
		}}},
	}
}

func privilegedContainer() corev1.Container {
	return corev1.Container{Name: "app", Image: "busybox:1.37", Command: []string{"true"}, SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}
}

// podsRejectedSelector selects the PodsRejected Events on the upstream kind/name.
func podsRejectedSelector(kind, name string) string {
	return fields.Set{"involvedObject.kind": kind, "involvedObject.name": name, "reason": "PodsRejected"}.String()
}

// onePodsRejected waits for the PodsRejected Event on the upstream kind/name and returns it.
func onePodsRejected(t *testing.T, up kubernetes.Interface, ns, kind, name string) corev1.Event {
	t.Helper()
	var rejected corev1.Event
	eventually(t, 2*time.Minute, "a PodsRejected Event on the upstream "+kind+" "+name, func(ctx context.Context) (bool, error) {
		events, err := up.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: podsRejectedSelector(kind, name)})
		if err != nil || len(events.Items) == 0 {
			return false, nil
		}
		rejected = events.Items[0]
		return true, nil
	})
	if rejected.Type != corev1.EventTypeWarning {
		t.Errorf("Event on %s %s is of type %s, want Warning", kind, name, rejected.Type)
	}
	return rejected
}

// expectOnePodsRejected checks that the upstream kind/name has exactly one PodsRejected
// Event, recorded once.
func expectOnePodsRejected(t *testing.T, up kubernetes.Interface, ns, kind, name string) {
	t.Helper()
	events, err := up.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{FieldSelector: podsRejectedSelector(kind, name)})
	if err != nil {
		t.Fatal(err)
	}
	if len(events.Items) != 1 || events.Items[0].Count > 1 {
		t.Errorf("%s %s: got %d PodsRejected Events %+v, want exactly one recorded once", kind, name, len(events.Items), events.Items)
	}
}

// downstreamFailedCreates counts the FailedCreate Events recorded downstream on kind/name,
// repeats included.
func downstreamFailedCreates(ctx context.Context, down kubernetes.Interface, dns, kind, name string) int32 {
	events, err := down.CoreV1().Events(dns).List(ctx, metav1.ListOptions{FieldSelector: fields.Set{
		"involvedObject.kind": kind, "involvedObject.name": name, "reason": "FailedCreate",
	}.String()})
	if err != nil {
		return 0
	}
	var n int32
	for _, e := range events.Items {
		n += max(e.Count, 1)
	}
	return n
}
