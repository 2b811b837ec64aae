package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// The pod-access view of the real tmc-virtual-workspaces binary, with no syncer tunnel
// open: kubectl's reads are forwarded with the user's own token, a user without get
// pods/log in the workspace is refused, a pod no SyncTarget upsyncs is not reachable, and
// an upsynced pod whose syncer holds no tunnel is reported as such.
func TestPodAccessViewWithoutTunnel(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const workload = "root:org:team-a"
	env := localenv.StartForTest(t, localenv.Options{Workspaces: []string{workload}, Users: []string{"alice", "bob"}})
	wsKube, err := kubernetes.NewForConfig(env.Workspace(workload).AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	const key = "targetkey1"
	upsynced := map[string]string{workloadv1alpha1.ClusterResourceStateLabel(key): workloadv1alpha1.ResourceStateUpsync}
	rules := func(resources ...string) []rbacv1.PolicyRule {
		return []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: resources, Verbs: []string{"get", "list"}}}
	}
	binding := func(name, user string) *rbacv1.RoleBinding {
		return &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "demo"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}}
	}
	if err := localenv.CreateObjects(ctx, wsKube,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "logs", Namespace: "demo"}, Rules: rules("pods", "pods/log")},
		binding("logs", "alice"),
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pods", Namespace: "demo"}, Rules: rules("pods")},
		binding("pods", "bob"),
	); err != nil {
		t.Fatal(err)
	}
	for name, labels := range map[string]map[string]string{"web": upsynced, "plain": nil} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "demo", Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox"}}}}
		// The namespace's default ServiceAccount comes from the workspace's controller.
		localenv.Eventually(t, 200*time.Millisecond, time.Minute, "pod "+name+" created", func(ctx context.Context) (bool, string, error) {
			_, err := wsKube.CoreV1().Pods("demo").Create(ctx, pod, metav1.CreateOptions{})
			return err == nil || apierrors.IsAlreadyExists(err), fmt.Sprint(err), nil
		})
	}

	vw, err := env.StartVirtualWorkspaces(ctx, localenv.VirtualWorkspacesOptions{Binary: filepath.Join(binDir, "tmc-virtual-workspaces")})
	if err != nil {
		t.Fatal(err)
	}
	// The workspace by path, as users name it (the upstream resolves it).
	view := func(user string) kubernetes.Interface {
		cfg := &rest.Config{
			Host:            strings.TrimSuffix(vw.URL, "/") + workloadv1alpha1.PodAccessVirtualWorkspacePrefix + "clusters/" + workload,
			TLSClientConfig: rest.TLSClientConfig{CAData: env.PKI.CAData},
		}
		if user != "" {
			cfg.BearerToken = env.Tokens.Token(user)
		}
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	pods, err := view("bob").CoreV1().Pods("demo").List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) != 2 {
		t.Fatalf("bob lists %v (%v) through the view, want the two pods", pods, err)
	}
	if _, err := view("bob").CoreV1().Namespaces().Get(ctx, "demo", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("bob reads the namespace through the view: %v, want the workspace's own 403 to his token", err)
	}
	if _, err := view("").CoreV1().Pods("demo").List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("a list without a token: %v, want 401", err)
	}
	logs := func(user, pod string) error {
		// Stream, as kubectl logs does: it decodes the Status of a refusal.
		body, err := view(user).CoreV1().Pods("demo").GetLogs(pod, &corev1.PodLogOptions{Container: "app"}).Stream(ctx)
		if err == nil {
			_ = body.Close()
		}
		return err
	}
	if err := logs("bob", "web"); !apierrors.IsForbidden(err) {
		t.Errorf("bob's logs of web: %v, want 403 (no get pods/log)", err)
	}
	if err := logs("alice", "plain"); !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), "not upsynced by any SyncTarget") {
		t.Errorf("alice's logs of plain: %v, want 404, not upsynced", err)
	}
	if err := logs("alice", "web"); !apierrors.IsServiceUnavailable(err) || !strings.Contains(err.Error(), key) {
		t.Errorf("alice's logs of web: %v, want 503 naming SyncTarget %s without a tunnel", err, key)
	}
	m, err := vw.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for code, want := range map[string]float64{"403": 1, "404": 1, "503": 1} {
		if n := m.Sum("tmc_virtualworkspace_pod_requests_total", map[string]string{"subresource": "log", "code": code}); n != want {
			t.Errorf("pod_requests_total{log,%s} = %v, want %v\n%s", code, n, want, m.Series("tmc_virtualworkspace_pod_requests_total"))
		}
	}
}
