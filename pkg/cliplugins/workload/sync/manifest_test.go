package sync

import (
	"bytes"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tmc-dev/tmc/pkg/cliplugins/workload/sync/syncerrbac"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const testKubeconfig = `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ZmFrZS1jYQ==
    server: https://kcp.example.com:6443
  name: upstream
contexts:
- context:
    cluster: upstream
    user: upstream
  name: upstream
current-context: upstream
kind: Config
users:
- name: upstream
  user:
    tokenFile: /etc/tmc/token
`

func baseManifestOptions() ManifestOptions {
	return ManifestOptions{
		SyncTargetName:                "east",
		SyncTargetUID:                 "00000000-0000-0000-0000-000000000001",
		SyncTargetWorkspace:           logicalcluster.NewPath("root:org:locations"),
		Image:                         "ghcr.io/tmc-dev/workload-syncer:v0.1.0",
		Replicas:                      1,
		QPS:                           DefaultQPS,
		Burst:                         DefaultBurst,
		DownstreamNamespaceCleanDelay: DefaultDownstreamNamespaceCleanDelay,
		UpstreamKubeconfig:            []byte(testKubeconfig),
		UpstreamToken:                 "token-1",
	}
}

func TestDownstreamManifestsGolden(t *testing.T) {
	tests := []struct {
		name   string
		golden string
		mutate func(*ManifestOptions)
	}{
		{name: "defaults in a kcp workspace", golden: "manifest-default.yaml"},
		{
			name:   "pinned resources, two replicas, own namespace",
			golden: "manifest-pinned-ha.yaml",
			mutate: func(o *ManifestOptions) {
				o.Namespace = "syncers"
				o.Replicas = 2
				o.Resources = []workloadv1alpha1.ResourceToSync{
					{Group: "apps", Resource: "deployments"}, {Resource: "configmaps"}, {Group: "apps", Resource: "statefulsets"},
				}
				o.PinResources = true
				o.QPS = 20.5
				o.Burst = 30
				o.DownstreamNamespaceCleanDelay = 2 * time.Minute
			},
		},
		{
			name:   "plain Kubernetes hub",
			golden: "manifest-hub.yaml",
			mutate: func(o *ManifestOptions) {
				o.SyncTargetWorkspace = logicalcluster.Path{}
				o.SyncTargetUID = ""
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := baseManifestOptions()
			if tt.mutate != nil {
				tt.mutate(&opts)
			}
			objs, err := DownstreamManifests(opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Render(objs)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tt.golden, got)

			// Deterministic: the same input renders to the same bytes.
			again, err := DownstreamManifests(opts)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := Render(again); !bytes.Equal(b, got) {
				t.Error("rendering the same options twice gave different output")
			}
		})
	}
}

func TestDownstreamManifestsOrderAndNames(t *testing.T) {
	objs, err := DownstreamManifests(baseManifestOptions())
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind()+"/"+o.GetName())
	}
	key := workloadv1alpha1.ToSyncTargetKey("root:org:locations", "east")
	clusterName := baseManifestOptions().names().cluster
	want := []string{
		"Namespace/tmc-syncer-east",
		"ServiceAccount/tmc-syncer-east",
		"ClusterRole/" + clusterName,
		"ClusterRoleBinding/" + clusterName,
		"Role/tmc-syncer-east-leader-election",
		"RoleBinding/tmc-syncer-east-leader-election",
		"ValidatingAdmissionPolicy/" + clusterName,
		"ValidatingAdmissionPolicyBinding/" + clusterName,
		"Secret/tmc-syncer-east-upstream",
		"Deployment/tmc-syncer-east",
	}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Errorf("objects:\n got %v\nwant %v", kinds, want)
	}
	if !strings.HasPrefix(clusterName, "tmc-syncer-east-") || len(clusterName) != len("tmc-syncer-east-")+8 {
		t.Errorf("cluster-scoped name %q, want tmc-syncer-east-<8 hex>", clusterName)
	}
	// The same name in another location workspace gets other cluster-scoped names.
	other := baseManifestOptions()
	other.SyncTargetWorkspace = logicalcluster.NewPath("root:org:other")
	if other.names().cluster == clusterName {
		t.Error("two location workspaces share the cluster-scoped names of their syncers")
	}

	var policy admissionregistrationv1.ValidatingAdmissionPolicy
	fromUnstructured(t, objs[6], &policy)
	if got := policy.Spec.MatchConditions[0].Expression; got != "request.userInfo.username == 'system:serviceaccount:tmc-syncer-east:tmc-syncer-east'" {
		t.Errorf("match condition %q", got)
	}
	var owned int
	for _, v := range policy.Spec.Variables {
		if strings.Contains(v.Expression, "'"+key+"'") {
			owned++
		}
	}
	if owned != 3 {
		t.Errorf("%d variables check the ownership label value %s, want 3 (object, oldObject, namespaceObject)", owned, key)
	}
	var binding admissionregistrationv1.ValidatingAdmissionPolicyBinding
	fromUnstructured(t, objs[7], &binding)
	if binding.Spec.PolicyName != policy.Name || len(binding.Spec.ValidationActions) != 1 || binding.Spec.ValidationActions[0] != admissionregistrationv1.Deny {
		t.Errorf("binding %+v does not deny with policy %s", binding.Spec, policy.Name)
	}
}

func TestDownstreamRBACCoversResources(t *testing.T) {
	for _, tt := range []struct {
		name      string
		resources []workloadv1alpha1.ResourceToSync
		want      []workloadv1alpha1.ResourceToSync
	}{
		{name: "default set", want: workloadv1alpha1.DefaultResources()},
		{
			name:      "listed",
			resources: []workloadv1alpha1.ResourceToSync{{Group: "apps", Resource: "deployments"}, {Resource: "configmaps"}},
			want:      []workloadv1alpha1.ResourceToSync{{Group: "apps", Resource: "deployments"}, {Resource: "configmaps"}},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := baseManifestOptions()
			opts.Resources = tt.resources
			objs, err := DownstreamManifests(opts)
			if err != nil {
				t.Fatal(err)
			}
			var role rbacv1.ClusterRole
			fromUnstructured(t, objs[2], &role)
			granted := sets.New[string]()
			for _, rule := range role.Rules {
				if sets.New(rule.Verbs...).IsSuperset(sets.New(syncerrbac.DownstreamSyncVerbs...)) {
					for _, g := range rule.APIGroups {
						for _, r := range rule.Resources {
							granted.Insert(workloadv1alpha1.ResourceToSync{Group: g, Resource: r}.String())
						}
					}
				}
			}
			want := sets.New[string]()
			for _, r := range tt.want {
				want.Insert(r.String())
			}
			if !granted.Equal(want) {
				t.Errorf("full access granted to %v, want %v", sets.List(granted), sets.List(want))
			}
		})
	}
}

func TestDeploymentLeaderElection(t *testing.T) {
	for _, replicas := range []int32{0, 1, 2, 3} {
		opts := baseManifestOptions()
		opts.Replicas = replicas
		objs, err := DownstreamManifests(opts)
		if err != nil {
			t.Fatal(err)
		}
		var dep appsv1.Deployment
		fromUnstructured(t, objs[len(objs)-1], &dep)
		args := strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " ")
		wantLE := replicas > 1
		if got := strings.Contains(args, "--leader-elect"); got != wantLE {
			t.Errorf("replicas %d: --leader-elect present %v, want %v (args %s)", replicas, got, wantLE, args)
		}
		wantStrategy := appsv1.RecreateDeploymentStrategyType
		if wantLE {
			wantStrategy = appsv1.RollingUpdateDeploymentStrategyType
		}
		if dep.Spec.Strategy.Type != wantStrategy {
			t.Errorf("replicas %d: strategy %s, want %s", replicas, dep.Spec.Strategy.Type, wantStrategy)
		}
	}
}

func TestUpstreamKubeconfigInSecretLoads(t *testing.T) {
	objs, err := DownstreamManifests(baseManifestOptions())
	if err != nil {
		t.Fatal(err)
	}
	data, _, _ := unstructured.NestedStringMap(objs[8].Object, "data")
	if data[kubeconfigKey] == "" || data[tokenKey] == "" {
		t.Fatalf("secret data keys %v, want %s and %s", data, kubeconfigKey, tokenKey)
	}
	cfg, err := clientcmd.Load([]byte(testKubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.AuthInfos["upstream"].TokenFile; got != secretMountPath+"/"+tokenKey {
		t.Errorf("token file %q", got)
	}
}

func TestDownstreamManifestsValidation(t *testing.T) {
	for _, tt := range []struct {
		name   string
		mutate func(*ManifestOptions)
		want   string
	}{
		{"no image", func(o *ManifestOptions) { o.Image = "" }, "image is required"},
		{"long name", func(o *ManifestOptions) { o.SyncTargetName = strings.Repeat("a", 53) }, "no more than 52 characters"},
		{"dotted name", func(o *ManifestOptions) { o.SyncTargetName = "a.b" }, "SyncTarget name"},
		{"bad namespace", func(o *ManifestOptions) { o.Namespace = "Bad" }, "namespace"},
		{"negative replicas", func(o *ManifestOptions) { o.Replicas = -1 }, "replicas"},
		{"no kubeconfig", func(o *ManifestOptions) { o.UpstreamKubeconfig = nil }, "kubeconfig"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := baseManifestOptions()
			tt.mutate(&opts)
			_, err := DownstreamManifests(opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func fromUnstructured(t *testing.T, u *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
		t.Fatal(err)
	}
}
