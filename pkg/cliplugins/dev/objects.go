package dev

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
)

// The environment's fixed names.
const (
	locationWorkspace = "root:tmc:locations"
	workloadWorkspace = "root:tmc:demo"
	locationName      = "default"
	controllerUser    = "tmc-controller"
	placementName     = "demo"
	demoNamespace     = "demo"
	demoLabel         = "tmc.dev/demo"
	demoDeployment    = "hello"
	demoReplicas      = 2
)

// clusterNames returns the names of the first n physical clusters (and SyncTargets).
func clusterNames(n int) []string {
	names := []string{"east", "west"}
	if n < 0 || n > len(names) {
		n = len(names)
	}
	return names[:n]
}

func syncerUser(cluster string) string { return "syncer-" + cluster }

// The RBAC below is what the e2e tests give the syncers and the controller
// (test/e2e/controller_test.go): each a token user with no more than it needs.

// syncerLocationRules lets a syncer read its SyncTarget and heartbeat into its status.
func syncerLocationRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{"workload.kcp.io"}, Resources: []string{"synctargets"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"workload.kcp.io"}, Resources: []string{"synctargets/status"}, Verbs: []string{"get", "update", "patch"}},
	}
}

// syncerWorkloadRules lets a syncer read the synced types of a workload workspace and write
// their status, finalizers and Events.
func syncerWorkloadRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{"", "apps", "batch", "networking.k8s.io"}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
	}
}

// syncerDownstreamRules lets a syncer manage namespaces and the synced types on its physical
// cluster and read nodes for capacity.
func syncerDownstreamRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch", "create", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps", "secrets", "serviceaccounts", "services", "persistentvolumeclaims"}, Verbs: []string{"*"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets"}, Verbs: []string{"*"}},
		{APIGroups: []string{"batch"}, Resources: []string{"jobs", "cronjobs"}, Verbs: []string{"*"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses"}, Verbs: []string{"*"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"*"}},
	}
}

// controllerRules is what the tmc-controller needs in the location and workload workspaces.
func controllerRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{"workload.kcp.io", "scheduling.kcp.io"}, Resources: []string{"*"}, Verbs: []string{"*"}},
		{APIGroups: []string{"", "apps", "batch", "networking.k8s.io"}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"*"}},
	}
}

// grantUser binds a ClusterRole name with rules to user. Existing objects are kept.
func grantUser(ctx context.Context, c kubernetes.Interface, name, user string, rules []rbacv1.PolicyRule) error {
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
	if _, err := c.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create ClusterRole %s: %w", name, err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}
	if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create ClusterRoleBinding %s: %w", name, err)
	}
	return nil
}

// demoPlacement places every namespace labelled tmc.dev/demo=true of the workload workspace
// on a SyncTarget of the location workspace.
func demoPlacement() *schedulingv1alpha1.Placement {
	return &schedulingv1alpha1.Placement{
		ObjectMeta: metav1.ObjectMeta{Name: placementName},
		Spec: schedulingv1alpha1.PlacementSpec{
			LocationWorkspace: locationWorkspace,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{demoLabel: "true"}},
		},
	}
}

// sampleApp is the demo namespace and what runs in it: plain objects, no TMC labels; the
// Placement and the controller take care of that.
type sampleApp struct {
	Namespace  *corev1.Namespace
	ConfigMap  *corev1.ConfigMap
	Deployment *appsv1.Deployment
	Service    *corev1.Service
}

func newSampleApp() sampleApp {
	labels := map[string]string{"app": demoDeployment}
	return sampleApp{
		Namespace: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: demoNamespace, Labels: map[string]string{demoLabel: "true"}}},
		ConfigMap: &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: demoDeployment + "-config", Namespace: demoNamespace, Labels: labels},
			Data:       map[string]string{"GREETING": "Hello from a TMC workspace"},
		},
		Deployment: &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: demoDeployment, Namespace: demoNamespace, Labels: labels},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](demoReplicas),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{
						Name:    "hello",
						Image:   "nginx",
						Ports:   []corev1.ContainerPort{{Name: "http", ContainerPort: 80}},
						EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: demoDeployment + "-config"}}}},
					}}},
				},
			},
		},
		Service: &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: demoDeployment, Namespace: demoNamespace, Labels: labels},
			Spec: corev1.ServiceSpec{
				Selector: labels,
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
			},
		},
	}
}

// create creates the sample app; objects that exist already are left alone.
func (a sampleApp) create(ctx context.Context, c kubernetes.Interface) error {
	ignoreExists := func(err error) error {
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	}
	if _, err := c.CoreV1().Namespaces().Create(ctx, a.Namespace, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return fmt.Errorf("failed to create namespace %s: %w", a.Namespace.Name, err)
	}
	if _, err := c.CoreV1().ConfigMaps(demoNamespace).Create(ctx, a.ConfigMap, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return fmt.Errorf("failed to create ConfigMap %s: %w", a.ConfigMap.Name, err)
	}
	if _, err := c.AppsV1().Deployments(demoNamespace).Create(ctx, a.Deployment, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return fmt.Errorf("failed to create Deployment %s: %w", a.Deployment.Name, err)
	}
	if _, err := c.CoreV1().Services(demoNamespace).Create(ctx, a.Service, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return fmt.Errorf("failed to create Service %s: %w", a.Service.Name, err)
	}
	return nil
}
