package sync

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	syncoptions "github.com/tmc-dev/tmc/cmd/workload-syncer/options"
	"github.com/tmc-dev/tmc/pkg/cliplugins/workload/sync/syncerrbac"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
)

// runCommand runs `sync` with args against the fake upstream, as if the kubeconfig pointed
// at server, and returns stdout and stderr.
func runCommand(t *testing.T, f *fakeUpstream, server string, args ...string) (string, string, error) {
	t.Helper()
	return runCommandWithTLS(t, f, server, rest.TLSClientConfig{CAData: []byte("fake-ca")}, args...)
}

// runCommandWithTLS is runCommand with the TLS settings of the current kubeconfig.
func runCommandWithTLS(t *testing.T, f *fakeUpstream, server string, tls rest.TLSClientConfig, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr}
	o := NewOptions(streams)
	o.restConfig = func() (*rest.Config, error) {
		return &rest.Config{Host: server, TLSClientConfig: tls}, nil
	}
	o.newKube = func(*rest.Config) (kubernetes.Interface, error) { return f.kube, nil }
	o.newTMC = func(*rest.Config) (tmcclient.Interface, error) { return f.tmc, nil }
	cmd := newCommand(o)
	cmd.SetArgs(args)
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	err := cmd.ExecuteContext(t.Context())
	return stdout.String(), stderr.String(), err
}

func TestCommandGolden(t *testing.T) {
	tests := []struct {
		name, golden, server, kcpCluster string
		args                             []string
	}{
		{
			name:       "kcp location workspace",
			golden:     "command-kcp.yaml",
			server:     "https://kcp.example.com:6443/clusters/root:org:locations",
			kcpCluster: "2x7hd9kq1lm",
			args:       []string{"east", "--syncer-image", "ghcr.io/tmc-dev/workload-syncer:v0.1.0", "--labels", "region=eu"},
		},
		{
			name:   "front proxy without kcp annotations, pinned resources",
			golden: "command-pinned.yaml",
			server: "https://127.0.0.1:6443/clusters/root:org:locations",
			args: []string{"west", "--syncer-image", "img:dev", "--resources", "deployments.apps,configmaps,deployments.apps",
				"--replicas", "2", "-n", "syncer-west", "--qps", "20", "--burst", "30", "--downstream-namespace-clean-delay", "1m"},
		},
		{
			name:       "kcp location workspace without the virtual-workspace server",
			golden:     "command-kcp-direct.yaml",
			server:     "https://kcp.example.com:6443/clusters/root:org:locations",
			kcpCluster: "2x7hd9kq1lm",
			args:       []string{"east", "--syncer-image", "ghcr.io/tmc-dev/workload-syncer:v0.1.0", "--direct-workspace-access"},
		},
		{
			name:   "plain Kubernetes hub",
			golden: "command-hub.yaml",
			server: "https://hub.example.com",
			args:   []string{"edge-1", "--syncer-image", "img:dev"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeUpstream(t, tt.kcpCluster)
			stdout, stderr, err := runCommand(t, f, tt.server, tt.args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr)
			}
			checkGolden(t, tt.golden, []byte(stdout))
			if !strings.Contains(stderr, "expires at 2031-01-02T03:04:05Z") {
				t.Errorf("stderr does not tell when the token expires:\n%s", stderr)
			}

			// Idempotent: the second run prints the same manifest apart from the token.
			again, stderr, err := runCommand(t, f, tt.server, tt.args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr)
			}
			token2 := base64.StdEncoding.EncodeToString([]byte("token-2"))
			token1 := base64.StdEncoding.EncodeToString([]byte("token-1"))
			if !strings.Contains(again, token2) {
				t.Error("the second run does not carry a new token")
			}
			if strings.ReplaceAll(again, token2, token1) != stdout {
				t.Errorf("the second run printed another manifest:\n%s", lineDiff(stdout, again))
			}
			if strings.Contains(stderr, "created") || strings.Contains(stderr, "configured") {
				t.Errorf("the second run changed upstream objects:\n%s", stderr)
			}
		})
	}
}

func TestCommandWritesFile(t *testing.T) {
	f := newFakeUpstream(t, "")
	path := filepath.Join(t.TempDir(), "east.yaml")
	stdout, stderr, err := runCommand(t, f, "https://kcp.example.com/clusters/root:loc", "east", "--syncer-image", "img", "-o", path)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if stdout != "" {
		t.Errorf("stdout not empty with -o: %q", stdout)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("manifest mode %v, want 0600: it holds a token", info.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "kind: Deployment") {
		t.Errorf("manifest file lacks the Deployment:\n%s", b)
	}
	if !strings.Contains(stderr, "kubectl --kubeconfig <physical-cluster-kubeconfig> apply -f "+path) {
		t.Errorf("stderr does not say how to apply the file:\n%s", stderr)
	}
}

func TestCommandValidation(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"no image", []string{"east"}, []string{"--syncer-image is required"}},
		{"bad name", []string{"East_1", "--syncer-image", "i"}, []string{`SyncTarget name "East_1"`}},
		{"everything wrong at once", []string{
			"east", "--syncer-image", "i", "--resources", "Deployments", "--labels", "nokey", "--replicas", "-1",
			"-n", "Bad", "--upstream-namespace", "", "--qps", "0", "--downstream-namespace-clean-delay", "-1s", "--token-lifetime", "9m59s",
		}, []string{
			"--resources", "--labels", "--replicas", "--namespace", "--upstream-namespace", "--qps", "--downstream-namespace-clean-delay", "--token-lifetime must be at least 10m0s",
		}},
		{"deprecated token flag validated too", []string{"east", "--syncer-image", "i", "--token-expiration", "1m"}, []string{"--token-lifetime must be at least 10m0s"}},
		{"reserved label", []string{"east", "--syncer-image", "i", "--labels", "internal.workload.kcp.io/key=x"}, []string{"set by TMC"}},
		{"two names", []string{"east", "west", "--syncer-image", "i"}, []string{"accepts 1 arg"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeUpstream(t, "")
			_, _, err := runCommand(t, f, "https://kcp.example.com/clusters/root:loc", tt.args...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			if len(f.kube.Actions())+len(f.tmc.Actions()) > 0 {
				t.Error("the upstream was contacted despite invalid flags")
			}
		})
	}
}

func TestSplitUpstreamURL(t *testing.T) {
	for _, tt := range []struct {
		host, root, workspace string
		wantErr               bool
	}{
		{host: "https://kcp:6443/clusters/root:org:loc", root: "https://kcp:6443", workspace: "root:org:loc"},
		{host: "https://proxy/kcp/clusters/root:a/", root: "https://proxy/kcp", workspace: "root:a"},
		{host: "https://hub.example.com", root: "https://hub.example.com"},
		{host: "https://hub.example.com/", root: "https://hub.example.com"},
		{host: "hub:6443", root: "https://hub:6443"},
		{host: "https://kcp/clusters/Bad", wantErr: true},
	} {
		root, ws, err := splitUpstreamURL(tt.host)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: error %v, want error %v", tt.host, err, tt.wantErr)
			continue
		}
		if root != tt.root || ws.String() != tt.workspace {
			t.Errorf("%s: got (%q, %q), want (%q, %q)", tt.host, root, ws, tt.root, tt.workspace)
		}
	}
}

func TestWorkloadWorkspaceRBACExtractsFromTheHeader(t *testing.T) {
	f := newFakeUpstream(t, "2x7hd9kq1lm")
	stdout, stderr, err := runCommand(t, f, "https://kcp.example.com/clusters/root:loc", "east", "--syncer-image", "img", "--resources", "deployments.apps",
		"--direct-workspace-access")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "sed -n 's/^#| //p'") {
		t.Errorf("stderr does not say how to grant the RBAC:\n%s", stderr)
	}
	// What `sed -n 's/^#| //p'` extracts.
	var extracted strings.Builder
	for _, line := range strings.Split(stdout, "\n") {
		if rest, ok := strings.CutPrefix(line, commentYAMLPrefix); ok {
			extracted.WriteString(rest + "\n")
		}
	}
	docs := strings.Split(extracted.String(), "---\n")
	if len(docs) != 2 {
		t.Fatalf("extracted %d documents, want 2:\n%s", len(docs), extracted.String())
	}
	var role rbacv1.ClusterRole
	var binding rbacv1.ClusterRoleBinding
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &role); err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict([]byte(docs[1]), &binding); err != nil {
		t.Fatal(err)
	}
	wantRules := []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"deployments", "deployments/status"}, Verbs: syncerrbac.UpstreamSyncVerbs},
		syncerrbac.UpsyncUpstreamRules()[0],
		syncerrbac.UpsyncUpstreamRules()[1],
		syncerrbac.UpsyncUpstreamRules()[2],
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"kube-root-ca.crt"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
	}
	if role.Kind != "ClusterRole" || !reflect.DeepEqual(role.Rules, wantRules) {
		t.Errorf("workload workspace ClusterRole %s rules %+v, want %+v", role.Kind, role.Rules, wantRules)
	}
	wantSubject := rbacv1.Subject{Kind: "User", APIGroup: rbacv1.GroupName, Name: "system:kcp:serviceaccount:2x7hd9kq1lm:default:tmc-syncer-east"}
	if binding.RoleRef.Name != role.Name || len(binding.Subjects) != 1 || binding.Subjects[0] != wantSubject {
		t.Errorf("workload workspace binding %+v %+v", binding.RoleRef, binding.Subjects)
	}
}

// On kcp the syncer reaches the workload workspaces through the virtual-workspace server by
// default: no per-workspace RBAC in the header, no step to grant it, and the verb sync on
// its SyncTarget upstream.
func TestCommandOnKCPPrintsNoWorkspaceRBAC(t *testing.T) {
	f := newFakeUpstream(t, "2x7hd9kq1lm")
	stdout, stderr, err := runCommand(t, f, "https://kcp.example.com/clusters/root:loc", "east", "--syncer-image", "img")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(line, commentYAMLPrefix) {
			t.Fatalf("the manifest carries workload workspace RBAC: %q", line)
		}
	}
	if strings.Contains(stderr, "sed -n") || !strings.Contains(stderr, "nothing to grant in them") {
		t.Errorf("stderr asks to grant RBAC in the workload workspaces:\n%s", stderr)
	}
	role, err := f.kube.RbacV1().ClusterRoles().Get(t.Context(), "tmc-syncer-east", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(role.Rules) == 0 || !slices.Contains(role.Rules[0].Verbs, syncerrbac.SyncVerb) || !slices.Equal(role.Rules[0].ResourceNames, []string{"east"}) {
		t.Errorf("the location workspace ClusterRole does not grant sync on SyncTarget east: %+v", role.Rules)
	}
}

// The Deployment's arguments must be accepted by the workload-syncer's own flags, and the
// defaults here must be the syncer's.
func TestDeploymentArgsParseWithTheSyncerFlags(t *testing.T) {
	if DefaultQPS != syncoptions.DefaultQPS || DefaultBurst != syncoptions.DefaultBurst ||
		DefaultDownstreamNamespaceCleanDelay != syncoptions.DefaultDownstreamNamespaceCleanDelay {
		t.Errorf("defaults differ from the workload-syncer's: qps %v/%v burst %v/%v clean delay %v/%v",
			DefaultQPS, syncoptions.DefaultQPS, DefaultBurst, syncoptions.DefaultBurst,
			DefaultDownstreamNamespaceCleanDelay, syncoptions.DefaultDownstreamNamespaceCleanDelay)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(testKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("POD_NAMESPACE", "tmc-syncer-east") // the downward API, for leader election
	opts := baseManifestOptions()
	opts.Replicas = 2
	opts.PinResources = true
	opts.Resources = []workloadv1alpha1.ResourceToSync{{Group: "apps", Resource: "deployments"}, {Resource: "configmaps"}}
	objs, err := DownstreamManifests(opts)
	if err != nil {
		t.Fatal(err)
	}
	var dep appsv1.Deployment
	fromUnstructured(t, objs[len(objs)-1], &dep)
	args := dep.Spec.Template.Spec.Containers[0].Args
	for i, a := range args {
		if strings.HasPrefix(a, "--upstream-kubeconfig=") {
			args[i] = "--upstream-kubeconfig=" + kubeconfig
		}
	}
	o := syncoptions.NewOptions()
	fs := pflag.NewFlagSet("workload-syncer", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatalf("the syncer rejects the Deployment's arguments: %v", err)
	}
	if !o.LeaderElect || o.SyncTargetName != "east" || o.SyncTargetWorkspace != "root:org:locations" ||
		strings.Join(o.Resources, ",") != "deployments.apps,configmaps" || o.UpstreamMode != "auto" {
		t.Errorf("parsed options %+v", o)
	}

	// --direct-workspace-access runs the syncer in direct mode.
	opts.DirectWorkspaceAccess = true
	if objs, err = DownstreamManifests(opts); err != nil {
		t.Fatal(err)
	}
	fromUnstructured(t, objs[len(objs)-1], &dep)
	o = syncoptions.NewOptions()
	fs = pflag.NewFlagSet("workload-syncer", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(dep.Spec.Template.Spec.Containers[0].Args); err != nil {
		t.Fatal(err)
	}
	if o.UpstreamMode != "direct" {
		t.Errorf("--upstream-mode = %q with DirectWorkspaceAccess, want direct", o.UpstreamMode)
	}
}

func TestCommandFlags(t *testing.T) {
	cmd := NewCommand(genericiooptions.NewTestIOStreamsDiscard())
	for name, shorthand := range map[string]string{
		"kubeconfig": "", "context": "", "server": "s", "syncer-image": "", "resources": "", "labels": "",
		"output-file": "o", "replicas": "", "namespace": "n", "upstream-namespace": "", "qps": "", "burst": "",
		"downstream-namespace-clean-delay": "", "token-lifetime": "", "token-expiration": "", "syncer-insecure-skip-tls-verify": "",
		"direct-workspace-access": "",
	} {
		f := cmd.Flags().Lookup(name)
		if f == nil {
			t.Errorf("no --%s flag", name)
			continue
		}
		if f.Shorthand != shorthand {
			t.Errorf("--%s has shorthand %q, want %q", name, f.Shorthand, shorthand)
		}
	}
	if ns := cmd.Flags().Lookup("namespace"); ns != nil && !strings.Contains(ns.Usage, "physical cluster") {
		t.Errorf("-n is not the syncer's namespace on the physical cluster: %q", ns.Usage)
	}
	var help bytes.Buffer
	cmd.SetOut(&help)
	cmd.SetArgs([]string{"--help"})
	if err := cmd.Execute(); err != nil || !strings.Contains(help.String(), "ValidatingAdmissionPolicy") {
		t.Errorf("help: %v\n%s", err, help.String())
	}
}
