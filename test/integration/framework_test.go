package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
)

const (
	wsA = "root:org:team-a"
	wsB = "root:org:team-b"
)

func kube(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func poll(t *testing.T, _ context.Context, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	localenv.Eventually(t, 100*time.Millisecond, timeout, what, func(ctx context.Context) (bool, string, error) {
		ok, err := cond(ctx)
		return ok, "", err
	})
}

func TestPhysicalClusterRunsDeployments(t *testing.T) {
	ctx := t.Context()
	env := localenv.StartForTest(t, localenv.Options{
		PhysicalClusters: []localenv.PhysicalClusterOptions{{Name: "east", Nodes: 2}},
	})
	client := kube(t, env.Cluster("east").AdminConfig())

	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "app"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
			},
		},
	}
	if _, err := client.AppsV1().Deployments("app").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, 60*time.Second, "deployment did not become available", func(ctx context.Context) (bool, error) {
		d, err := client.AppsV1().Deployments("app").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue && d.Status.ReadyReplicas == 3 {
				return true, nil
			}
		}
		return false, nil
	})
	pods, err := client.CoreV1().Pods("app").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 3 {
		t.Fatalf("got %d pods, want 3", len(pods.Items))
	}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName == "" || !strings.HasPrefix(p.Spec.NodeName, "kwok-east-") {
			t.Errorf("pod %s: phase %s on node %q, want Running on a kwok node", p.Name, p.Status.Phase, p.Spec.NodeName)
		}
	}

	// Garbage collection: deleting the Deployment removes its ReplicaSet and pods.
	if err := client.AppsV1().Deployments("app").Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, 60*time.Second, "replicasets were not garbage collected", func(ctx context.Context) (bool, error) {
		rs, err := client.AppsV1().ReplicaSets("app").List(ctx, metav1.ListOptions{})
		return err == nil && len(rs.Items) == 0, nil
	})

	if err := client.CoreV1().Namespaces().Delete(ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, 60*time.Second, "namespace deletion did not finish", func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Namespaces().Get(ctx, "app", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

func TestWorkspacesAreIsolatedBehindTheFrontProxy(t *testing.T) {
	ctx := t.Context()
	env := localenv.StartForTest(t, localenv.Options{Workspaces: []string{wsA, wsB}})

	for _, ws := range []string{wsA, wsB} {
		c := kube(t, env.Workspace(ws).AdminConfig())
		if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shared"}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("%s: %v", ws, err)
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "config", Namespace: "shared"}, Data: map[string]string{"workspace": ws}}
		if _, err := c.CoreV1().ConfigMaps("shared").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatalf("%s: %v", ws, err)
		}
	}
	uids := map[string]bool{}
	for _, ws := range []string{wsA, wsB} {
		cm, err := kube(t, env.Workspace(ws).AdminConfig()).CoreV1().ConfigMaps("shared").Get(ctx, "config", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cm.Data["workspace"] != ws {
			t.Errorf("%s: read the object of %s", ws, cm.Data["workspace"])
		}
		uids[string(cm.UID)] = true
	}
	if len(uids) != 2 {
		t.Errorf("the two workspaces returned the same object")
	}

	// A change in one workspace is invisible in the other.
	if err := kube(t, env.Workspace(wsA).AdminConfig()).CoreV1().ConfigMaps("shared").Delete(ctx, "config", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube(t, env.Workspace(wsB).AdminConfig()).CoreV1().ConfigMaps("shared").Get(ctx, "config", metav1.GetOptions{}); err != nil {
		t.Errorf("deleting in %s affected %s: %v", wsA, wsB, err)
	}

	// Namespace deletion finishes in a workspace (its namespace controller runs), and does
	// not touch the other workspace.
	if err := kube(t, env.Workspace(wsA).AdminConfig()).CoreV1().Namespaces().Delete(ctx, "shared", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, 60*time.Second, "namespace deletion did not finish in "+wsA, func(ctx context.Context) (bool, error) {
		_, err := kube(t, env.Workspace(wsA).AdminConfig()).CoreV1().Namespaces().Get(ctx, "shared", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if _, err := kube(t, env.Workspace(wsB).AdminConfig()).CoreV1().Namespaces().Get(ctx, "shared", metav1.GetOptions{}); err != nil {
		t.Errorf("deleting a namespace in %s affected %s: %v", wsA, wsB, err)
	}

	// An unknown workspace is a 404 with a Kubernetes Status.
	_, err := kube(t, env.FrontProxy.Config(mustPath(t, "root:org:nope"), localenv.AdminUser)).CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("unknown workspace: got %v, want NotFound", err)
	}

	// Credentials are checked: a wrong token is rejected in every workspace.
	bad := env.Workspace(wsA).AdminConfig()
	bad.BearerToken = "wrong"
	if _, err := kube(t, bad).CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("wrong token: got %v, want Unauthorized", err)
	}
}

func TestSyncTargetThroughTypedClient(t *testing.T) {
	ctx := t.Context()
	env := localenv.StartForTest(t, localenv.Options{Workspaces: []string{"root:org:locations"}, NoWorkspaceControllers: true})
	cfg := env.Workspace("root:org:locations").AdminConfig()
	if err := localenv.InstallCRDs(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	client, err := tmcclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := client.WorkloadV1alpha1().SyncTargets().Create(ctx, &workloadv1alpha1.SyncTarget{
		ObjectMeta: metav1.ObjectMeta{Name: "east"},
		Spec:       workloadv1alpha1.SyncTargetSpec{Resources: []workloadv1alpha1.ResourceToSync{{Group: "apps", Resource: "deployments"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	st.Status.LastSyncerHeartbeatTime = &now
	st.Status.SyncedResources = []workloadv1alpha1.SyncedResource{{
		ResourceToSync: workloadv1alpha1.ResourceToSync{Group: "apps", Resource: "deployments"},
		Versions:       []string{"v1"},
		State:          workloadv1alpha1.ResourceStateAccepted,
	}}
	st.Status.AcceptedResourceCount = 1
	st.Status.Conditions = []metav1.Condition{{Type: workloadv1alpha1.SyncTargetReady, Status: metav1.ConditionTrue, Reason: workloadv1alpha1.ReasonReady, LastTransitionTime: now}}
	if _, err := client.WorkloadV1alpha1().SyncTargets().UpdateStatus(ctx, st, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := client.WorkloadV1alpha1().SyncTargets().Get(ctx, "east", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.LastSyncerHeartbeatTime == nil || !got.Status.LastSyncerHeartbeatTime.Equal(&now) || len(got.Status.SyncedResources) != 1 || got.Status.SyncedResources[0].State != workloadv1alpha1.ResourceStateAccepted {
		t.Errorf("status not stored: %+v", got.Status)
	}
	// The status subresource ignores spec changes, and the main resource ignores status.
	got.Spec.Unschedulable = true
	got.Status.AcceptedResourceCount = 7
	if _, err := client.WorkloadV1alpha1().SyncTargets().UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	again, _ := client.WorkloadV1alpha1().SyncTargets().Get(ctx, "east", metav1.GetOptions{})
	if again.Spec.Unschedulable || again.Status.AcceptedResourceCount != 7 {
		t.Errorf("status subresource: spec.unschedulable=%v acceptedResourceCount=%d", again.Spec.Unschedulable, again.Status.AcceptedResourceCount)
	}
	// Validation from the generated schema: a bad resource name is rejected.
	_, err = client.WorkloadV1alpha1().SyncTargets().Create(ctx, &workloadv1alpha1.SyncTarget{
		ObjectMeta: metav1.ObjectMeta{Name: "bad"},
		Spec:       workloadv1alpha1.SyncTargetSpec{Resources: []workloadv1alpha1.ResourceToSync{{Resource: "Deployments!"}}},
	}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Errorf("invalid resource name: got %v, want Invalid", err)
	}
}

func TestPartitionHealAndAPIServerRestart(t *testing.T) {
	ctx := t.Context()
	env := localenv.StartForTest(t, localenv.Options{Workspaces: []string{wsA}, NoWorkspaceControllers: true})
	ws := env.Workspace(wsA)

	// Put a fault proxy between the client and the front proxy.
	fp, err := env.NewFaultProxy(strings.TrimPrefix(env.FrontProxy.URL, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := ws.AdminConfig()
	cfg.Host = "https://" + fp.Addr + ws.Path.RequestPath()
	cfg.Timeout = 2 * time.Second
	client := kube(t, cfg)
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "data"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	fp.Partition()
	start := time.Now()
	_, err = client.CoreV1().Namespaces().Get(ctx, "data", metav1.GetOptions{})
	if err == nil {
		t.Fatalf("request succeeded through a partition")
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("request through a partition took %s to fail", elapsed)
	}
	t.Logf("request through the partition failed after %s: %v", time.Since(start).Round(time.Millisecond), err)

	fp.Heal()
	poll(t, ctx, 10*time.Second, "requests did not succeed after heal", func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Namespaces().Get(ctx, "data", metav1.GetOptions{})
		return err == nil, nil
	})

	// Latency is added per direction.
	fp.SetLatency(300 * time.Millisecond)
	start = time.Now()
	if _, err := client.CoreV1().Namespaces().Get(ctx, "data", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed < 600*time.Millisecond {
		t.Errorf("with 300ms latency a request took only %s", elapsed)
	}
	fp.SetLatency(0)

	// A connection reset breaks open connections; the client reconnects.
	if n := fp.ResetConnections(); n == 0 {
		t.Errorf("no connection to reset")
	}
	poll(t, ctx, 10*time.Second, "requests did not succeed after reset", func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Namespaces().Get(ctx, "data", metav1.GetOptions{})
		return err == nil, nil
	})

	// An informer survives an apiserver restart, and the data survives in etcd.
	direct := kube(t, ws.AdminConfig())
	factory := informers.NewSharedInformerFactory(direct, 0)
	cmInformer := factory.Core().V1().ConfigMaps().Informer()
	informerCtx, stopInformers := context.WithCancel(ctx)
	factory.Start(informerCtx.Done())
	defer factory.Shutdown()
	defer stopInformers()
	if !cache.WaitForCacheSync(ctx.Done(), cmInformer.HasSynced) {
		t.Fatal("informer did not sync")
	}
	if _, err := direct.CoreV1().ConfigMaps("data").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "before"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	oldPid := ws.APIServer.Process.Pid()
	if err := ws.APIServer.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if ws.APIServer.Process.Pid() == oldPid {
		t.Fatalf("apiserver was not restarted")
	}
	if _, err := direct.CoreV1().ConfigMaps("data").Get(ctx, "before", metav1.GetOptions{}); err != nil {
		t.Fatalf("data lost across the restart: %v", err)
	}
	if _, err := direct.CoreV1().ConfigMaps("data").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	poll(t, ctx, 60*time.Second, "informer did not see the object created after the restart", func(context.Context) (bool, error) {
		_, exists, err := cmInformer.GetStore().GetByKey("data/after")
		return exists && err == nil, nil
	})
	t.Logf("the informer saw an object created after the apiserver restart %s later", time.Since(restarted).Round(time.Millisecond))
}

func TestProcessKillAndRestart(t *testing.T) {
	env := localenv.StartForTest(t, localenv.Options{Workspaces: []string{wsA}, NoWorkspaceControllers: true})
	// Any binary can be run, killed and restarted; use a tiny HTTP server started as a
	// process (etcd, which every environment has, as the example).
	etcd := env.Etcd.Process
	pid := etcd.Pid()
	if pid == 0 {
		t.Fatal("etcd is not running")
	}
	if err := etcd.Kill(); err != nil {
		t.Fatal(err)
	}
	if etcd.Running() {
		t.Fatal("etcd still running after SIGKILL")
	}
	if err := syscallAlive(pid); err == nil {
		t.Fatalf("pid %d still exists", pid)
	}
	if err := etcd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	poll(t, ctx, 30*time.Second, "etcd did not come back", func(ctx context.Context) (bool, error) {
		resp, err := http.Get(env.Etcd.ClientURL + "/health")
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	// The apiserver reconnects to the restarted etcd.
	client := kube(t, env.Workspace(wsA).AdminConfig())
	poll(t, ctx, 60*time.Second, "apiserver did not recover after etcd restart", func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "x-"}}, metav1.CreateOptions{})
		return err == nil, nil
	})
}

func syscallAlive(pid int) error {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return err
	}
	// A zombie counts as gone.
	fields := strings.Fields(string(b))
	if len(fields) > 2 && fields[2] == "Z" {
		return errors.New("zombie")
	}
	return nil
}

func TestEnvironmentFootprint(t *testing.T) {
	env := localenv.StartForTest(t, localenv.Options{
		Workspaces:       []string{wsA, wsB},
		PhysicalClusters: []localenv.PhysicalClusterOptions{{Name: "east"}},
	})
	var total int64
	for _, p := range env.Processes() {
		rss := rssBytes(p.Pid())
		total += rss
		t.Logf("%-40s %6d MiB", p.Name, rss>>20)
	}
	t.Logf("environment (2 workspaces, 1 physical cluster): started in %s, %d processes, total RSS %d MiB",
		env.StartupDuration().Round(time.Millisecond), len(env.Processes()), total>>20)
	if total == 0 {
		t.Errorf("could not read the RSS of any process")
	}
	// Everything listens on loopback only.
	for _, u := range []string{env.FrontProxy.URL, env.Workspace(wsA).APIServer.URL, env.Cluster("east").APIServer.URL, env.Etcd.ClientURL} {
		host := strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
		h, _, err := net.SplitHostPort(host)
		if err != nil || h != "127.0.0.1" {
			t.Errorf("%s does not listen on 127.0.0.1", u)
		}
	}
}

func rssBytes(pid int) int64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
