package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// Issue 14, acceptance 3, 4 and 5: a user reaches the logs, a shell and a port of their
// workload's pod with `kubectl tmc`, through the virtual-workspace server and the tunnel the
// syncer holds, with only their workspace kubeconfig; a user without pods/log is refused,
// another workspace's pod is out of reach; after a 30 s partition of the syncer from the
// server the tunnel comes back by itself.
func TestPodsThroughTheControlPlane(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ve := setupViewEnv(t, viewEnvOptions{tweak: func(o *localenv.Options) {
		o.Users = append(o.Users, "dev-a", "dev-nolog")
	}})
	partition := ve.partitionableServer(t, 0)
	ve.startController(t)
	syncer := ve.startSyncer(t, clusterName)
	ve.bindWorkspaces(t, wsA, wsB)
	ve.placeNamespace(t, wsA, "demo", clusterName)
	ve.placeNamespace(t, wsB, "demo", clusterName)
	upA, upB := kubeClient(t, ve.env.Workspace(wsA).AdminConfig()), kubeClient(t, ve.env.Workspace(wsB).AdminConfig())
	if _, err := upA.AppsV1().Deployments("demo").Create(ctx, deployment("hello", 1, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := upB.AppsV1().Deployments("demo").Create(ctx, deployment("other", 1, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	grantPodAccess(t, ve.env.Workspace(wsA), "dev-a", true)
	grantPodAccess(t, ve.env.Workspace(wsA), "dev-nolog", false)
	podA := upsyncedPod(t, ve, wsA, "demo")
	podB := upsyncedPod(t, ve, wsB, "demo")
	eventually(t, 60*time.Second, "the syncer's tunnel connected", func(ctx context.Context) (bool, error) {
		return metricValue(t, syncer.MetricsURL, "syncer_tunnel_connected", nil) == 1, nil
	})

	pods := ve.env.Cluster(clusterName).Pods
	devA := podUser{t: t, kubeconfig: workspaceKubeconfig(t, ve.env.Workspace(wsA), "dev-a"), vwURL: ve.servers[0].URL}
	t.Run("logs -f streams the pod's log, new lines included", func(t *testing.T) {
		followCtx, stop := context.WithTimeout(ctx, 90*time.Second)
		defer stop()
		lines := devA.start(followCtx, "logs", "deploy/hello", "-n", "demo", "-f")
		waitForLine(t, lines, "tmc: serving")
		marker := fmt.Sprintf("tmc: a line written after the follow began (%d)", time.Now().UnixNano())
		if err := pods.AppendPodLog(marker); err != nil {
			t.Fatal(err)
		}
		waitForLine(t, lines, marker)
	})
	t.Run("exec runs the command in the pod", func(t *testing.T) {
		out, err := devA.run(ctx, "exec", podA, "-n", "demo", "--", "echo", "ok")
		if err != nil || strings.TrimSpace(out) != "ok" {
			t.Fatalf("kubectl tmc exec -- echo ok: %v\n%s", err, out)
		}
	})
	t.Run("port-forward forwards a local port to the pod", func(t *testing.T) {
		pfCtx, stop := context.WithTimeout(ctx, 90*time.Second)
		defer stop()
		lines := devA.start(pfCtx, "port-forward", "pod/"+podA, "-n", "demo", ":8080")
		line := waitForLine(t, lines, "Forwarding from 127.0.0.1:")
		port := regexp.MustCompile(`127\.0\.0\.1:(\d+)`).FindStringSubmatch(line)[1]
		body := httpBody(t, pfCtx, "http://127.0.0.1:"+port+"/through-the-tunnel")
		if !strings.HasPrefix(body, localenv.EchoServerGreeting) || !strings.Contains(body, "/through-the-tunnel") {
			t.Fatalf("the forwarded port answered %q, want the pod's echo server", body)
		}
	})
	t.Run("refused without pods/log, and another workspace's pod is out of reach", func(t *testing.T) {
		noLog := podUser{t: t, kubeconfig: workspaceKubeconfig(t, ve.env.Workspace(wsA), "dev-nolog"), vwURL: ve.servers[0].URL}
		if out, err := noLog.run(ctx, "logs", podA, "-n", "demo"); err == nil || !strings.Contains(strings.ToLower(out), "forbidden") {
			t.Errorf("logs without get pods/log: %v\n%s", err, out)
		}
		if out, err := devA.run(ctx, "logs", podB, "-n", "demo"); err == nil || !strings.Contains(out, "not found") {
			t.Errorf("team-b's pod %s asked for in team-a: %v\n%s", podB, err, out)
		}
	})
	t.Run("the syncer's own credential execs only in its namespaces", func(t *testing.T) {
		down := kubeClient(t, ve.env.Cluster(clusterName).AdminConfig())
		if _, err := down.CoreV1().Pods(metav1.NamespaceDefault).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "not-tmcs"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		syncerCfg := ve.env.Cluster(clusterName).Config(ve.targets[clusterName].user)
		if out, err := execAs(ctx, syncerCfg, ve.downstreamNamespace(t, clusterName, wsA, "demo"), podA, "echo", "ok"); err != nil || strings.TrimSpace(out) != "ok" {
			t.Errorf("the syncer's exec in its own namespace: %v (%q)", err, out)
		}
		_, err := execAs(ctx, syncerCfg, metav1.NamespaceDefault, "not-tmcs", "echo", "ok")
		if err == nil || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy") {
			t.Errorf("the syncer's exec into a pod outside its namespaces: %v, want refused by its admission policy", err)
		}
	})
	t.Run("the tunnel comes back after a 30s partition", func(t *testing.T) {
		partition.Partition()
		parted := time.Now()
		eventually(t, 60*time.Second, "the syncer to notice the dead tunnel", func(ctx context.Context) (bool, error) {
			return metricValue(t, syncer.MetricsURL, "syncer_tunnel_connected", nil) == 0, nil
		})
		t.Logf("tunnel loss noticed %s after the partition began", time.Since(parted).Round(100*time.Millisecond))
		time.Sleep(time.Until(parted.Add(30 * time.Second)))
		partition.Heal()
		healed := time.Now()
		eventually(t, 90*time.Second, "logs through the tunnel again", func(ctx context.Context) (bool, error) {
			out, err := devA.run(ctx, "logs", podA, "-n", "demo", "--tail=1")
			return err == nil && strings.Contains(out, "tmc:"), nil
		})
		t.Logf("logs worked again %s after the partition healed", time.Since(healed).Round(100*time.Millisecond))
	})
}

// upsyncedPod waits for the one Pod upsynced into ws/ns, Running, and returns its name.
func upsyncedPod(t *testing.T, ve *viewEnv, ws, ns string) string {
	t.Helper()
	up := kubeClient(t, ve.env.Workspace(ws).AdminConfig())
	selector := workloadv1alpha1.ClusterResourceStateLabel(ve.targets[clusterName].key) + "=" + workloadv1alpha1.ResourceStateUpsync
	var name string
	eventually(t, 120*time.Second, "a Running pod upsynced into "+ws+"/"+ns, func(ctx context.Context) (bool, error) {
		list, err := up.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil || len(list.Items) != 1 {
			return false, nil
		}
		name = list.Items[0].Name
		return list.Items[0].Status.Phase == corev1.PodRunning, nil
	})
	return name
}

// grantPodAccess lets user read pods and Deployments in ws (what kubectl logs deploy/x
// reads first) and, with subresources, read logs, exec and port-forward.
func grantPodAccess(t *testing.T, ws *localenv.Workspace, user string, subresources bool) {
	t.Helper()
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments", "replicasets"}, Verbs: []string{"get", "list", "watch"}},
	}
	if subresources {
		rules = append(rules,
			rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get"}},
			rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/exec", "pods/portforward", "pods/attach"}, Verbs: []string{"get", "create"}})
	}
	if err := localenv.CreateObjects(t.Context(), kubeClient(t, ws.AdminConfig()),
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "pods-" + user}, Rules: rules},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "pods-" + user},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "pods-" + user},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}},
	); err != nil {
		t.Fatal(err)
	}
}

// workspaceKubeconfig writes a kubeconfig of user for ws: the only credential the user has.
func workspaceKubeconfig(t *testing.T, ws *localenv.Workspace, user string) string {
	t.Helper()
	path, err := localenv.WriteKubeconfig(ws.Config(user), user, filepath.Join(t.TempDir(), user+".kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// podUser runs `kubectl tmc` as a workspace user.
type podUser struct {
	t          *testing.T
	kubeconfig string
	vwURL      string
}

// args puts the user's flags right after the command's name, before a "--" that ends them.
func (u podUser) args(args []string) []string {
	out := []string{args[0], "--kubeconfig=" + u.kubeconfig, "--virtual-workspace-url=" + u.vwURL}
	return append(out, args[1:]...)
}

// run runs the plugin to its end and returns its combined output.
func (u podUser) run(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "kubectl-tmc"), u.args(args)...).CombinedOutput()
	return string(out), err
}

// start runs the plugin until ctx ends and returns its output lines.
func (u podUser) start(ctx context.Context, args ...string) <-chan string {
	u.t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "kubectl-tmc"), u.args(args)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		u.t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		u.t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		scanner := bufio.NewScanner(out)
		for scanner.Scan() {
			lines <- scanner.Text()
		}
	}()
	u.t.Cleanup(func() {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
		_ = cmd.Wait()
	})
	return lines
}

// waitForLine reads lines until one contains want and returns it.
func waitForLine(t *testing.T, lines <-chan string, want string) string {
	t.Helper()
	timeout := time.After(60 * time.Second)
	var seen []string
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("the command ended before printing %q; it printed:\n%s", want, strings.Join(seen, "\n"))
			}
			seen = append(seen, line)
			if strings.Contains(line, want) {
				return line
			}
		case <-timeout:
			t.Fatalf("no line with %q within 60s; printed:\n%s", want, strings.Join(seen, "\n"))
		}
	}
}

// execAs runs command in pod ns/name with cfg's credential, straight on that cluster.
func execAs(ctx context.Context, cfg *rest.Config, ns, name string, command ...string) (string, error) {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	req := client.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(name).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Command: command, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	executor, err := remotecommand.NewSPDYExecutor(cfg, http.MethodPost, req.URL())
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var stdout, stderr strings.Builder
	err = executor.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	return stdout.String(), err
}

func httpBody(t *testing.T, ctx context.Context, url string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}
