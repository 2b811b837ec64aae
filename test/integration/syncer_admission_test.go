package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	syncplugin "github.com/tmc-dev/tmc/pkg/cliplugins/workload/sync"
	"github.com/tmc-dev/tmc/pkg/cliplugins/workload/sync/syncerrbac"
	"github.com/tmc-dev/tmc/pkg/localenv"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
)

// TestSyncerAdmissionPolicy applies the manifest `kubectl tmc workload sync` writes to a real
// physical cluster and then acts as the syncer's ServiceAccount: its RBAC lets it write the
// synced types and namespaces anywhere, and the ValidatingAdmissionPolicy confines those
// writes to the namespaces carrying its ownership label.
func TestSyncerAdmissionPolicy(t *testing.T) {
	ctx := t.Context()
	env := localenv.StartForTest(t, localenv.Options{
		PhysicalClusters: []localenv.PhysicalClusterOptions{{Name: "east"}},
	})
	cluster := env.Cluster("east")
	adminConfig := cluster.AdminConfig()
	admin := kube(t, adminConfig)

	const (
		locationWS     = "root:org:locations"
		syncTargetName = "east"
		syncerNS       = "tmc-syncer-east"
		syncerSA       = "tmc-syncer-east"
	)
	// No workspace here: the manifest is keyed by the path (no SyncTargetCluster given).
	stKey := workloadv1alpha1.ToSyncTargetKey(locationWS, syncTargetName)
	objs, err := syncplugin.DownstreamManifests(syncplugin.ManifestOptions{
		SyncTargetName:                syncTargetName,
		SyncTargetUID:                 "5b8a2f3e-0000-0000-0000-000000000001",
		SyncTargetWorkspace:           logicalcluster.NewPath(locationWS),
		Image:                         "ghcr.io/tmc-dev/workload-syncer:test",
		Replicas:                      1,
		QPS:                           syncplugin.DefaultQPS,
		Burst:                         syncplugin.DefaultBurst,
		DownstreamNamespaceCleanDelay: syncplugin.DefaultDownstreamNamespaceCleanDelay,
		UpstreamKubeconfig:            []byte("apiVersion: v1\nkind: Config\n"),
		UpstreamToken:                 "not-a-real-token",
	})
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := syncplugin.Render(objs)
	if err != nil {
		t.Fatal(err)
	}
	// Apply what a user applies: the rendered YAML, every document of it.
	policyName := applyManifest(t, ctx, adminConfig, manifest)
	if policyName == "" {
		t.Fatal("the manifest holds no ValidatingAdmissionPolicy")
	}

	// Act as the syncer: a token of its ServiceAccount from the TokenRequest API.
	tr, err := admin.CoreV1().ServiceAccounts(syncerNS).CreateToken(ctx, syncerSA, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	syncerConfig := rest.AnonymousClientConfig(adminConfig)
	syncerConfig.BearerToken = tr.Status.Token
	syncer := kube(t, syncerConfig)

	owned := map[string]string{workloadv1alpha1.InternalDownstreamClusterLabel: stKey}
	for name, labels := range map[string]map[string]string{
		"kcp-owned":   owned,
		"foreign":     nil,
		"other-owner": {workloadv1alpha1.InternalDownstreamClusterLabel: "someoneElse"},
	} {
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.CoreV1().ConfigMaps("foreign").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "precious"}, Data: map[string]string{"k": "v"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Policies become active a moment after they are created, and RBAC bindings too: wait
	// for the first denial by the policy (admission runs after authorization, so it also
	// proves that the ClusterRoleBinding is in effect).
	attempt := 0
	var lastErr error
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		attempt++
		_, lastErr = syncer.CoreV1().ConfigMaps("foreign").Create(ctx, configMap(fmt.Sprintf("probe-%d", attempt)), metav1.CreateOptions{})
		return lastErr != nil && isPolicyDenial(lastErr, policyName), nil
	})
	if err != nil {
		t.Fatalf("the admission policy never denied the syncer a ConfigMap outside its namespaces (%d attempts, last result: %v)", attempt, lastErr)
	}

	t.Run("the syncer reads back its policy and binding, and they pass its SyncerConfined check", func(t *testing.T) {
		// What the syncer's confinementChecker does, on what the apiserver stored (defaults
		// included), with the ServiceAccount's own credential.
		policy, err := syncer.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, policyName, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the syncer may not get its admission policy: %v", err)
		}
		if err := syncerrbac.CheckAdmissionPolicy(policy, "system:serviceaccount:"+syncerNS+":"+syncerSA, stKey); err != nil {
			t.Errorf("the applied policy fails the syncer's check: %v", err)
		}
		binding, err := syncer.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Get(ctx, policyName, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the syncer may not get its admission policy binding: %v", err)
		}
		if err := syncerrbac.CheckAdmissionPolicyBinding(binding, policyName); err != nil {
			t.Errorf("the applied binding fails the syncer's check: %v", err)
		}
		if _, err := syncer.AdmissionregistrationV1().ValidatingAdmissionPolicies().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("the syncer may list every admission policy (err %v): it should get only its own", err)
		}
	})

	t.Run("ConfigMap in an owned namespace is allowed", func(t *testing.T) {
		cm, err := syncer.CoreV1().ConfigMaps("kcp-owned").Create(ctx, configMap("synced"), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("the syncer may not create a ConfigMap in its own namespace: %v", err)
		}
		cm.Data = map[string]string{"changed": "yes"}
		if _, err := syncer.CoreV1().ConfigMaps("kcp-owned").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Errorf("update in an owned namespace: %v", err)
		}
		if err := syncer.CoreV1().ConfigMaps("kcp-owned").Delete(ctx, "synced", metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete in an owned namespace: %v", err)
		}
	})

	t.Run("ConfigMap outside its namespaces is denied by the policy", func(t *testing.T) {
		for _, ns := range []string{"foreign", "other-owner"} {
			_, err := syncer.CoreV1().ConfigMaps(ns).Create(ctx, configMap("intruder"), metav1.CreateOptions{})
			expectPolicyDenial(t, "create ConfigMap in "+ns, err, policyName)
		}
		cm, err := syncer.CoreV1().ConfigMaps("foreign").Get(ctx, "precious", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("reading stays allowed: %v", err)
		}
		cm.Data = map[string]string{"k": "overwritten"}
		_, err = syncer.CoreV1().ConfigMaps("foreign").Update(ctx, cm, metav1.UpdateOptions{})
		expectPolicyDenial(t, "update ConfigMap in foreign", err, policyName)
		err = syncer.CoreV1().ConfigMaps("foreign").Delete(ctx, "precious", metav1.DeleteOptions{})
		expectPolicyDenial(t, "delete ConfigMap in foreign", err, policyName)
	})

	t.Run("namespaces: only labelled ones may be created and deleted", func(t *testing.T) {
		if _, err := syncer.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: "kcp-new", Labels: owned},
		}, metav1.CreateOptions{}); err != nil {
			t.Errorf("create a labelled namespace: %v", err)
		}
		_, err := syncer.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: "unlabelled"},
		}, metav1.CreateOptions{})
		expectPolicyDenial(t, "create an unlabelled namespace", err, policyName)
		_, err = syncer.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: "mislabelled", Labels: map[string]string{workloadv1alpha1.InternalDownstreamClusterLabel: "someoneElse"}},
		}, metav1.CreateOptions{})
		expectPolicyDenial(t, "create a namespace labelled for another SyncTarget", err, policyName)

		err = syncer.CoreV1().Namespaces().Delete(ctx, "foreign", metav1.DeleteOptions{})
		expectPolicyDenial(t, "delete an unlabelled namespace", err, policyName)
		err = syncer.CoreV1().Namespaces().Delete(ctx, syncerNS, metav1.DeleteOptions{})
		expectPolicyDenial(t, "delete its own (unlabelled) namespace", err, policyName)
		if err := syncer.CoreV1().Namespaces().Delete(ctx, "kcp-new", metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete a labelled namespace: %v", err)
		}
	})

	t.Run("namespaces: unlabelled only when released with orphaned copies", func(t *testing.T) {
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: "kcp-orphans", Labels: owned},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		patch := func(body string) error {
			_, err := syncer.CoreV1().Namespaces().Patch(ctx, "kcp-orphans", types.MergePatchType, []byte(body), metav1.PatchOptions{})
			return err
		}
		unlabel := fmt.Sprintf(`{"metadata":{"labels":{%q:null}}}`, workloadv1alpha1.InternalDownstreamClusterLabel)
		expectPolicyDenial(t, "unlabel an owned namespace without orphans", patch(unlabel), policyName)
		relabel := fmt.Sprintf(`{"metadata":{"labels":{%q:"someoneElse"}}}`, workloadv1alpha1.InternalDownstreamClusterLabel)
		expectPolicyDenial(t, "label an owned namespace for another SyncTarget", patch(relabel), policyName)
		if err := patch(fmt.Sprintf(`{"metadata":{"annotations":{%q:"2026-01-01T00:00:00Z"}}}`, workloadv1alpha1.DownstreamOrphansAnnotation)); err != nil {
			t.Fatalf("record orphaned copies on an owned namespace: %v", err)
		}
		expectPolicyDenial(t, "label a namespace with orphans for another SyncTarget", patch(relabel), policyName)
		if err := patch(unlabel); err != nil {
			t.Fatalf("release an owned namespace holding orphaned copies: %v", err)
		}
		err := syncer.CoreV1().Namespaces().Delete(ctx, "kcp-orphans", metav1.DeleteOptions{})
		expectPolicyDenial(t, "delete a released namespace", err, policyName)
	})

	t.Run("what the syncer needs besides keeps working", func(t *testing.T) {
		// Leader election: a Lease in its own namespace. Its RoleBinding may take a moment
		// longer than the ClusterRoleBinding to be in effect.
		var leaseErr error
		_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			_, leaseErr = syncer.CoordinationV1().Leases(syncerNS).Create(ctx, &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: "workload-syncer-east"},
				Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To("test")},
			}, metav1.CreateOptions{})
			return leaseErr == nil || !apierrors.IsForbidden(leaseErr) || isPolicyDenial(leaseErr, policyName), nil
		})
		if leaseErr != nil {
			t.Errorf("create the leader-election Lease: %v", leaseErr)
		}
		// Permission checks at discovery.
		review, err := syncer.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: "create", Group: "apps", Resource: "deployments",
			}},
		}, metav1.CreateOptions{})
		if err != nil || !review.Status.Allowed {
			t.Errorf("SelfSubjectAccessReview for deployments: %+v, %v", review, err)
		}
		// Capacity: nodes.
		if _, err := syncer.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("list nodes: %v", err)
		}
	})

	// Nothing the syncer was denied happened.
	cm, err := admin.CoreV1().ConfigMaps("foreign").Get(ctx, "precious", metav1.GetOptions{})
	if err != nil || cm.Data["k"] != "v" {
		t.Errorf("the foreign ConfigMap was changed: %+v, %v", cm, err)
	}
}

func configMap(name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"k": "v"}}
}

// isPolicyDenial reports whether err is a denial by the ValidatingAdmissionPolicy policy.
func isPolicyDenial(err error, policy string) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	return apierrors.IsForbidden(err) &&
		strings.Contains(status.Status().Message, "ValidatingAdmissionPolicy '"+policy+"'")
}

func expectPolicyDenial(t *testing.T, what string, err error, policy string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: allowed, want denied by the admission policy", what)
	case !isPolicyDenial(err, policy):
		t.Errorf("%s: %v, want a denial by ValidatingAdmissionPolicy %s", what, err, policy)
	}
}

// applyManifest server-side applies every document of a multi-document YAML manifest and
// returns the name of its ValidatingAdmissionPolicy.
func applyManifest(t *testing.T, ctx context.Context, cfg *rest.Config, manifest []byte) string {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var policy string
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := decoder.Decode(&obj.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		gvk := obj.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("no resource for %s: %v", gvk, err)
		}
		var client dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
		if ns := obj.GetNamespace(); ns != "" {
			client = dyn.Resource(mapping.Resource).Namespace(ns)
		}
		if _, err := client.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: "kubectl", Force: true}); err != nil {
			t.Fatalf("failed to apply %s %s: %v", gvk.Kind, obj.GetName(), err)
		}
		if gvk.Kind == "ValidatingAdmissionPolicy" {
			policy = obj.GetName()
		}
	}
	return policy
}

// TestSyncCommandUpstreamCredentials runs `kubectl tmc workload sync` against a real
// location workspace behind the front proxy and then uses the credential it wrote, as the
// syncer does: it may read its own SyncTarget (also by list and watch with a name field
// selector) and update its status, and nothing else.
func TestSyncCommandUpstreamCredentials(t *testing.T) {
	ctx := t.Context()
	const locationWS = "root:org:locations"
	env := localenv.StartForTest(t, localenv.Options{Workspaces: []string{locationWS}})
	loc := env.Workspace(locationWS).AdminConfig()
	if err := localenv.InstallCRDs(ctx, loc); err != nil {
		t.Fatal(err)
	}
	locTMC, err := tmcclient.NewForConfig(loc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := locTMC.WorkloadV1alpha1().SyncTargets().Create(ctx, &workloadv1alpha1.SyncTarget{
		ObjectMeta: metav1.ObjectMeta{Name: "west"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := localenv.WriteKubeconfig(loc, "location", filepath.Join(t.TempDir(), "location.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "east.yaml")
	run := func() string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		cmd := syncplugin.NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr})
		cmd.SetArgs([]string{"east", "--kubeconfig", kubeconfig, "--syncer-image", "img:test", "--labels", "region=eu", "-o", out})
		if err := cmd.ExecuteContext(ctx); err != nil {
			t.Fatalf("workload sync: %v\n%s", err, stderr.String())
		}
		return stderr.String()
	}
	run()
	if again := run(); strings.Contains(again, " created") || strings.Contains(again, " configured") {
		t.Errorf("the second run changed upstream objects:\n%s", again)
	}
	st, err := locTMC.WorkloadV1alpha1().SyncTargets().Get(ctx, "east", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Labels["region"] != "eu" || st.Labels[workloadv1alpha1.InternalSyncTargetKeyLabel] != workloadv1alpha1.ToSyncTargetKey(env.Workspace(locationWS).Name, "east") {
		t.Errorf("SyncTarget labels %v", st.Labels)
	}

	// The syncer's view: the kubeconfig and token of the manifest's Secret.
	manifest, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	secret := findObject(t, manifest, "Secret")
	data, _, _ := unstructured.NestedStringMap(secret.Object, "data")
	decode := func(key string) []byte {
		b, err := base64.StdEncoding.DecodeString(data[key])
		if err != nil || len(b) == 0 {
			t.Fatalf("secret key %s: %v", key, err)
		}
		return b
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, decode("token"), 0o600); err != nil {
		t.Fatal(err)
	}
	upstreamKC, err := clientcmd.Load(decode("kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range upstreamKC.AuthInfos {
		auth.TokenFile = tokenFile // mounted at /etc/tmc in the pod
	}
	syncerConfig, err := clientcmd.NewDefaultClientConfig(*upstreamKC, nil).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(syncerConfig.Host, "/clusters/") {
		t.Errorf("upstream server %q is not the front proxy's root", syncerConfig.Host)
	}
	if syncerConfig.Host, err = logicalcluster.WorkspaceURL(syncerConfig.Host, logicalcluster.NewPath(locationWS)); err != nil {
		t.Fatal(err)
	}
	syncerTMC, err := tmcclient.NewForConfig(syncerConfig)
	if err != nil {
		t.Fatal(err)
	}
	targets := syncerTMC.WorkloadV1alpha1().SyncTargets()

	// RBAC bindings take a moment to be in effect.
	var own *workloadv1alpha1.SyncTarget
	poll(t, ctx, 30*time.Second, "the syncer's credential cannot read its SyncTarget", func(ctx context.Context) (bool, error) {
		own, err = targets.Get(ctx, "east", metav1.GetOptions{})
		return err == nil, nil
	})
	if own.UID != st.UID {
		t.Errorf("UID %s, want %s", own.UID, st.UID)
	}
	byName := metav1.ListOptions{FieldSelector: "metadata.name=east"}
	if _, err := targets.List(ctx, byName); err != nil {
		t.Errorf("list own SyncTarget by name: %v", err)
	}
	w, err := targets.Watch(ctx, byName)
	if err != nil {
		t.Errorf("watch own SyncTarget by name: %v", err)
	} else {
		w.Stop()
	}
	now := metav1.Now()
	own.Status.LastSyncerHeartbeatTime = &now
	if _, err := targets.UpdateStatus(ctx, own, metav1.UpdateOptions{}); err != nil {
		t.Errorf("update own SyncTarget status: %v", err)
	}
	if _, err := targets.Get(ctx, "west", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("get another SyncTarget: %v, want forbidden", err)
	}
	if _, err := targets.List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list all SyncTargets: %v, want forbidden", err)
	}
	own.Spec.Unschedulable = true
	if _, err := targets.Update(ctx, own, metav1.UpdateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("update own SyncTarget spec: %v, want forbidden", err)
	}
	// The virtual-workspace server authorizes the syncer by the verb sync on its SyncTarget.
	syncerKube, err := kubernetes.NewForConfig(syncerConfig)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"east": true, "west": false} {
		review, err := syncerKube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: syncerrbac.SyncVerb, Group: workloadv1alpha1.SchemeGroupVersion.Group, Resource: "synctargets", Name: name,
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if review.Status.Allowed != want {
			t.Errorf("sync on SyncTarget %s allowed = %v, want %v", name, review.Status.Allowed, want)
		}
	}
}

// findObject returns the first object of kind in a rendered manifest.
func findObject(t *testing.T, manifest []byte, kind string) *unstructured.Unstructured {
	t.Helper()
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := decoder.Decode(&obj.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if obj.GetKind() == kind {
			return obj
		}
	}
	t.Fatalf("the manifest holds no %s", kind)
	return nil
}
