package sync

import (
	"sort"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

var (
	// downstreamSyncVerbs are the verbs the syncer needs on every synced type downstream;
	// it checks exactly these with SelfSubjectAccessReviews before accepting a type.
	downstreamSyncVerbs = []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	// upstreamSyncVerbs are the verbs the syncer needs on synced types (and their status)
	// in the workload workspaces: read, finalizers and annotations, status.
	upstreamSyncVerbs = []string{"get", "list", "watch", "update", "patch"}
)

// downstreamRBAC returns the syncer's permissions on the physical cluster: namespaces and
// the synced types everywhere (the admission policy narrows writes to its own namespaces),
// nodes for capacity, and a leader-election Lease in its own namespace.
func downstreamRBAC(n names, labels map[string]string, resources []workloadv1alpha1.ResourceToSync) []runtime.Object {
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch", "create", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}},
	}
	rules = append(rules, groupRules(resources, false, downstreamSyncVerbs)...)
	subjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: n.namespaced, Namespace: n.namespace}}
	return []runtime.Object{
		&rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
			ObjectMeta: meta(n.cluster, "", labels),
			Rules:      rules,
		},
		&rbacv1.ClusterRoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"},
			ObjectMeta: meta(n.cluster, "", labels),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: n.cluster},
			Subjects:   subjects,
		},
		&rbacv1.Role{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
			ObjectMeta: meta(n.namespaced+"-leader-election", n.namespace, labels),
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
			},
		},
		&rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
			ObjectMeta: meta(n.namespaced+"-leader-election", n.namespace, labels),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: n.namespaced + "-leader-election"},
			Subjects:   subjects,
		},
	}
}

// groupRules returns one rule per API group (core group first, then by name) covering the
// group's resources, sorted and without duplicates, and their status subresources if
// withStatus.
func groupRules(resources []workloadv1alpha1.ResourceToSync, withStatus bool, verbs []string) []rbacv1.PolicyRule {
	byGroup := map[string]map[string]bool{}
	for _, r := range resources {
		if byGroup[r.Group] == nil {
			byGroup[r.Group] = map[string]bool{}
		}
		byGroup[r.Group][r.Resource] = true
		if withStatus {
			byGroup[r.Group][r.Resource+"/status"] = true
		}
	}
	groups := make([]string, 0, len(byGroup))
	for g := range byGroup {
		groups = append(groups, g)
	}
	sort.Strings(groups) // "" sorts first
	rules := make([]rbacv1.PolicyRule, 0, len(groups))
	for _, g := range groups {
		names := make([]string, 0, len(byGroup[g]))
		for r := range byGroup[g] {
			names = append(names, r)
		}
		sort.Strings(names)
		rules = append(rules, rbacv1.PolicyRule{
			APIGroups: []string{g},
			Resources: names,
			Verbs:     append([]string(nil), verbs...),
		})
	}
	return rules
}

// workloadWorkspaceRBAC returns the ClusterRole and ClusterRoleBinding to create in every
// workload workspace, granting subject what the syncer needs there: the synced types and
// their status, and Events for failures users can act on.
func workloadWorkspaceRBAC(name string, subject rbacv1.Subject, resources []workloadv1alpha1.ResourceToSync) []runtime.Object {
	rules := groupRules(resources, true, upstreamSyncVerbs)
	rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}})
	objName := namePrefix + name
	return []runtime.Object{
		&rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: objName},
			Rules:      rules,
		},
		&rbacv1.ClusterRoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: objName},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: objName},
			Subjects:   []rbacv1.Subject{subject},
		},
	}
}
