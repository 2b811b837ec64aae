package syncerrbac

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

var (
	// DownstreamSyncVerbs are the verbs the syncer needs on every synced type downstream;
	// it checks exactly these with SelfSubjectAccessReviews before accepting a type.
	DownstreamSyncVerbs = []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	// UpstreamSyncVerbs are the verbs the syncer needs on synced types (and their status)
	// in the workload workspaces: read, finalizers and annotations, status.
	UpstreamSyncVerbs = []string{"get", "list", "watch", "update", "patch"}
)

const (
	// WorkspaceRootCAConfigMapName is the ConfigMap holding the hub's CA in every namespace
	// of a workload workspace (kcp's root-CA publisher); the syncer reads only it of the
	// workspace's ConfigMaps unless ConfigMaps are synced.
	WorkspaceRootCAConfigMapName = "kube-root-ca.crt"
	// HubCAConfigMapName is the ConfigMap in which the syncer publishes the hub's CA in each
	// of its downstream namespaces.
	HubCAConfigMapName = "kcp-root-ca.crt"
)

// NamePrefix starts the name of every object `kubectl tmc workload sync` creates for a
// syncer, on both sides.
const NamePrefix = "tmc-syncer-"

// ClusterObjectName is the name `kubectl tmc workload sync` gives the syncer's
// cluster-scoped objects on the physical cluster (ClusterRole, ClusterRoleBinding,
// ValidatingAdmissionPolicy and its binding): unique per SyncTarget across location
// workspaces, so that two registrations of the same name on one physical cluster do not
// overwrite each other's. workspace is the location workspace as in the SyncTarget key
// ("hub" for a plain Kubernetes hub). The syncer defaults --admission-policy-name to it.
func ClusterObjectName(workspace, syncTargetName string) string {
	sum := sha256.Sum256([]byte(workspace + ":" + syncTargetName))
	return NamePrefix + syncTargetName + "-" + hex.EncodeToString(sum[:])[:8]
}

// Downstream is the syncer's identity on its physical cluster and what it syncs there.
type Downstream struct {
	// ClusterObjectName names the cluster-scoped objects: ClusterRole, ClusterRoleBinding,
	// ValidatingAdmissionPolicy and its binding.
	ClusterObjectName string
	// Namespace is the syncer's own namespace, where its leader-election Lease lives.
	Namespace string
	// LeaderElectionName names the Role and RoleBinding for the Lease.
	LeaderElectionName string
	// Subject is bound to the roles; UserName is the user the admission policy confines
	// (the Subject's user name as the apiserver authenticates it).
	Subject  rbacv1.Subject
	UserName string
	// SyncTargetName and SyncTargetKey name the SyncTarget; the key is the value of the
	// ownership label the syncer sets on its namespaces.
	SyncTargetName string
	SyncTargetKey  string
	// Resources are the synced types; empty means workloadv1alpha1.DefaultResources.
	Resources []workloadv1alpha1.ResourceToSync
	// Labels are set on every object.
	Labels map[string]string
}

func (d Downstream) resources() []workloadv1alpha1.ResourceToSync {
	if len(d.Resources) == 0 {
		return workloadv1alpha1.DefaultResources()
	}
	return d.Resources
}

// DownstreamObjects returns every object that grants and confines the syncer on the physical
// cluster, in the order to create them: DownstreamRBAC, then AdmissionPolicy.
func DownstreamObjects(d Downstream) []runtime.Object {
	return append(DownstreamRBAC(d), AdmissionPolicy(d)...)
}

// DownstreamRules are the syncer's cluster-wide permissions on the physical cluster:
// namespaces and the synced types everywhere (the admission policy narrows writes to its own
// namespaces), nodes for capacity, and the claims of every namespace, read to report which
// placed namespaces hold persistent data even when the claims are not synced types, and
// the Events of every namespace, read to forward the FailedCreate Events of its StatefulSets
// and Jobs upstream (RBAC cannot narrow a watch to some namespaces or reasons).
// Namespaces are patched to record orphaned copies and to release a namespace that holds
// them. The ConfigMaps named HubCAConfigMapName are read and server-side applied (a patch)
// to publish the hub's CA, whether or not ConfigMaps are synced types. Pods are read, and
// their log, exec, attach and portforward reached (create, and get for WebSocket upgrades),
// to serve the pod requests of the tunnel; these are CONNECT requests, which the admission
// policy (CREATE, UPDATE, DELETE) does not see. What is upsynced is read everywhere
// (UpsyncDownstreamRules).
func DownstreamRules(resources []workloadv1alpha1.ResourceToSync) []rbacv1.PolicyRule {
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch", "create", "patch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"persistentvolumeclaims"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{HubCAConfigMapName}, Verbs: []string{"get", "list", "watch", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"pods", "pods/log"}, Verbs: []string{"get"}},
		{APIGroups: []string{""}, Resources: []string{"pods/exec", "pods/attach", "pods/portforward"}, Verbs: []string{"get", "create"}},
	}
	rules = append(rules, UpsyncDownstreamRules()...)
	return append(rules, groupRules(resources, false, DownstreamSyncVerbs)...)
}

// UpsyncVerbs are the verbs the syncer needs on the upsynced types in the workload
// workspaces: their copies are created, updated and deleted from its caches of them.
var UpsyncVerbs = []string{"get", "list", "watch", "create", "update", "patch", "delete"}

// UpsyncDownstreamRules let the syncer read, on the physical cluster, what it upsyncs:
// Pods, the Endpoints and EndpointSlices of Services and PersistentVolumes.
func UpsyncDownstreamRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"endpoints", "persistentvolumes", "pods"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
	}
}

// UpsyncUpstreamRules let the syncer write the upsynced copies in a workload workspace
// (direct mode): Pods, Endpoints, EndpointSlices and PersistentVolumes, with the status of
// Pods and PersistentVolumes, and the binding of Pods.
func UpsyncUpstreamRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"endpoints", "persistentvolumes", "persistentvolumes/status", "pods", "pods/status"}, Verbs: UpsyncVerbs},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: UpsyncVerbs},
		// A pod scheduled downstream after its copy was created is bound to the same node.
		{APIGroups: []string{""}, Resources: []string{"pods/binding"}, Verbs: []string{"create"}},
	}
}

// LeaderElectionRules are the syncer's permissions in its own namespace.
func LeaderElectionRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
	}
}

// ConfinementRule lets the syncer read its own admission policy and binding, both named
// name, and nothing else of admissionregistration: it checks them for its SyncerConfined
// condition.
func ConfinementRule(name string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{
		APIGroups:     []string{admissionregistrationv1.GroupName},
		Resources:     []string{"validatingadmissionpolicies", "validatingadmissionpolicybindings"},
		ResourceNames: []string{name},
		Verbs:         []string{"get"},
	}
}

// DownstreamRBAC returns the ClusterRole (DownstreamRules and the ConfinementRule of the
// admission policy) with its ClusterRoleBinding, and the Role and RoleBinding of
// LeaderElectionRules.
func DownstreamRBAC(d Downstream) []runtime.Object {
	subjects := []rbacv1.Subject{d.Subject}
	return []runtime.Object{
		&rbacv1.ClusterRole{
			TypeMeta:   typeMeta("ClusterRole"),
			ObjectMeta: objectMeta(d.ClusterObjectName, "", d.Labels),
			Rules:      append(DownstreamRules(d.resources()), ConfinementRule(d.ClusterObjectName)),
		},
		&rbacv1.ClusterRoleBinding{
			TypeMeta:   typeMeta("ClusterRoleBinding"),
			ObjectMeta: objectMeta(d.ClusterObjectName, "", d.Labels),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: d.ClusterObjectName},
			Subjects:   subjects,
		},
		&rbacv1.Role{
			TypeMeta:   typeMeta("Role"),
			ObjectMeta: objectMeta(d.LeaderElectionName, d.Namespace, d.Labels),
			Rules:      LeaderElectionRules(),
		},
		&rbacv1.RoleBinding{
			TypeMeta:   typeMeta("RoleBinding"),
			ObjectMeta: objectMeta(d.LeaderElectionName, d.Namespace, d.Labels),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: d.LeaderElectionName},
			Subjects:   subjects,
		},
	}
}

// SyncVerb is the verb on a SyncTarget that authorizes its syncer in the virtual-workspace
// server's views of the target (kcp's rule): the syncer needs nothing in the workload
// workspaces it reaches through them.
const SyncVerb = "sync"

// LocationWorkspaceRules are the syncer's permissions in the location workspace: its own
// SyncTarget only (the syncer watches it with a metadata.name field selector, which RBAC
// authorizes against resourceNames), the verb sync on it (the virtual-workspace server's
// authorization), and Events on it (the deletion breaker's).
func LocationWorkspaceRules(syncTargetName string) []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{
			APIGroups: []string{workloadv1alpha1.SchemeGroupVersion.Group}, Resources: []string{"synctargets"},
			ResourceNames: []string{syncTargetName}, Verbs: []string{"get", "list", "watch", SyncVerb},
		},
		{
			APIGroups: []string{workloadv1alpha1.SchemeGroupVersion.Group}, Resources: []string{"synctargets/status"},
			ResourceNames: []string{syncTargetName}, Verbs: []string{"get", "update", "patch"},
		},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
	}
}

// WorkloadWorkspaceRules are the syncer's permissions in every workload workspace: the
// synced types and their status, Events for failures users can act on, and read access to
// namespaces (a downstream namespace is removed only once its upstream namespace is gone
// or no longer placed on the SyncTarget) and to the namespaces' WorkspaceRootCAConfigMapName
// (the hub's CA, published downstream as HubCAConfigMapName), and the upsynced copies
// (UpsyncUpstreamRules).
func WorkloadWorkspaceRules(resources []workloadv1alpha1.ResourceToSync) []rbacv1.PolicyRule {
	if len(resources) == 0 {
		resources = workloadv1alpha1.DefaultResources()
	}
	rules := groupRules(resources, true, UpstreamSyncVerbs)
	rules = append(rules, UpsyncUpstreamRules()...)
	return append(rules,
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{WorkspaceRootCAConfigMapName}, Verbs: []string{"get", "list", "watch"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}})
}

// WorkloadWorkspaceRBAC returns the ClusterRole and ClusterRoleBinding named name that grant
// subject the WorkloadWorkspaceRules.
func WorkloadWorkspaceRBAC(name string, subject rbacv1.Subject, resources []workloadv1alpha1.ResourceToSync) []runtime.Object {
	return []runtime.Object{
		&rbacv1.ClusterRole{
			TypeMeta:   typeMeta("ClusterRole"),
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Rules:      WorkloadWorkspaceRules(resources),
		},
		&rbacv1.ClusterRoleBinding{
			TypeMeta:   typeMeta("ClusterRoleBinding"),
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects:   []rbacv1.Subject{subject},
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

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: kind}
}

func objectMeta(name, namespace string, labels map[string]string) metav1.ObjectMeta {
	var copied map[string]string
	if labels != nil {
		copied = make(map[string]string, len(labels))
		for k, v := range labels {
			copied[k] = v
		}
	}
	return metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: copied}
}
