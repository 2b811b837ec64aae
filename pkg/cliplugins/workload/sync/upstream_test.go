package sync

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/tmc-dev/tmc/pkg/cliplugins/workload/sync/syncerrbac"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func testRequest() upstreamRequest {
	return upstreamRequest{
		syncTargetName:    "east",
		locationWorkspace: "root:org:locations",
		labels:            map[string]string{"region": "eu"},
		namespace:         "default",
		tokenExpiration:   DefaultTokenLifetime,
	}
}

// writes returns the verbs and resources of the mutating actions recorded so far.
func writes(f *fakeUpstream) []string {
	var out []string
	for _, a := range append(f.tmc.Actions(), f.kube.Actions()...) {
		switch a.GetVerb() {
		case "get", "list", "watch":
			continue
		}
		r := a.GetResource().Resource
		if a.GetSubresource() != "" {
			r += "/" + a.GetSubresource()
		}
		out = append(out, a.GetVerb()+" "+r)
	}
	return out
}

func TestEnsureUpstreamCreatesThenUpdates(t *testing.T) {
	ctx := t.Context()
	f := newFakeUpstream(t, "")
	var out bytes.Buffer
	up := &upstream{upstreamKube: f.kube, upstreamTMC: f.tmc, out: &out}

	req := testRequest()
	req.resources = []workloadv1alpha1.ResourceToSync{{Group: "apps", Resource: "deployments"}}
	first, err := up.ensure(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	st := first.syncTarget
	if st.UID == "" {
		t.Fatal("the created SyncTarget has no UID")
	}
	if st.Labels["region"] != "eu" || st.Labels[workloadv1alpha1.InternalSyncTargetKeyLabel] != workloadv1alpha1.ToSyncTargetKey(req.locationWorkspace, "east") {
		t.Errorf("labels %v, want region=eu and the key label", st.Labels)
	}
	if !reflect.DeepEqual(st.Spec.Resources, req.resources) {
		t.Errorf("spec.resources %v, want %v", st.Spec.Resources, req.resources)
	}
	if first.token != "token-1" || !first.tokenExpiration.Equal(tokenExpiry) {
		t.Errorf("token %q expiring %s", first.token, first.tokenExpiration)
	}
	if got := *f.requests[0].Spec.ExpirationSeconds; got != int64(DefaultTokenLifetime/time.Second) {
		t.Errorf("requested expiration %ds, want one year", got)
	}
	for _, want := range []string{
		"synctarget.workload.kcp.io/east created",
		"serviceaccount/default/tmc-syncer-east created",
		"clusterrole.rbac.authorization.k8s.io/tmc-syncer-east created",
		"clusterrolebinding.rbac.authorization.k8s.io/tmc-syncer-east created",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	// Re-run with the same input: nothing but a new token is written.
	f.kube.ClearActions()
	f.tmc.ClearActions()
	out.Reset()
	second, err := up.ensure(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := writes(f), []string{"create serviceaccounts/token"}; !reflect.DeepEqual(got, want) {
		t.Errorf("re-run wrote %v, want only %v", got, want)
	}
	if second.syncTarget.UID != st.UID || second.token != "token-2" {
		t.Errorf("re-run: UID %s (want %s), token %q", second.syncTarget.UID, st.UID, second.token)
	}
	if strings.Count(out.String(), "unchanged") != 4 {
		t.Errorf("re-run output, want 4 unchanged objects:\n%s", out.String())
	}

	// Re-run with other labels and resources: the SyncTarget is updated, labels merged.
	f.kube.ClearActions()
	f.tmc.ClearActions()
	req.labels = map[string]string{"tier": "gold"}
	req.resources = []workloadv1alpha1.ResourceToSync{{Resource: "configmaps"}}
	third, err := up.ensure(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := writes(f), []string{"update synctargets", "create serviceaccounts/token"}; !reflect.DeepEqual(got, want) {
		t.Errorf("re-run with new labels wrote %v, want %v", got, want)
	}
	if third.syncTarget.Labels["region"] != "eu" || third.syncTarget.Labels["tier"] != "gold" {
		t.Errorf("labels %v, want region=eu (kept) and tier=gold", third.syncTarget.Labels)
	}
	if !reflect.DeepEqual(third.syncTarget.Spec.Resources, req.resources) {
		t.Errorf("spec.resources %v, want %v", third.syncTarget.Spec.Resources, req.resources)
	}

	// Without --resources, spec.resources stay as they are.
	req.resources = nil
	fourth, err := up.ensure(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fourth.syncTarget.Spec.Resources, third.syncTarget.Spec.Resources) {
		t.Errorf("spec.resources changed to %v without --resources", fourth.syncTarget.Spec.Resources)
	}
}

func TestEnsureUpstreamScopesRBACToTheSyncTarget(t *testing.T) {
	ctx := t.Context()
	f := newFakeUpstream(t, "")
	up := &upstream{upstreamKube: f.kube, upstreamTMC: f.tmc, out: &bytes.Buffer{}}
	req := testRequest()
	req.namespace = "syncers" // does not exist yet: created
	result, err := up.ensure(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.kube.CoreV1().Namespaces().Get(ctx, "syncers", metav1.GetOptions{}); err != nil {
		t.Errorf("upstream namespace not created: %v", err)
	}
	sa := result.serviceAccount
	if sa.Namespace != "syncers" || sa.Name != "tmc-syncer-east" {
		t.Errorf("ServiceAccount %s/%s, want syncers/tmc-syncer-east", sa.Namespace, sa.Name)
	}
	wantOwner := []metav1.OwnerReference{{APIVersion: "workload.kcp.io/v1alpha1", Kind: "SyncTarget", Name: "east", UID: result.syncTarget.UID}}
	if !reflect.DeepEqual(sa.OwnerReferences, wantOwner) {
		t.Errorf("ServiceAccount owners %v, want %v", sa.OwnerReferences, wantOwner)
	}

	role, err := f.kube.RbacV1().ClusterRoles().Get(ctx, "tmc-syncer-east", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantRules := []rbacv1.PolicyRule{
		{APIGroups: []string{"workload.kcp.io"}, Resources: []string{"synctargets"}, ResourceNames: []string{"east"}, Verbs: []string{"get", "list", "watch", "sync"}},
		{APIGroups: []string{"workload.kcp.io"}, Resources: []string{"synctargets/status"}, ResourceNames: []string{"east"}, Verbs: []string{"get", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
	}
	if !reflect.DeepEqual(role.Rules, wantRules) {
		t.Errorf("ClusterRole rules:\n got %+v\nwant %+v", role.Rules, wantRules)
	}
	if !reflect.DeepEqual(role.OwnerReferences, wantOwner) {
		t.Errorf("ClusterRole owners %v", role.OwnerReferences)
	}
	binding, err := f.kube.RbacV1().ClusterRoleBindings().Get(ctx, "tmc-syncer-east", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantSubjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "tmc-syncer-east", Namespace: "syncers"}}
	if binding.RoleRef.Name != "tmc-syncer-east" || binding.RoleRef.Kind != "ClusterRole" || !reflect.DeepEqual(binding.Subjects, wantSubjects) {
		t.Errorf("ClusterRoleBinding roleRef %+v subjects %+v", binding.RoleRef, binding.Subjects)
	}
}

func TestEnsureUpstreamRepairsDrift(t *testing.T) {
	ctx := t.Context()
	// A SyncTarget re-created under the same name (new UID), a widened ClusterRole and a
	// binding to another role, all left from an earlier registration.
	existing := []runtime.Object{
		&workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{Name: "east", UID: "new-uid"}},
		&rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "tmc-syncer-east", OwnerReferences: []metav1.OwnerReference{
				{APIVersion: "workload.kcp.io/v1alpha1", Kind: "SyncTarget", Name: "east", UID: "old-uid"},
			}},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}},
		},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "tmc-syncer-east", UID: "binding-uid"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects:   []rbacv1.Subject{{Kind: "User", Name: "someone"}},
		},
	}
	f := newFakeUpstream(t, "", existing...)
	up := &upstream{upstreamKube: f.kube, upstreamTMC: f.tmc, out: &bytes.Buffer{}}
	if _, err := up.ensure(ctx, testRequest()); err != nil {
		t.Fatal(err)
	}
	role, err := f.kube.RbacV1().ClusterRoles().Get(ctx, "tmc-syncer-east", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(role.Rules, syncerrbac.LocationWorkspaceRules("east")) {
		t.Errorf("ClusterRole rules not narrowed: %+v", role.Rules)
	}
	if len(role.OwnerReferences) != 1 || role.OwnerReferences[0].UID != "new-uid" {
		t.Errorf("ClusterRole owners %+v, want the current SyncTarget only", role.OwnerReferences)
	}
	binding, err := f.kube.RbacV1().ClusterRoleBindings().Get(ctx, "tmc-syncer-east", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if binding.RoleRef.Name != "tmc-syncer-east" || len(binding.Subjects) != 1 || binding.Subjects[0].Kind != "ServiceAccount" {
		t.Errorf("ClusterRoleBinding not replaced: roleRef %+v subjects %+v", binding.RoleRef, binding.Subjects)
	}
}

// On kcp the SyncTarget's key comes from its logical-cluster name, known only once it is
// created: the key label follows the name (one update), and a second run changes nothing.
func TestEnsureUpstreamKeysTheSyncTargetByItsLogicalCluster(t *testing.T) {
	f := newFakeUpstream(t, "1ls1e2d5ho7fnvra")
	up := &upstream{upstreamKube: f.kube, upstreamTMC: f.tmc, out: &bytes.Buffer{}}
	first, err := up.ensure(t.Context(), testRequest())
	if err != nil {
		t.Fatal(err)
	}
	want := workloadv1alpha1.ToSyncTargetKey("1ls1e2d5ho7fnvra", "east")
	if got := first.syncTarget.Labels[workloadv1alpha1.InternalSyncTargetKeyLabel]; got != want {
		t.Errorf("key label %q, want %q (the key of the logical-cluster name, not of the path)", got, want)
	}
	f.tmc.ClearActions()
	f.kube.ClearActions()
	if _, err := up.ensure(t.Context(), testRequest()); err != nil {
		t.Fatal(err)
	}
	for _, w := range writes(f) {
		if strings.Contains(w, "synctargets") {
			t.Errorf("second run wrote the SyncTarget again: %v", writes(f))
		}
	}
}
