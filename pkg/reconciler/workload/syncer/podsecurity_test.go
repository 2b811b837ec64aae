package syncer

import (
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clienttesting "k8s.io/client-go/testing"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// podSecurityOf returns the pod-security.kubernetes.io/* labels of ns.
func podSecurityOf(ns *corev1.Namespace) map[string]string {
	out := map[string]string{}
	for k, v := range ns.Labels {
		if k == podSecurityEnforceLabel || k == podSecurityEnforceVersionLabel || k == podSecurityWarnLabel || k == podSecurityAuditLabel {
			out[k] = v
		}
	}
	return out
}

func wantPodSecurity(enforce, warn, audit workloadv1alpha1.PodSecurityLevel) map[string]string {
	return map[string]string{
		podSecurityEnforceLabel:        string(enforce),
		podSecurityEnforceVersionLabel: "latest",
		podSecurityWarnLabel:           string(warn),
		podSecurityAuditLabel:          string(audit),
	}
}

// withUpstreamPodSecurity is an upstream namespace whose tenant asks for privileged pods.
func withUpstreamPodSecurity(ns *corev1.Namespace) {
	ns.Labels[podSecurityEnforceLabel] = "privileged"
	ns.Labels[podSecurityWarnLabel] = "privileged"
	ns.Labels[podSecurityAuditLabel] = "privileged"
	ns.Labels[podSecurityEnforceVersionLabel] = "v1.0"
}

// A namespace the syncer creates carries the SyncTarget's levels (baseline by default),
// whatever its upstream namespace's labels say.
func TestNamespaceEnsurePodSecurityOnCreate(t *testing.T) {
	dsNS := downstreamNamespaceFor(t, testWorkspace, testNamespace)
	for _, tc := range []struct {
		name        string
		podSecurity *workloadv1alpha1.PodSecurity
		upstream    []*corev1.Namespace
		want        map[string]string
	}{
		{name: "defaults", want: wantPodSecurity("baseline", "restricted", "restricted")},
		{name: "SyncTarget asks for restricted", podSecurity: &workloadv1alpha1.PodSecurity{Enforce: "restricted"},
			want: wantPodSecurity("restricted", "restricted", "restricted")},
		{name: "SyncTarget allows privileged", podSecurity: &workloadv1alpha1.PodSecurity{Enforce: "privileged", Warn: "baseline", Audit: "baseline"},
			want: wantPodSecurity("privileged", "baseline", "baseline")},
		{name: "upstream namespace labelled privileged: ignored", upstream: []*corev1.Namespace{upstreamNS(withUpstreamPodSecurity)},
			want: wantPodSecurity("baseline", "restricted", "restricted")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, testObjects{upstreamNamespaces: tc.upstream})
			env.namespaces.podSecurity = func() *workloadv1alpha1.PodSecurity { return tc.podSecurity }
			if err := env.namespaces.ensure(t.Context(), testLocator(testWorkspace, testNamespace), dsNS); err != nil {
				t.Fatal(err)
			}
			got, err := env.downstreamKube.CoreV1().Namespaces().Get(t.Context(), dsNS, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(podSecurityOf(got), tc.want) {
				t.Errorf("pod security labels %v, want %v", podSecurityOf(got), tc.want)
			}
			if got.Labels[workloadv1alpha1.InternalDownstreamClusterLabel] != testStKey {
				t.Errorf("ownership label lost: %v", got.Labels)
			}
			expectWrites(t, "downstream kube", env.downstreamKube.Actions(), []string{"create namespaces"})
		})
	}
}

// An existing namespace gets its labels by a merge patch of the labels that differ, before
// anything is synced into it; one that has them is not written.
func TestNamespaceEnsurePodSecurityOnExisting(t *testing.T) {
	dsNS := downstreamNamespaceFor(t, testWorkspace, testNamespace)
	for _, tc := range []struct {
		name        string
		mutate      func(*corev1.Namespace)
		podSecurity *workloadv1alpha1.PodSecurity
		wantWrites  []string
		wantPatch   string
	}{
		{name: "labels in place: no write"},
		{name: "created before the labels existed: patched", mutate: func(ns *corev1.Namespace) {
			for k := range podSecurityLabels(nil) {
				delete(ns.Labels, k)
			}
		}, wantWrites: []string{"patch namespaces"},
			wantPatch: `{"metadata":{"labels":{"pod-security.kubernetes.io/audit":"restricted","pod-security.kubernetes.io/enforce":"baseline","pod-security.kubernetes.io/enforce-version":"latest","pod-security.kubernetes.io/warn":"restricted"}}}`},
		{name: "lowered by hand downstream: reverted", mutate: func(ns *corev1.Namespace) { ns.Labels[podSecurityEnforceLabel] = "privileged" },
			wantWrites: []string{"patch namespaces"}, wantPatch: `{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"baseline"}}}`},
		{name: "level changed on the SyncTarget: only the changed label", podSecurity: &workloadv1alpha1.PodSecurity{Enforce: "restricted"},
			wantWrites: []string{"patch namespaces"}, wantPatch: `{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"restricted"}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := ownedNamespace(t)
			if tc.mutate != nil {
				tc.mutate(ns)
			}
			env := newTestEnv(t, testObjects{namespaces: []*corev1.Namespace{ns}, upstreamNamespaces: []*corev1.Namespace{upstreamNS(withUpstreamPodSecurity)}})
			env.namespaces.podSecurity = func() *workloadv1alpha1.PodSecurity { return tc.podSecurity }
			if err := env.namespaces.ensure(t.Context(), testLocator(testWorkspace, testNamespace), dsNS); err != nil {
				t.Fatal(err)
			}
			expectWrites(t, "downstream kube", env.downstreamKube.Actions(), tc.wantWrites)
			if tc.wantPatch != "" {
				patch := findAction[clienttesting.PatchActionImpl](t, env.downstreamKube.Actions(), "patch", "namespaces")
				if string(patch.GetPatch()) != tc.wantPatch {
					t.Errorf("patch %s, want %s", patch.GetPatch(), tc.wantPatch)
				}
			}
		})
	}
}

// A change of spec.podSecurity reaches every namespace of this target, once; namespaces of
// other targets and terminating ones are left alone.
func TestNamespaceEnsurePodSecurityAll(t *testing.T) {
	mine := ownedNamespace(t)
	second := downstreamNamespace(t, downstreamNamespaceFor(t, testWorkspace, "other"), testLocator(testWorkspace, "other"))
	otherLocator := workloadv1alpha1.NewNamespaceLocator(testLocationWorkspace, "west", "west-uid", testWorkspace, testNamespace)
	otherName, err := otherLocator.DownstreamNamespaceName()
	if err != nil {
		t.Fatal(err)
	}
	foreign := downstreamNamespace(t, otherName, otherLocator)
	terminating := downstreamNamespace(t, downstreamNamespaceFor(t, testWorkspace, "going"), testLocator(testWorkspace, "going"))
	now := metav1.Now()
	terminating.DeletionTimestamp = &now
	env := newTestEnv(t, testObjects{namespaces: []*corev1.Namespace{mine, second, foreign, terminating}})

	if err := env.namespaces.ensurePodSecurityAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	expectWrites(t, "downstream kube (defaults in place)", env.downstreamKube.Actions(), nil)

	restricted := &workloadv1alpha1.PodSecurity{Enforce: "restricted"}
	env.namespaces.podSecurity = func() *workloadv1alpha1.PodSecurity { return restricted }
	if err := env.namespaces.ensurePodSecurityAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	expectWrites(t, "downstream kube (level raised)", env.downstreamKube.Actions(), []string{"patch namespaces", "patch namespaces"})
	for _, name := range []string{mine.Name, second.Name} {
		got, err := env.downstreamKube.CoreV1().Namespaces().Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if want := wantPodSecurity("restricted", "restricted", "restricted"); !maps.Equal(podSecurityOf(got), want) {
			t.Errorf("%s: pod security labels %v, want %v", name, podSecurityOf(got), want)
		}
		// What the informer would deliver: the next pass writes nothing.
		if err := env.namespaceCache.Update(got); err != nil {
			t.Fatal(err)
		}
	}
	env.downstreamKube.ClearActions()
	if err := env.namespaces.ensurePodSecurityAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	expectWrites(t, "downstream kube (second pass)", env.downstreamKube.Actions(), nil)
}
