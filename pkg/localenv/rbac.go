package localenv

import (
	"context"
	"fmt"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tmc-dev/tmc/pkg/cliplugins/workload/sync/syncerrbac"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// SyncerGrant names a syncer's token user and where it works.
type SyncerGrant struct {
	// User is the syncer's token user (one of Options.Users).
	User string
	// SyncTargetName is its SyncTarget in LocationWorkspace.
	SyncTargetName    string
	LocationWorkspace string
	// WorkloadWorkspaces are the workspaces placed on the SyncTarget.
	WorkloadWorkspaces []string
	// Cluster is the physical cluster the syncer serves.
	Cluster string
	// Resources are the synced types; empty means the default set.
	Resources []workloadv1alpha1.ResourceToSync
}

// SyncerRBACName names every RBAC object GrantSyncer creates for the syncer of a
// SyncTarget, on each side, and its namespace on the physical cluster.
func SyncerRBACName(syncTargetName string) string { return "tmc-syncer-" + syncTargetName }

// GrantSyncer grants the syncer's user exactly what `kubectl tmc workload sync` grants a
// registered syncer (package syncerrbac), and confines it with the same admission policy:
// its own SyncTarget in the location workspace, the synced types in every workload
// workspace, and on the physical cluster namespaces, nodes and the synced types, writable
// only in the namespaces it owns. The subject is the token user instead of a ServiceAccount.
func (env *Environment) GrantSyncer(ctx context.Context, g SyncerGrant) error {
	name := SyncerRBACName(g.SyncTargetName)
	subject := rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: g.User}
	loc := env.Workspace(g.LocationWorkspace)
	if loc == nil {
		return fmt.Errorf("failed to grant the syncer: no workspace %s", g.LocationWorkspace)
	}
	if err := createObjects(ctx, loc.AdminConfig(), clusterRoleAndBinding(name, subject, syncerrbac.LocationWorkspaceRules(g.SyncTargetName))...); err != nil {
		return fmt.Errorf("failed to grant the syncer in %s: %w", g.LocationWorkspace, err)
	}
	for _, path := range g.WorkloadWorkspaces {
		ws := env.Workspace(path)
		if ws == nil {
			return fmt.Errorf("failed to grant the syncer: no workspace %s", path)
		}
		if err := createObjects(ctx, ws.AdminConfig(), syncerrbac.WorkloadWorkspaceRBAC(name, subject, g.Resources)...); err != nil {
			return fmt.Errorf("failed to grant the syncer in %s: %w", path, err)
		}
	}
	return env.grantDownstream(ctx, g.Cluster, subject, g.User, g.SyncTargetName, workloadv1alpha1.ToSyncTargetKey(loc.Name, g.SyncTargetName), g.Resources)
}

// grantDownstream grants subject (user) on physical cluster cluster what `kubectl tmc
// workload sync` grants the syncer of SyncTarget syncTargetName (key stKey) there — its
// namespace, RBAC and confining admission policy — and waits until the policy confines it.
func (env *Environment) grantDownstream(ctx context.Context, cluster string, subject rbacv1.Subject, user, syncTargetName, stKey string,
	resources []workloadv1alpha1.ResourceToSync) error {
	pc := env.Cluster(cluster)
	if pc == nil {
		return fmt.Errorf("failed to grant the syncer: no physical cluster %s", cluster)
	}
	name := SyncerRBACName(syncTargetName)
	downstream := syncerrbac.Downstream{
		ClusterObjectName:  name,
		Namespace:          name,
		LeaderElectionName: name + "-leader-election",
		Subject:            subject,
		UserName:           user,
		SyncTargetName:     syncTargetName,
		SyncTargetKey:      stKey,
		Resources:          resources,
	}
	objs := append([]runtime.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}}, syncerrbac.DownstreamObjects(downstream)...)
	if err := createObjects(ctx, pc.AdminConfig(), objs...); err != nil {
		return fmt.Errorf("failed to grant the syncer on physical cluster %s: %w", cluster, err)
	}
	return waitConfined(ctx, pc.AdminConfig(), user, name)
}

// waitConfined waits until the admission policy denies user a write its RBAC allows (a
// dry-run ConfigMap in a namespace it does not own), so that the syncer starts under both.
func waitConfined(ctx context.Context, adminConfig *rest.Config, user, policy string) error {
	cfg := rest.CopyConfig(adminConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("failed to create client for %s: %w", cfg.Host, err)
	}
	probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "tmc-policy-probe"}}
	err = Poll(ctx, 100*time.Millisecond, 60*time.Second, func(ctx context.Context) (bool, string, error) {
		_, err := c.CoreV1().ConfigMaps(metav1.NamespaceDefault).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil {
			return false, "allowed", nil
		}
		return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "ValidatingAdmissionPolicy '"+policy+"'"), err.Error(), nil
	})
	if err != nil {
		return fmt.Errorf("failed to see admission policy %s confine %s: %w", policy, user, err)
	}
	return nil
}

// ControllerRules is what the tmc-controller needs in the location and workload workspaces.
func ControllerRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{"workload.kcp.io", "scheduling.kcp.io"}, Resources: []string{"*"}, Verbs: []string{"*"}},
		{APIGroups: []string{"", "apps", "batch", "networking.k8s.io"}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
		// The upsynced objects of a gone SyncTarget are deleted (release/upsynced.go).
		{APIGroups: []string{"", "discovery.k8s.io"}, Resources: []string{"pods", "endpoints", "endpointslices", "persistentvolumes"},
			Verbs: []string{"get", "list", "watch", "update", "patch", "delete"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"*"}},
	}
}

// ControllerRBAC is the ClusterRole tmc-controller of ControllerRules and its binding to
// user.
func ControllerRBAC(user string) []runtime.Object {
	subject := rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}
	return clusterRoleAndBinding("tmc-controller", subject, ControllerRules())
}

// GrantController grants the controller's user ControllerRBAC in every workspace.
func (env *Environment) GrantController(ctx context.Context, user string, workspaces ...string) error {
	for _, path := range workspaces {
		ws := env.Workspace(path)
		if ws == nil {
			return fmt.Errorf("failed to grant the controller: no workspace %s", path)
		}
		if err := createObjects(ctx, ws.AdminConfig(), ControllerRBAC(user)...); err != nil {
			return fmt.Errorf("failed to grant the controller in %s: %w", path, err)
		}
	}
	return nil
}

func clusterRoleAndBinding(name string, subject rbacv1.Subject, rules []rbacv1.PolicyRule) []runtime.Object {
	return []runtime.Object{
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects:   []rbacv1.Subject{subject},
		},
	}
}

// createObjects creates objs as the admin of cfg (see CreateObjects).
func createObjects(ctx context.Context, cfg *rest.Config, objs ...runtime.Object) error {
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("failed to create client for %s: %w", cfg.Host, err)
	}
	return CreateObjects(ctx, c, objs...)
}

// CreateObjects creates the namespace, RBAC and admission objects this package and
// syncerrbac build, in order. Objects that exist already are left as they are, so that
// granting twice is harmless.
func CreateObjects(ctx context.Context, c kubernetes.Interface, objs ...runtime.Object) error {
	opts := metav1.CreateOptions{}
	for _, obj := range objs {
		var err error
		switch o := obj.(type) {
		case *corev1.Namespace:
			_, err = c.CoreV1().Namespaces().Create(ctx, o, opts)
		case *rbacv1.ClusterRole:
			_, err = c.RbacV1().ClusterRoles().Create(ctx, o, opts)
		case *rbacv1.ClusterRoleBinding:
			_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, o, opts)
		case *rbacv1.Role:
			_, err = c.RbacV1().Roles(o.Namespace).Create(ctx, o, opts)
		case *rbacv1.RoleBinding:
			_, err = c.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, opts)
		case *admissionregistrationv1.ValidatingAdmissionPolicy:
			_, err = c.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, o, opts)
		case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			_, err = c.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, o, opts)
		default:
			return fmt.Errorf("failed to create %T: not a kind this environment creates", obj)
		}
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("failed to create %T %s: %w", obj, objectName(obj), err)
		}
	}
	return nil
}

func objectName(obj runtime.Object) string {
	if o, ok := obj.(metav1.Object); ok {
		if o.GetNamespace() != "" {
			return o.GetNamespace() + "/" + o.GetName()
		}
		return o.GetName()
	}
	return ""
}
