package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
)

const (
	locationWS  = "root:org:locations"
	wsA         = "root:org:team-a"
	wsB         = "root:org:team-b"
	clusterName = "east"
	syncerUser  = "syncer-east"
)

// syncerEnv is a real environment (a location workspace, two workload workspaces and one
// kwok physical cluster) with a SyncTarget placed on both workload workspaces and RBAC for
// the syncer's user on every side.
type syncerEnv struct {
	env     *localenv.Environment
	cluster *localenv.PhysicalCluster
	st      *workloadv1alpha1.SyncTarget
	stKey   string
}

func setupSyncerEnv(t *testing.T) *syncerEnv {
	t.Helper()
	ctx := t.Context()
	env := localenv.StartForTest(t, localenv.Options{
		Workspaces:       []string{locationWS, wsA, wsB},
		PhysicalClusters: []localenv.PhysicalClusterOptions{{Name: clusterName, Nodes: 2}},
		Users:            []string{syncerUser},
	})
	se := &syncerEnv{env: env, cluster: env.Cluster(clusterName)}
	loc := env.Workspace(locationWS).AdminConfig()
	if err := localenv.InstallCRDs(ctx, loc); err != nil {
		t.Fatal(err)
	}
	tc := tmcClient(t, loc)
	st, err := tc.WorkloadV1alpha1().SyncTargets().Create(ctx, &workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{Name: clusterName}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st.Status.Workspaces = []workloadv1alpha1.WorkspaceReference{{Path: wsA}, {Path: wsB}}
	if st, err = tc.WorkloadV1alpha1().SyncTargets().UpdateStatus(ctx, st, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	se.st = st
	se.stKey = workloadv1alpha1.ToSyncTargetKey(locationWS, clusterName)

	// Upstream: the SyncTarget in the location workspace; synced types in the workload
	// workspaces.
	grant(t, kubeClient(t, loc), "tmc-syncer", []rbacv1.PolicyRule{
		{APIGroups: []string{"workload.kcp.io"}, Resources: []string{"synctargets"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"workload.kcp.io"}, Resources: []string{"synctargets/status"}, Verbs: []string{"get", "update", "patch"}},
	})
	for _, ws := range []string{wsA, wsB} {
		grant(t, kubeClient(t, env.Workspace(ws).AdminConfig()), "tmc-syncer", []rbacv1.PolicyRule{
			{APIGroups: []string{"", "apps", "batch", "networking.k8s.io"}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch", "update", "patch"}},
			{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
		})
	}
	// Downstream: namespaces and the synced types, nodes for capacity.
	grant(t, kubeClient(t, se.cluster.AdminConfig()), "tmc-syncer", syncerDownstreamRules())
	return se
}

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

// grant binds a ClusterRole with rules to the syncer's user.
func grant(t *testing.T, c kubernetes.Interface, name string, rules []rbacv1.PolicyRule) {
	t.Helper()
	ctx := t.Context()
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
	if _, err := c.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: syncerUser}},
	}
	if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// syncerProcess is a running workload-syncer binary.
type syncerProcess struct {
	*localenv.Process
	MetricsURL string
	HealthURL  string
}

// syncerOptions tunes how the syncer is started.
type syncerOptions struct {
	// upstream and downstream override the configs the syncer is given (e.g. through a
	// fault proxy).
	upstream, downstream *rest.Config
	args                 []string
}

// startSyncer runs the workload-syncer binary as the syncer user and waits until it is
// ready.
func (se *syncerEnv) startSyncer(t *testing.T, opts syncerOptions) *syncerProcess {
	t.Helper()
	up := opts.upstream
	if up == nil {
		up = se.env.UpstreamConfig(syncerUser)
	}
	down := opts.downstream
	if down == nil {
		down = se.cluster.Config(syncerUser)
	}
	dir := filepath.Join(se.env.Dir, "syncer")
	upKC, err := localenv.WriteKubeconfig(up, "upstream", filepath.Join(dir, "upstream.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	downKC, err := localenv.WriteKubeconfig(down, "downstream", filepath.Join(dir, "downstream.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	metricsPort, _ := localenv.FreePort()
	healthPort, _ := localenv.FreePort()
	args := []string{
		"--upstream-kubeconfig=" + upKC,
		"--downstream-kubeconfig=" + downKC,
		"--sync-target-workspace=" + locationWS,
		"--sync-target-name=" + clusterName,
		"--sync-target-uid=" + string(se.st.UID),
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", healthPort),
		"--heartbeat-interval=2s",
		"--downstream-namespace-clean-delay=3s",
		"--qps=-1",
		"-v=2",
	}
	args = append(args, opts.args...)
	p := localenv.NewProcess("workload-syncer", filepath.Join(binDir, "workload-syncer"), args, se.env.LogDir)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	se.env.Track(p)
	sp := &syncerProcess{
		Process:    p,
		MetricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort),
		HealthURL:  fmt.Sprintf("http://127.0.0.1:%d", healthPort),
	}
	sp.waitReady(t)
	return sp
}

func (sp *syncerProcess) waitReady(t *testing.T) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		if !sp.Running() {
			return false, fmt.Errorf("the syncer exited: %w", sp.ExitError())
		}
		code, _ := httpGet(ctx, sp.HealthURL+"/readyz")
		return code == http.StatusOK, nil
	})
	if err != nil {
		_, body := httpGet(t.Context(), sp.HealthURL+"/readyz?verbose")
		t.Fatalf("the syncer did not become ready: %v\n%s", err, body)
	}
}

// restart stops the syncer (SIGTERM) and starts it again with the same arguments.
func (sp *syncerProcess) restart(t *testing.T) {
	t.Helper()
	if err := sp.Restart(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	sp.waitReady(t)
}

func httpGet(ctx context.Context, url string) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue sums the samples of metric whose labels contain every given pair.
func metricValue(t *testing.T, url, metric string, labels map[string]string) float64 {
	t.Helper()
	code, body := httpGet(t.Context(), url)
	if code != http.StatusOK {
		t.Fatalf("scraping %s: %d %s", url, code, body)
	}
	return sumSamples(body, metric, labels)
}

// sumSamples parses the text exposition format loosely: lines "name{labels} value".
func sumSamples(body, metric string, labels map[string]string) float64 {
	var total float64
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, metric) {
			continue
		}
		rest := line[len(metric):]
		if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		lbls, value := "", rest
		if rest[0] == '{' {
			end := strings.LastIndex(rest, "}")
			lbls, value = rest[1:end], rest[end+1:]
		}
		ok := true
		for k, v := range labels {
			if !strings.Contains(lbls, fmt.Sprintf("%s=%q", k, v)) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		var f float64
		if _, err := fmt.Sscan(strings.TrimSpace(value), &f); err == nil {
			total += f
		}
	}
	return total
}

func (se *syncerEnv) downstreamNamespace(t *testing.T, ws, ns string) string {
	t.Helper()
	name, err := workloadv1alpha1.NewNamespaceLocator(locationWS, clusterName, se.st.UID, ws, ns).DownstreamNamespaceName()
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// syncLabels returns the labels that select an object for this SyncTarget.
func (se *syncerEnv) syncLabels() map[string]string {
	return map[string]string{workloadv1alpha1.ClusterResourceStateLabel(se.stKey): workloadv1alpha1.ResourceStateSync}
}

func (se *syncerEnv) upstreamKube(t *testing.T, ws string) kubernetes.Interface {
	return kubeClient(t, se.env.Workspace(ws).AdminConfig())
}

func (se *syncerEnv) downstreamKube(t *testing.T) kubernetes.Interface {
	return kubeClient(t, se.cluster.AdminConfig())
}

func (se *syncerEnv) createUpstreamNamespace(t *testing.T, ws, ns string) {
	t.Helper()
	if _, err := se.upstreamKube(t, ws).CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func kubeClient(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tmcClient(t *testing.T, cfg *rest.Config) tmcclient.Interface {
	t.Helper()
	c, err := tmcclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// eventually polls cond every 200ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, timeout, true, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
