package sync

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/tmc-dev/tmc/pkg/cliplugins/workload/sync/syncerrbac"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const (
	// namePrefix starts the name of every object this command creates, on both sides.
	namePrefix = syncerrbac.NamePrefix
	// hubWorkspace is what the syncer calls the single workspace of a plain Kubernetes hub
	// (an upstream URL without /clusters/); the SyncTarget key is computed from it.
	hubWorkspace = "hub"

	// kubeconfigKey and tokenKey are the keys of the upstream Secret. The kubeconfig reads
	// its token from the file of tokenKey, so that applying a re-generated Secret rotates
	// the token without restarting the syncer (client-go re-reads token files).
	kubeconfigKey = "kubeconfig"
	tokenKey      = "token"
	// secretMountPath is where the upstream Secret is mounted in the syncer's pod.
	secretMountPath = "/etc/tmc"

	metricsPort = 8080
	healthPort  = 8081
	// nonRootUID is the "nonroot" user of the distroless image of the Dockerfile.
	nonRootUID = 65532

	// maxSyncTargetNameLength keeps "tmc-syncer-<name>" a valid namespace name.
	maxSyncTargetNameLength = validation.DNS1123LabelMaxLength - len(namePrefix)
)

// ManifestOptions describe the syncer to deploy on a physical cluster.
type ManifestOptions struct {
	// SyncTargetName is the SyncTarget the syncer serves; required.
	SyncTargetName string
	// SyncTargetUID pins the syncer to this incarnation of the SyncTarget; optional.
	SyncTargetUID string
	// SyncTargetWorkspace is the location workspace holding the SyncTarget; empty means a
	// plain Kubernetes hub.
	SyncTargetWorkspace logicalcluster.Path
	// SyncTargetCluster is the logical-cluster name of the location workspace, read from
	// the SyncTarget's kcp.io/cluster annotation: the SyncTarget key (and so the ownership
	// label the admission policy confines the syncer to) is computed from it, as kcp and the
	// syncer compute it. Empty: the workspace path (a plain hub, or an upstream that records
	// no names).
	SyncTargetCluster string

	// Namespace of the syncer on the physical cluster; empty means "tmc-syncer-<name>".
	Namespace string
	// Image of the workload-syncer; required.
	Image string
	// Replicas of the Deployment; more than one turns on leader election.
	Replicas int32

	// Resources are the types the syncer's RBAC covers; empty means the SyncTarget's
	// default set (workloadv1alpha1.DefaultResources).
	Resources []workloadv1alpha1.ResourceToSync
	// PinResources passes Resources to the syncer as --resources, overriding the
	// SyncTarget's spec.resources, so that it never tries types its RBAC does not cover.
	PinResources bool

	// QPS, Burst and DownstreamNamespaceCleanDelay are passed to the syncer as flags.
	QPS                           float32
	Burst                         int
	DownstreamNamespaceCleanDelay time.Duration

	// DirectWorkspaceAccess passes --upstream-mode=direct to a syncer on kcp: it reaches
	// each workload workspace with its own RBAC there, never through the virtual-workspace
	// server. A plain hub is always direct.
	DirectWorkspaceAccess bool

	// UpstreamKubeconfig is the syncer's kubeconfig of the upstream. It reads its token from
	// the file "token" next to it (see UpstreamKubeconfig), which holds UpstreamToken.
	UpstreamKubeconfig []byte
	UpstreamToken      string
}

// names are the names of the downstream objects, derived from the SyncTarget.
type names struct {
	// namespaced is the name of the namespaced objects (and the default namespace).
	namespaced string
	// cluster names the cluster-scoped objects: unique per SyncTarget across location
	// workspaces, so that two registrations of the same name on one physical cluster do not
	// overwrite each other's RBAC and admission policy.
	cluster   string
	namespace string
	secret    string
	// stKey is the SyncTarget key: the value of the ownership label the syncer sets.
	stKey string
	// user is the syncer ServiceAccount's user name on the physical cluster.
	user string
}

// syncTargetCluster is SyncTargetCluster, or workspace when it is not known.
func (o ManifestOptions) syncTargetCluster(workspace string) string {
	if o.SyncTargetCluster != "" {
		return o.SyncTargetCluster
	}
	return workspace
}

func (o ManifestOptions) names() names {
	workspace := o.SyncTargetWorkspace.String()
	if workspace == "" {
		workspace = hubWorkspace
	}
	n := names{
		namespaced: namePrefix + o.SyncTargetName,
		cluster:    syncerrbac.ClusterObjectName(workspace, o.SyncTargetName),
		namespace:  o.Namespace,
		stKey:      workloadv1alpha1.ToSyncTargetKey(o.syncTargetCluster(workspace), o.SyncTargetName),
	}
	if n.namespace == "" {
		n.namespace = n.namespaced
	}
	n.secret = n.namespaced + "-upstream"
	n.user = "system:serviceaccount:" + n.namespace + ":" + n.namespaced
	return n
}

// downstream is the syncer's ServiceAccount on the physical cluster, for its RBAC and
// admission policy.
func (n names) downstream(syncTargetName string, labels map[string]string, resources []workloadv1alpha1.ResourceToSync) syncerrbac.Downstream {
	return syncerrbac.Downstream{
		ClusterObjectName:  n.cluster,
		Namespace:          n.namespace,
		LeaderElectionName: n.namespaced + "-leader-election",
		Subject:            rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: n.namespaced, Namespace: n.namespace},
		UserName:           n.user,
		SyncTargetName:     syncTargetName,
		SyncTargetKey:      n.stKey,
		Resources:          resources,
		Labels:             labels,
	}
}

func (o ManifestOptions) validate() error {
	var errs []error
	if msgs := validateSyncTargetName(o.SyncTargetName); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("SyncTarget name %q: %s", o.SyncTargetName, strings.Join(msgs, "; ")))
	}
	if !o.SyncTargetWorkspace.Empty() {
		if err := o.SyncTargetWorkspace.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if o.Namespace != "" {
		if msgs := validation.IsDNS1123Label(o.Namespace); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("namespace %q: %s", o.Namespace, strings.Join(msgs, "; ")))
		}
	}
	if o.Image == "" {
		errs = append(errs, errors.New("the syncer image is required"))
	}
	if o.Replicas < 0 {
		errs = append(errs, fmt.Errorf("replicas must not be negative, got %d", o.Replicas))
	}
	if len(o.UpstreamKubeconfig) == 0 {
		errs = append(errs, errors.New("the upstream kubeconfig is required"))
	}
	return errors.Join(errs...)
}

// validateSyncTargetName accepts the SyncTarget names this command can derive object names
// from: DNS labels short enough to be prefixed with "tmc-syncer-".
func validateSyncTargetName(name string) []string {
	msgs := validation.IsDNS1123Label(name)
	if len(msgs) == 0 && len(name) > maxSyncTargetNameLength {
		msgs = append(msgs, fmt.Sprintf("must be no more than %d characters, so that %q is a valid namespace name", maxSyncTargetNameLength, namePrefix+name))
	}
	return msgs
}

// DownstreamManifests returns the objects to apply to the physical cluster, in the order
// they must be applied: Namespace, ServiceAccount, RBAC, the admission policy and its
// binding (before the syncer starts), the upstream Secret, and the Deployment.
func DownstreamManifests(opts ManifestOptions) ([]*unstructured.Unstructured, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("invalid manifest options: %w", err)
	}
	n := opts.names()
	labels := map[string]string{
		"app.kubernetes.io/name":       "workload-syncer",
		"app.kubernetes.io/instance":   n.namespaced,
		"app.kubernetes.io/managed-by": "kubectl-tmc",
	}
	resources := opts.Resources
	if len(resources) == 0 {
		resources = workloadv1alpha1.DefaultResources()
	}

	typed := []runtime.Object{
		&corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: meta(n.namespace, "", labels),
		},
		&corev1.ServiceAccount{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: meta(n.namespaced, n.namespace, labels),
		},
	}
	typed = append(typed, syncerrbac.DownstreamObjects(n.downstream(opts.SyncTargetName, labels, resources))...)
	typed = append(typed,
		&corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: meta(n.secret, n.namespace, labels),
			Type:       corev1.SecretTypeOpaque,
			Data: map[string][]byte{
				kubeconfigKey: opts.UpstreamKubeconfig,
				tokenKey:      []byte(opts.UpstreamToken),
			},
		},
		deployment(opts, n, labels, resources),
	)

	objs := make([]*unstructured.Unstructured, 0, len(typed))
	for _, obj := range typed {
		u, err := toUnstructured(obj)
		if err != nil {
			return nil, err
		}
		objs = append(objs, u)
	}
	return objs, nil
}

func meta(name, namespace string, labels map[string]string) metav1.ObjectMeta {
	copied := make(map[string]string, len(labels))
	for k, v := range labels {
		copied[k] = v
	}
	return metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: copied}
}

// syncerArgs returns the workload-syncer's arguments in the Deployment.
func (o ManifestOptions) syncerArgs(resources []workloadv1alpha1.ResourceToSync) []string {
	args := []string{
		"--upstream-kubeconfig=" + secretMountPath + "/" + kubeconfigKey,
	}
	if !o.SyncTargetWorkspace.Empty() {
		args = append(args, "--sync-target-workspace="+o.SyncTargetWorkspace.String())
	}
	args = append(args, "--sync-target-name="+o.SyncTargetName,
		// Spelled out although it is the syncer's default, so that the policy it checks
		// for SyncerConfined is visibly the one this manifest installs.
		"--admission-policy-name="+o.names().cluster)
	if o.SyncTargetUID != "" {
		args = append(args, "--sync-target-uid="+o.SyncTargetUID)
	}
	if o.DirectWorkspaceAccess && !o.SyncTargetWorkspace.Empty() {
		// The workload-syncer's UpstreamModeDirect.
		args = append(args, "--upstream-mode=direct")
	}
	if o.PinResources {
		list := make([]string, 0, len(resources))
		for _, r := range resources {
			list = append(list, r.String())
		}
		args = append(args, "--resources="+strings.Join(list, ","))
	}
	args = append(args,
		"--qps="+strconv.FormatFloat(float64(o.QPS), 'g', -1, 32),
		"--burst="+strconv.Itoa(o.Burst),
		"--downstream-namespace-clean-delay="+o.DownstreamNamespaceCleanDelay.String(),
		fmt.Sprintf("--metrics-bind-address=:%d", metricsPort),
		fmt.Sprintf("--health-probe-bind-address=:%d", healthPort),
	)
	if o.Replicas > 1 {
		args = append(args, "--leader-elect")
	}
	return args
}

func deployment(o ManifestOptions, n names, labels map[string]string, resources []workloadv1alpha1.ResourceToSync) *appsv1.Deployment {
	selector := map[string]string{
		"app.kubernetes.io/name":     labels["app.kubernetes.io/name"],
		"app.kubernetes.io/instance": labels["app.kubernetes.io/instance"],
	}
	// Without leader election two syncers must never run at once, not even during a
	// rollout: Recreate stops the old pod first.
	strategy := appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	if o.Replicas > 1 {
		strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType}
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta(n.namespaced, n.namespace, labels),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(o.Replicas),
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Strategy: strategy,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName: n.namespaced,
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						RunAsUser:      ptr.To[int64](nonRootUID),
						RunAsGroup:     ptr.To[int64](nonRootUID),
						FSGroup:        ptr.To[int64](nonRootUID),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{syncerContainer(o, resources)},
					Volumes: []corev1.Volume{{
						Name: "upstream",
						VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
							SecretName:  n.secret,
							DefaultMode: ptr.To[int32](0o440),
						}},
					}},
				},
			},
		},
	}
}

// syncerContainer is the syncer's container: its flags, probes, limits and a locked-down
// security context.
func syncerContainer(o ManifestOptions, resources []workloadv1alpha1.ResourceToSync) corev1.Container {
	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: path, Port: intstr.FromString("health"),
			}},
			// The syncer's health checks give up after 4s.
			TimeoutSeconds:   5,
			PeriodSeconds:    10,
			FailureThreshold: 3,
		}
	}
	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path},
		}}
	}
	return corev1.Container{
		Name:  "workload-syncer",
		Image: o.Image,
		Args:  o.syncerArgs(resources),
		Env: []corev1.EnvVar{
			fieldEnv("POD_NAME", "metadata.name"),
			fieldEnv("POD_NAMESPACE", "metadata.namespace"),
		},
		Ports: []corev1.ContainerPort{
			{Name: "metrics", ContainerPort: metricsPort, Protocol: corev1.ProtocolTCP},
			{Name: "health", ContainerPort: healthPort, Protocol: corev1.ProtocolTCP},
		},
		LivenessProbe:  probe("/livez"),
		ReadinessProbe: probe("/readyz"),
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("100m"),
				corev1.ResourceMemory: resource.MustParse("128Mi"),
			},
			Limits: corev1.ResourceList{
				corev1.ResourceMemory: resource.MustParse("512Mi"),
			},
		},
		VolumeMounts: []corev1.VolumeMount{{
			Name: "upstream", MountPath: secretMountPath, ReadOnly: true,
		}},
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			ReadOnlyRootFilesystem:   ptr.To(true),
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
	}
}

// toUnstructured converts a typed object, dropping the empty fields the typed structs
// cannot omit (creationTimestamp: null, spec: {}, status: {}).
func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("failed to convert %T: %w", obj, err)
	}
	u := &unstructured.Unstructured{Object: content}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "creationTimestamp")
	for _, field := range []string{"spec", "status"} {
		if m, ok := u.Object[field].(map[string]interface{}); ok && len(m) == 0 {
			delete(u.Object, field)
		}
	}
	return u, nil
}

// Render writes objs as a multi-document YAML stream, one document per object in the
// given order, with sorted keys: the same objects always render to the same bytes.
func Render(objs []*unstructured.Unstructured) ([]byte, error) {
	var buf bytes.Buffer
	for i, obj := range objs {
		b, err := yaml.Marshal(obj.Object)
		if err != nil {
			return nil, fmt.Errorf("failed to render %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(b)
	}
	return buf.Bytes(), nil
}
