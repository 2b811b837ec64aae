package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"

	"github.com/tmc-dev/tmc/pkg/localenv"
)

// TestPhysicalClusterServesPods: the apiserver of a physical cluster answers pods/log (with
// follow), pods/exec and pods/portforward of a kwok pod, served by kwok.
func TestPhysicalClusterServesPods(t *testing.T) {
	ctx := t.Context()
	env := localenv.StartForTest(t, localenv.Options{
		PhysicalClusters: []localenv.PhysicalClusterOptions{{Name: "east"}},
	})
	east := env.Cluster("east")
	cfg := east.AdminConfig()
	client := kube(t, cfg)
	pod := startRunningPod(t, ctx, client, "demo", "web")

	t.Run("logs follow", func(t *testing.T) { checkFollowedLogs(t, ctx, client, east, pod) })
	t.Run("exec", func(t *testing.T) {
		out := execInPod(t, ctx, cfg, client, pod, "echo", "ok")
		if out != "ok\n" {
			t.Fatalf("exec echo ok printed %q, want %q", out, "ok\n")
		}
		out = execInPod(t, ctx, cfg, client, pod, "sh", "-c", "echo $TMC_PHYSICAL_CLUSTER")
		if out != "east\n" {
			t.Fatalf("exec printed TMC_PHYSICAL_CLUSTER=%q, want east", out)
		}
	})
	t.Run("port-forward", func(t *testing.T) {
		body := portForwardGet(t, ctx, cfg, pod, 8080, "/hello")
		want := localenv.EchoServerGreeting + " east GET /hello"
		if !strings.HasPrefix(body, want) {
			t.Fatalf("port-forwarded GET /hello answered %q, want %q", body, want)
		}
	})
}

func startRunningPod(t *testing.T, ctx context.Context, client kubernetes.Interface, namespace, name string) *corev1.Pod {
	t.Helper()
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
	}
	// The namespace's default ServiceAccount, which admission wants, comes a moment later.
	poll(t, ctx, 60*time.Second, "pod could not be created", func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
		return err == nil, nil
	})
	var running *corev1.Pod
	poll(t, ctx, 60*time.Second, "pod did not become Running", func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		running = p
		return p.Status.Phase == corev1.PodRunning, nil
	})
	return running
}

func checkFollowedLogs(t *testing.T, ctx context.Context, client kubernetes.Interface, pc *localenv.PhysicalCluster, pod *corev1.Pod) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	stream, err := client.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{Follow: true}).Stream(ctx)
	if err != nil {
		t.Fatalf("pods/log: %v", err)
	}
	defer func() { _ = stream.Close() }()
	lines := make(chan string)
	go func() {
		defer close(lines)
		scanner := bufio.NewScanner(stream)
		for scanner.Scan() {
			select {
			case lines <- scanner.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	waitLine(t, ctx, lines, "tmc: serving")
	appended := fmt.Sprintf("appended after the start at %d", time.Now().UnixNano())
	if err := pc.Pods.AppendPodLog(appended); err != nil {
		t.Fatal(err)
	}
	waitLine(t, ctx, lines, appended)
}

// waitLine reads lines until want; it fails when the stream ends or ctx does.
func waitLine(t *testing.T, ctx context.Context, lines <-chan string, want string) {
	t.Helper()
	var seen []string
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("log stream ended before %q; read %q", want, seen)
			}
			if line == want {
				return
			}
			seen = append(seen, line)
		case <-ctx.Done():
			t.Fatalf("no log line %q before the deadline; read %q", want, seen)
		}
	}
}

func execInPod(t *testing.T, ctx context.Context, cfg *rest.Config, client kubernetes.Interface, pod *corev1.Pod, command ...string) string {
	t.Helper()
	req := client.CoreV1().RESTClient().Post().Resource("pods").Namespace(pod.Namespace).Name(pod.Name).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: pod.Spec.Containers[0].Name, Command: command, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	executor, err := remotecommand.NewSPDYExecutor(cfg, http.MethodPost, req.URL())
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := executor.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}); err != nil {
		t.Fatalf("exec %v: %v (stderr %q)", command, err, stderr.String())
	}
	return stdout.String()
}

// portForwardGet forwards a local port to the pod's remotePort and GETs path through it.
func portForwardGet(t *testing.T, ctx context.Context, cfg *rest.Config, pod *corev1.Pod, remotePort int, path string) string {
	t.Helper()
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req := kube(t, cfg).CoreV1().RESTClient().Post().Resource("pods").Namespace(pod.Namespace).Name(pod.Name).SubResource("portforward")
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, req.URL())
	stop, ready := make(chan struct{}), make(chan struct{})
	defer close(stop)
	var out, errOut bytes.Buffer
	forwarder, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", remotePort)}, stop, ready, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- forwarder.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("port-forward ended before it was ready: %v (%s)", err, errOut.String())
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	ports, err := forwarder.GetPorts()
	if err != nil || len(ports) != 1 {
		t.Fatalf("forwarded ports %v: %v", ports, err)
	}
	httpClient := &http.Client{Timeout: 30 * time.Second}
	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d%s", ports[0].Local, path))
	if err != nil {
		t.Fatalf("GET through the port-forward: %v (%s)", err, errOut.String())
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}
