package dev

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
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
