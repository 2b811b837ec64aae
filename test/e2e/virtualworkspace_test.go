package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tmc-dev/tmc/pkg/localenv"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
)

// The tmc-virtual-workspaces binary, started by localenv, serves a SyncTarget's syncer view
// over HTTPS with the environment's CA, and counts its requests and open watches.
func TestVirtualWorkspaceServer(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const location, workload = "root:org:locations", "root:org:team-a"
	env := localenv.StartForTest(t, localenv.Options{Workspaces: []string{location, workload}, Users: []string{"syncer-east"}, NoWorkspaceControllers: true})
	locCfg := env.Workspace(location).AdminConfig()
	if err := localenv.InstallCRDs(ctx, locCfg); err != nil {
		t.Fatal(err)
	}
	tmc, err := tmcclient.NewForConfig(locCfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := tmc.WorkloadV1alpha1().SyncTargets().Create(ctx, &workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{Name: "east"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	locationName := env.Workspace(location).Name
	key := workloadv1alpha1.SyncTargetKeyOf(st, locationName)
	locKube, err := kubernetes.NewForConfig(locCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := localenv.CreateObjects(ctx, locKube,
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "sync-east"}, Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"workload.kcp.io"}, Resources: []string{"synctargets"}, ResourceNames: []string{"east"}, Verbs: []string{"sync"}}}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "sync-east"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "sync-east"},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "syncer-east"}}},
	); err != nil {
		t.Fatal(err)
	}
	wsKube, err := kubernetes.NewForConfig(env.Workspace(workload).AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	placed := map[string]string{workloadv1alpha1.ClusterResourceStateLabel(key): workloadv1alpha1.ResourceStateSync}
	if _, err := wsKube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app", Labels: placed}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, labels := range map[string]map[string]string{"placed": placed, "not-placed": nil} {
		if _, err := wsKube.CoreV1().ConfigMaps("app").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "app", Labels: labels}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	vw, err := env.StartVirtualWorkspaces(ctx, localenv.VirtualWorkspacesOptions{Binary: filepath.Join(binDir, "tmc-virtual-workspaces")})
	if err != nil {
		t.Fatal(err)
	}
	view, err := kubernetes.NewForConfig(&rest.Config{
		Host:            workloadv1alpha1.SyncerVirtualWorkspaceURL(vw.URL, locationName, st.Name, st.UID) + logicalcluster.ClustersPrefix + "*",
		BearerToken:     env.Tokens.Token("syncer-east"),
		TLSClientConfig: rest.TLSClientConfig{CAData: env.PKI.CAData},
	})
	if err != nil {
		t.Fatal(err)
	}
	cms, err := view.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cms.Items) != 1 || cms.Items[0].Name != "placed" || logicalcluster.NameFrom(cms.Items[0].Annotations) != env.Workspace(workload).Name {
		t.Errorf("the syncer view lists %v, want only the placed ConfigMap with its kcp.io/cluster", cms.Items)
	}

	watchCtx, stopWatch := context.WithCancel(ctx)
	w, err := view.CoreV1().ConfigMaps("").Watch(watchCtx, metav1.ListOptions{ResourceVersion: cms.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	openWatches := func(want float64) func(ctx context.Context) (bool, string, error) {
		return func(ctx context.Context) (bool, string, error) {
			m, err := vw.Metrics(ctx)
			if err != nil {
				return false, "", err
			}
			got := m.Sum("tmc_virtualworkspace_open_watches", map[string]string{"synctarget": "east", "resource": "configmaps"})
			return got == want, fmt.Sprintf("open watches %v, want %v", got, want), nil
		}
	}
	localenv.Eventually(t, 200*time.Millisecond, time.Minute, "the watch is counted", openWatches(1))
	w.Stop()
	stopWatch()
	localenv.Eventually(t, 200*time.Millisecond, time.Minute, "the ended watch is no longer counted", openWatches(0))
	m, err := vw.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := m.Sum("tmc_virtualworkspace_requests_total", map[string]string{"verb": "list", "resource": "configmaps", "code": "200"}); n != 1 {
		t.Errorf("requests_total{verb=list,resource=configmaps,code=200} = %v, want 1\n%s", n, m.Series("tmc_virtualworkspace_requests_total"))
	}
}
