package localenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Pod serving: every physical cluster's kwok also serves the kubelet API (logs, exec,
// port-forward) on a port of its own that its nodes advertise (status.daemonEndpoints with
// InternalIP 127.0.0.1), so the cluster's apiserver answers pods/log, pods/exec and
// pods/portforward of every kwok pod as a real cluster does:
//   - logs: every container of every pod reads PodServing.LogPath, in the CRI log format;
//     AppendPodLog adds a line, which a follow=true request sees;
//   - exec: runs the command locally (`echo ok` prints ok), with TMC_PHYSICAL_CLUSTER set;
//   - port-forward: every port of every pod is forwarded to PodServing.PortForwardTarget,
//     by default an HTTP echo server of the environment on 127.0.0.1.

// PodServing is what a physical cluster's kwok serves for its pods.
type PodServing struct {
	// KubeletPort is kwok's kubelet API port (HTTPS with a certificate of the environment's
	// CA), advertised by every node of the cluster.
	KubeletPort int
	// LogPath is the log file (CRI format) every container of every pod serves.
	LogPath string
	// PortForwardTarget is the host:port every port-forward reaches.
	PortForwardTarget string
	// configPath is the kwok configuration file (ClusterLogs, ClusterExec, ClusterPortForward).
	configPath string
	logMu      sync.Mutex
}

// EchoServerGreeting starts the body of every answer of the environment's port-forward echo
// server; the rest is "<cluster> <method> <path>".
const EchoServerGreeting = "tmc-echo"

// setUpPodServing writes the log file and the kwok configuration of cluster name, and starts
// the echo server when target is empty. It registers the echo server's closer with env.
func (env *Environment) setUpPodServing(name, target string) (*PodServing, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(env.Dir, "pods", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create %s: %w", dir, err)
	}
	ps := &PodServing{KubeletPort: port, LogPath: filepath.Join(dir, "pod.log"), PortForwardTarget: target, configPath: filepath.Join(dir, "kwok-pods.yaml")}
	if err := os.WriteFile(ps.LogPath, nil, 0o600); err != nil {
		return nil, fmt.Errorf("failed to create %s: %w", ps.LogPath, err)
	}
	for _, line := range []string{"tmc: log of a pod on physical cluster " + name, "tmc: started", "tmc: serving"} {
		if err := ps.AppendPodLog(line); err != nil {
			return nil, err
		}
	}
	if ps.PortForwardTarget == "" {
		addr, closeEcho, err := startEchoServer(name)
		if err != nil {
			return nil, err
		}
		env.mu.Lock()
		env.closers = append(env.closers, closeEcho)
		env.mu.Unlock()
		ps.PortForwardTarget = addr
	}
	config, err := kwokPodServingConfig(name, ps.LogPath, ps.PortForwardTarget)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(ps.configPath, []byte(config), 0o600); err != nil {
		return nil, fmt.Errorf("failed to write %s: %w", ps.configPath, err)
	}
	return ps, nil
}

// AppendPodLog appends line to the log every pod of the cluster serves.
func (ps *PodServing) AppendPodLog(line string) error {
	ps.logMu.Lock()
	defer ps.logMu.Unlock()
	f, err := os.OpenFile(ps.LogPath, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("failed to open pod log: %w", err)
	}
	// The CRI log format kwok reads: <RFC3339Nano time> <stream> <F(ull)|P(artial)> <text>.
	_, err = fmt.Fprintf(f, "%s stdout F %s\n", time.Now().UTC().Format(time.RFC3339Nano), line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("failed to append to pod log: %w", err)
	}
	return nil
}

// kwokPodServingConfig is the kwok configuration that serves every pod of the cluster.
func kwokPodServingConfig(cluster, logPath, target string) (string, error) {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return "", fmt.Errorf("port-forward target %q: %w", target, err)
	}
	// JSON strings (%q of plain paths and addresses) are valid YAML scalars.
	return fmt.Sprintf(`apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: tmc-pod-logs
spec:
  logs:
  - logsFile: %[1]q
    previousLogsFile: %[1]q
    follow: true
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterExec
metadata:
  name: tmc-pod-exec
spec:
  execs:
  - local:
      envs:
      - name: TMC_PHYSICAL_CLUSTER
        value: %[2]q
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterPortForward
metadata:
  name: tmc-pod-port-forward
spec:
  forwards:
  - target:
      address: %[3]q
      port: %[4]s
`, logPath, cluster, host, port), nil
}

// startEchoServer serves, on a free loopback port, an answer naming the cluster and the
// request to every request. It returns the address and a closer.
func startEchoServer(cluster string) (string, func() error, error) {
	port, err := FreePort()
	if err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return "", nil, fmt.Errorf("failed to listen for the echo server: %w", err)
	}
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = fmt.Fprintf(w, "%s %s %s %s\n", EchoServerGreeting, cluster, r.Method, r.URL.Path)
		}),
	}
	go func() { _ = srv.Serve(l) }()
	closer := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("echo server of %s: %w", cluster, err)
		}
		return nil
	}
	return l.Addr().String(), closer, nil
}

// kubeletArgs are the kube-apiserver flags that reach kwok's kubelet API: nodes' InternalIP
// (127.0.0.1; their Hostname does not resolve) and kwok's certificate checked against caFile.
func kubeletArgs(caFile string) []string {
	return []string{
		"--kubelet-preferred-address-types=InternalIP",
		"--kubelet-certificate-authority=" + caFile,
	}
}
