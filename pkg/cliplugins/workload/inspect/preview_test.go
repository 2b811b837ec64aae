package inspect

import (
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"sigs.k8s.io/yaml"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
	tmcfake "github.com/tmc-dev/tmc/sdk/client/clientset/versioned/fake"
)

const (
	testLocationWorkspace = "root:locations"
	testWorkloadWorkspace = "root:org:team-a"
	testTarget            = "cluster-1"
	testDownstreamConfig  = "downstream.kubeconfig"
	// testLocationCluster and testWorkloadCluster are the workspaces' logical-cluster
	// names (kcp.io/cluster of the SyncTarget and of upstreamDeployment): keys and locators
	// use them, not the paths.
	testLocationCluster = "1loc9xq"
	testWorkloadCluster = "2x9ab7c"
)

var (
	testKey        = workloadv1alpha1.ToSyncTargetKey(testLocationCluster, testTarget)
	deploymentsGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	configMapsGVR  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	secretsGVR     = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	testListKinds  = map[schema.GroupVersionResource]string{deploymentsGVR: "DeploymentList", configMapsGVR: "ConfigMapList", secretsGVR: "SecretList"}
	testSyncTarget = &workloadv1alpha1.SyncTarget{
		ObjectMeta: metav1.ObjectMeta{Name: testTarget, UID: "0b5c6f6e-9d7a-4c1e-8f00-1234567890ab",
			Annotations: map[string]string{"kcp.io/cluster": testLocationCluster}},
		Status: workloadv1alpha1.SyncTargetStatus{
			SyncedResources: accepted(workloadv1alpha1.DefaultResources()...),
			Workspaces:      []workloadv1alpha1.WorkspaceReference{{Path: testWorkloadWorkspace}},
		},
	}
)

// fromYAML builds an unstructured object; KEY in text is replaced by the SyncTarget key.
func fromYAML(t *testing.T, text string) *unstructured.Unstructured {
	t.Helper()
	data, err := yaml.YAMLToJSON([]byte(strings.ReplaceAll(text, "KEY", testKey)))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	return u
}

// upstreamDeployment is a Deployment as a workspace serves it, placed on the test target,
// with a spec-diff for it.
const upstreamDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  uid: 5d0e6c3a-0000-4000-8000-000000000001
  resourceVersion: "1234"
  generation: 2
  creationTimestamp: "2026-03-01T11:00:00Z"
  labels:
    app: web
    state.workload.kcp.io/KEY: Sync
  annotations:
    kcp.io/cluster: 2x9ab7c
    experimental.spec-diff.workload.kcp.io/KEY: '[{"op":"replace","path":"/replicas","value":1}]'
    team: a
  finalizers:
  - workload.kcp.io/syncer-KEY
  managedFields:
  - manager: kubectl
    operation: Apply
    apiVersion: apps/v1
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      creationTimestamp: null
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.27
        resources:
          requests:
            cpu: 100m
status:
  replicas: 1
  readyReplicas: 1
`

// previewEnv is one workload workspace, one location workspace and one physical cluster.
type previewEnv struct {
	upstreamObjs   []runtime.Object
	downstreamObjs []runtime.Object
	placements     []runtime.Object
	syncTarget     *workloadv1alpha1.SyncTarget
}

func (e previewEnv) command(t *testing.T) func(...string) (string, error) {
	st := e.syncTarget
	if st == nil {
		st = testSyncTarget
	}
	up := &fakeUpstream{
		currentWorkspace: testWorkloadWorkspace,
		tmc: map[string]tmcclient.Interface{
			"":                    tmcfake.NewSimpleClientset(e.placements...),
			testLocationWorkspace: tmcfake.NewSimpleClientset(st.DeepCopy()),
		},
		dynamic: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), testListKinds, e.upstreamObjs...),
		mapper:  testMapper(),
	}
	downstream := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), testListKinds, e.downstreamObjs...)
	newDownstream := func(kubeconfig, context string) (dynamic.Interface, error) {
		if kubeconfig != testDownstreamConfig || context != "" && context != "pcluster" {
			return nil, fmt.Errorf("unexpected downstream kubeconfig %q context %q", kubeconfig, context)
		}
		return downstream, nil
	}
	return func(args ...string) (string, error) {
		streams, out, errOut := newStreams()
		cmd := newPreviewCommand(streams, up, newDownstream)
		// ConfigFlags adds -n in the real command.
		cmd.Flags().StringVarP(&up.ns, "namespace", "n", "", "")
		err := execute(t, cmd, streams, args...)
		if errOut.Len() != 0 {
			t.Errorf("unexpected stderr: %q", errOut.String())
		}
		return out.String(), err
	}
}

// desiredFor returns what the syncer applies for obj on the test target.
func desiredFor(t *testing.T, obj *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	p, err := buildPreview(t.Context(), previewInput{
		workloadWorkspace: testWorkloadWorkspace, locationWorkspace: testLocationWorkspace,
		syncTarget: testSyncTarget, gvr: deploymentsGVR, upstreamObj: obj,
	})
	if err != nil || p.desired == nil {
		t.Fatalf("failed to build the desired object: %v", err)
	}
	return p.desired
}

// liveFrom returns desired as the downstream apiserver would serve it after applying it:
// with defaults, status and server-managed metadata.
func liveFrom(t *testing.T, desired *unstructured.Unstructured, edit func(*unstructured.Unstructured)) *unstructured.Unstructured {
	t.Helper()
	live := desired.DeepCopy()
	live.SetUID("9f1e2d3c-0000-4000-8000-00000000000f")
	live.SetResourceVersion("77")
	live.SetGeneration(4)
	live.SetCreationTimestamp(metav1.NewTime(testNow))
	live.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "tmc-workload-syncer", Operation: metav1.ManagedFieldsOperationApply}})
	ann := live.GetAnnotations()
	ann["deployment.kubernetes.io/revision"] = "1"
	live.SetAnnotations(ann)
	must(t, unstructured.SetNestedField(live.Object, int64(600), "spec", "progressDeadlineSeconds"))
	must(t, unstructured.SetNestedField(live.Object, "ClusterFirst", "spec", "template", "spec", "dnsPolicy"))
	must(t, unstructured.SetNestedField(live.Object, map[string]any{"replicas": int64(1), "readyReplicas": int64(1)}, "status"))
	containers, _, _ := unstructured.NestedSlice(live.Object, "spec", "template", "spec", "containers")
	containers[0].(map[string]any)["imagePullPolicy"] = "IfNotPresent"
	must(t, unstructured.SetNestedSlice(live.Object, containers, "spec", "template", "spec", "containers"))
	if edit != nil {
		edit(live)
	}
	return live
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestPreviewGolden(t *testing.T) {
	deployment := fromYAML(t, upstreamDeployment)
	desired := desiredFor(t, deployment)
	drifted := liveFrom(t, desired, func(live *unstructured.Unstructured) {
		must(t, unstructured.SetNestedField(live.Object, int64(5), "spec", "replicas"))
		containers, _, _ := unstructured.NestedSlice(live.Object, "spec", "template", "spec", "containers")
		containers[0].(map[string]any)["image"] = "nginx:1.25"
		must(t, unstructured.SetNestedSlice(live.Object, containers, "spec", "template", "spec", "containers"))
	})
	// Placed elsewhere, and the syncer of the test target has let go of it.
	otherTarget := fromYAML(t, strings.ReplaceAll(upstreamDeployment, "state.workload.kcp.io/KEY: Sync", "state.workload.kcp.io/otherkey: Sync"))
	otherTarget.SetFinalizers(nil)
	// Unplaced from the test target while its syncer still holds the finalizer.
	unplaced := fromYAML(t, strings.ReplaceAll(upstreamDeployment, "state.workload.kcp.io/KEY: Sync", "other: label"))
	tokenSecret := fromYAML(t, `
apiVersion: v1
kind: Secret
metadata:
  name: builder-token
  namespace: default
  labels:
    state.workload.kcp.io/KEY: Sync
type: kubernetes.io/service-account-token
`)
	args := []string{"--target", testTarget, "--location-workspace", testLocationWorkspace}
	withLive := append([]string{"--downstream-kubeconfig", testDownstreamConfig}, args...)

	tests := []struct {
		name   string
		env    previewEnv
		args   []string
		golden string
	}{
		{
			name:   "deployment with spec-diff",
			env:    previewEnv{upstreamObjs: []runtime.Object{deployment}},
			args:   append([]string{"deploy/web", "-n", "default"}, args...),
			golden: "preview-deployment.golden",
		},
		{
			name:   "drifted live object",
			env:    previewEnv{upstreamObjs: []runtime.Object{deployment}, downstreamObjs: []runtime.Object{drifted}},
			args:   append([]string{"deployments.apps", "web"}, withLive...),
			golden: "preview-diff-drifted.golden",
		},
		{
			name:   "drifted live object, full diff",
			env:    previewEnv{upstreamObjs: []runtime.Object{deployment}, downstreamObjs: []runtime.Object{drifted}},
			args:   append([]string{"deployment/web", "--full-diff", "--downstream-context", "pcluster"}, withLive...),
			golden: "preview-diff-full.golden",
		},
		{
			name:   "up to date",
			env:    previewEnv{upstreamObjs: []runtime.Object{deployment}, downstreamObjs: []runtime.Object{liveFrom(t, desired, nil)}},
			args:   append([]string{"deployment/web"}, withLive...),
			golden: "preview-up-to-date.golden",
		},
		{
			name:   "not present downstream",
			env:    previewEnv{upstreamObjs: []runtime.Object{deployment}},
			args:   append([]string{"deployment/web"}, withLive...),
			golden: "preview-not-present.golden",
		},
		{
			name:   "labelled for another target",
			env:    previewEnv{upstreamObjs: []runtime.Object{otherTarget}},
			args:   append([]string{"deployment/web"}, args...),
			golden: "preview-not-labelled.golden",
		},
		{
			name:   "removal requested",
			env:    previewEnv{upstreamObjs: []runtime.Object{unplaced}},
			args:   append([]string{"deployment/web"}, args...),
			golden: "preview-removal.golden",
		},
		{
			name:   "filtered",
			env:    previewEnv{upstreamObjs: []runtime.Object{tokenSecret}},
			args:   append([]string{"secret/builder-token"}, withLive...),
			golden: "preview-filtered.golden",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := tt.env.command(t)
			out, err := run(tt.args...)
			if err != nil {
				t.Fatalf("preview failed: %v", err)
			}
			checkGolden(t, tt.golden, out)
		})
	}
}

// TestPreviewIsWhatTheSyncerApplies checks the printed object against the transformation
// chain itself: the YAML parses back to the chain's output, hash included.
func TestPreviewIsWhatTheSyncerApplies(t *testing.T) {
	deployment := fromYAML(t, upstreamDeployment)
	run := previewEnv{upstreamObjs: []runtime.Object{deployment}}.command(t)
	out, err := run("deployment/web", "--target", testTarget, "--location-workspace", testLocationWorkspace)
	if err != nil {
		t.Fatal(err)
	}
	printed := fromYAML(t, out) // the comments are YAML comments

	locator := workloadv1alpha1.NewNamespaceLocator(testLocationCluster, testTarget, testSyncTarget.UID, testWorkloadCluster, "default")
	downstreamNamespace, err := locator.DownstreamNamespaceName()
	must(t, err)
	want, err := transform.DefaultChain().Down(t.Context(), transform.Context{
		SyncTargetKey: testKey, SyncTargetName: testTarget, UpstreamWorkspace: testWorkloadWorkspace,
		UpstreamNamespace: "default", DownstreamNamespace: downstreamNamespace, GVR: deploymentsGVR,
	}, deployment)
	must(t, err)
	must(t, transform.SetHash(want))
	if need, reason := transform.NeedsApply(want, printed); need {
		t.Errorf("printed object differs from the syncer's: %s", reason)
	}
	if need, reason := transform.NeedsApply(printed, want); need {
		t.Errorf("syncer's object differs from the printed one: %s", reason)
	}
	if replicas, _, _ := unstructured.NestedInt64(printed.Object, "spec", "replicas"); replicas != 1 {
		t.Errorf("spec.replicas = %d, want the spec-diff's 1", replicas)
	}
}

func TestPreviewLocationWorkspace(t *testing.T) {
	deployment := fromYAML(t, upstreamDeployment)
	placement := func(name, path, target string) runtime.Object {
		return &schedulingv1alpha1.Placement{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       schedulingv1alpha1.PlacementSpec{LocationWorkspace: path},
			Status: schedulingv1alpha1.PlacementStatus{
				SelectedSyncTarget: &schedulingv1alpha1.SyncTargetReference{Path: path, Name: target},
			},
		}
	}
	tests := []struct {
		name       string
		placements []runtime.Object
		wantHeader string
		wantErr    string
	}{
		{
			name:       "from the Placement that selected the target",
			placements: []runtime.Object{placement("other", "root:elsewhere", "cluster-9"), placement("default", testLocationWorkspace, testTarget)},
			wantHeader: "(workspace root:locations)",
		},
		{
			name:    "no Placement: the current workspace",
			wantErr: `SyncTarget "cluster-1" not found in workspace root:org:team-a; set --location-workspace to the workspace holding it`,
		},
		{
			name:       "Placements disagree: the current workspace",
			placements: []runtime.Object{placement("a", testLocationWorkspace, testTarget), placement("b", "root:elsewhere", testTarget)},
			wantErr:    `SyncTarget "cluster-1" not found in workspace root:org:team-a`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := previewEnv{upstreamObjs: []runtime.Object{deployment}, placements: tt.placements}.command(t)
			out, err := run("deployment/web", "--target", testTarget)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			must(t, err)
			if first, _, _ := strings.Cut(out, "\n"); !strings.Contains(first, tt.wantHeader) {
				t.Errorf("header %q does not name %q", first, tt.wantHeader)
			}
		})
	}
}

func TestPreviewErrors(t *testing.T) {
	badPatch := fromYAML(t, strings.ReplaceAll(upstreamDeployment, `'[{"op":"replace","path":"/replicas","value":1}]'`, `'{"replicas":1}'`))
	tests := []struct {
		name    string
		objs    []runtime.Object
		args    []string
		wantErr string
	}{
		{name: "no target", args: []string{"deploy/web"}, wantErr: `required flag(s) "target" not set`},
		{name: "no name", args: []string{"deploy", "--target", testTarget}, wantErr: `expected <resource>/<name>, got "deploy"`},
		{name: "cluster-scoped", args: []string{"ns/default", "--target", testTarget}, wantErr: "namespaces is cluster-scoped; the syncer syncs namespaced objects only"},
		{name: "unknown type", args: []string{"widgets/a", "--target", testTarget}, wantErr: `the server doesn't have a resource type "widgets"`},
		{
			name: "no object", args: []string{"deploy/web", "-n", "prod", "--target", testTarget, "--location-workspace", testLocationWorkspace},
			wantErr: `deployments.apps "web" not found in namespace prod of workspace root:org:team-a`,
		},
		{
			name: "context without kubeconfig", args: []string{"deploy/web", "--target", testTarget, "--downstream-context", "x"},
			wantErr: "--downstream-context needs --downstream-kubeconfig",
		},
		{
			name: "invalid spec-diff", objs: []runtime.Object{badPatch},
			args:    []string{"deploy/web", "--target", testTarget, "--location-workspace", testLocationWorkspace},
			wantErr: "the syncer cannot sync this object: failed to transform Deployment \"web\" with spec-diff: invalid annotation",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := previewEnv{upstreamObjs: tt.objs}.command(t)
			out, err := run(tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
			if out != "" {
				t.Errorf("unexpected output %q", out)
			}
		})
	}
}
