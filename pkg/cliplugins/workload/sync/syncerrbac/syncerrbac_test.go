package syncerrbac

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func TestDownstreamObjectsForAUser(t *testing.T) {
	d := Downstream{
		ClusterObjectName:  "tmc-syncer-east",
		Namespace:          "tmc-syncer-east",
		LeaderElectionName: "tmc-syncer-east-leader-election",
		Subject:            rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "syncer-east"},
		UserName:           "syncer-east",
		SyncTargetName:     "east",
		SyncTargetKey:      "key123",
		Resources:          []workloadv1alpha1.ResourceToSync{{Resource: "configmaps"}, {Group: "apps", Resource: "deployments"}},
	}
	objs := DownstreamObjects(d)
	if len(objs) != 6 {
		t.Fatalf("got %d objects, want ClusterRole, ClusterRoleBinding, Role, RoleBinding, policy and binding", len(objs))
	}
	role := objs[0].(*rbacv1.ClusterRole)
	wantRules := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch", "create", "patch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"persistentvolumeclaims"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"kcp-root-ca.crt"}, Verbs: []string{"get", "list", "watch", "patch"}},
		// The tunnel's pod requests (WebSocket upgrades are GETs).
		{APIGroups: []string{""}, Resources: []string{"pods", "pods/log"}, Verbs: []string{"get"}},
		{APIGroups: []string{""}, Resources: []string{"pods/exec", "pods/attach", "pods/portforward"}, Verbs: []string{"get", "create"}},
		// Upsync reads what goes up.
		{APIGroups: []string{""}, Resources: []string{"endpoints", "persistentvolumes", "pods"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: DownstreamSyncVerbs},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: DownstreamSyncVerbs},
		{
			APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"validatingadmissionpolicies", "validatingadmissionpolicybindings"},
			ResourceNames: []string{"tmc-syncer-east"}, Verbs: []string{"get"},
		},
	}
	if !reflect.DeepEqual(role.Rules, wantRules) {
		t.Errorf("ClusterRole rules = %+v, want %+v", role.Rules, wantRules)
	}
	for _, rule := range role.Rules {
		for _, field := range [][]string{rule.APIGroups, rule.Resources, rule.Verbs} {
			for _, v := range field {
				if v == "*" {
					t.Errorf("wildcard in downstream rule %+v", rule)
				}
			}
		}
	}
	for _, i := range []int{1, 3} {
		var subjects []rbacv1.Subject
		switch b := objs[i].(type) {
		case *rbacv1.ClusterRoleBinding:
			subjects = b.Subjects
		case *rbacv1.RoleBinding:
			subjects = b.Subjects
			if b.Namespace != d.Namespace {
				t.Errorf("RoleBinding in %q, want %q", b.Namespace, d.Namespace)
			}
		}
		if !reflect.DeepEqual(subjects, []rbacv1.Subject{d.Subject}) {
			t.Errorf("object %d binds %+v, want %+v", i, subjects, d.Subject)
		}
	}
	policy := objs[4].(*admissionregistrationv1.ValidatingAdmissionPolicy)
	if got := policy.Spec.MatchConditions[0].Expression; got != "request.userInfo.username == 'syncer-east'" {
		t.Errorf("policy matches %q, want the user syncer-east", got)
	}
	if binding := objs[5].(*admissionregistrationv1.ValidatingAdmissionPolicyBinding); binding.Spec.PolicyName != policy.Name {
		t.Errorf("policy binding names %q, want %q", binding.Spec.PolicyName, policy.Name)
	}
	if !strings.Contains(policy.Spec.Variables[1].Expression, "'key123'") {
		t.Errorf("ownership check %q does not use the SyncTarget key", policy.Spec.Variables[1].Expression)
	}
}

func TestWorkloadWorkspaceRulesDefaultToTheDefaultResources(t *testing.T) {
	got := WorkloadWorkspaceRules(nil)
	want := WorkloadWorkspaceRules(workloadv1alpha1.DefaultResources())
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rules for no resources = %+v, want those of the default set %+v", got, want)
	}
	last := got[len(got)-1]
	if !reflect.DeepEqual(last.Resources, []string{"events"}) {
		t.Errorf("last rule %+v, want Events", last)
	}
}

// The syncer reads the hub's CA upstream and publishes it downstream without ConfigMaps
// being a synced type; exactly those two names, nothing else of the ConfigMaps.
func TestHubCARulesNameTheirConfigMaps(t *testing.T) {
	resources := []workloadv1alpha1.ResourceToSync{{Group: "apps", Resource: "deployments"}}
	find := func(rules []rbacv1.PolicyRule) *rbacv1.PolicyRule {
		for i, r := range rules {
			if reflect.DeepEqual(r.Resources, []string{"configmaps"}) {
				return &rules[i]
			}
		}
		return nil
	}
	up := find(WorkloadWorkspaceRules(resources))
	if up == nil || !reflect.DeepEqual(up.ResourceNames, []string{"kube-root-ca.crt"}) || !reflect.DeepEqual(up.Verbs, []string{"get", "list", "watch"}) {
		t.Errorf("workload workspace ConfigMap rule = %+v, want read access to kube-root-ca.crt only", up)
	}
	down := find(DownstreamRules(resources))
	if down == nil || !reflect.DeepEqual(down.ResourceNames, []string{"kcp-root-ca.crt"}) || !reflect.DeepEqual(down.Verbs, []string{"get", "list", "watch", "patch"}) {
		t.Errorf("downstream ConfigMap rule = %+v, want read and apply on kcp-root-ca.crt only", down)
	}
}

// Upsync writes its copies in every workload workspace, whatever the synced types.
func TestUpsyncRulesInEveryWorkloadWorkspace(t *testing.T) {
	rules := WorkloadWorkspaceRules([]workloadv1alpha1.ResourceToSync{{Group: "apps", Resource: "deployments"}})
	granted := func(group, resource, verb string) bool {
		for _, r := range rules {
			if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) && len(r.ResourceNames) == 0 {
				return true
			}
		}
		return false
	}
	for _, gr := range [][2]string{{"", "pods"}, {"", "pods/status"}, {"", "endpoints"}, {"discovery.k8s.io", "endpointslices"}, {"", "persistentvolumes"}, {"", "persistentvolumes/status"}} {
		for _, verb := range []string{"get", "list", "watch", "create", "update", "patch", "delete"} {
			if !granted(gr[0], gr[1], verb) {
				t.Errorf("workload workspace rules do not grant %s on %s.%s", verb, gr[1], gr[0])
			}
		}
	}
}
