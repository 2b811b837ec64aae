package localenv

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"time"
)

// Etcd is the etcd server of an environment; every apiserver uses it with its own prefix.
type Etcd struct {
	Process   *Process
	ClientURL string
}

// StartEtcd starts etcd with its data in dataDir and waits until it is healthy.
func StartEtcd(ctx context.Context, bins *Binaries, dataDir, logDir string) (*Etcd, error) {
	return startNamedEtcd(ctx, bins, "etcd", dataDir, logDir)
}

// startNamedEtcd starts an etcd whose process and log are called name.
func startNamedEtcd(ctx context.Context, bins *Binaries, name, dataDir, logDir string) (*Etcd, error) {
	clientPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	peerPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	p := NewProcess(name, bins.Path(BinEtcd), []string{
		"--name=default",
		"--data-dir=" + filepath.Join(dataDir, "etcd"),
		"--listen-client-urls=" + clientURL,
		"--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=default=" + peerURL,
		// Test data: durability across a machine crash is not needed, speed is.
		"--unsafe-no-fsync=true",
		"--quota-backend-bytes=8589934592",
		"--log-level=warn",
	}, logDir)
	if err := p.Start(); err != nil {
		return nil, err
	}
	e := &Etcd{Process: p, ClientURL: clientURL}
	if err := waitHTTP(ctx, p, http.DefaultClient, clientURL+"/health", 30*time.Second); err != nil {
		_ = p.Kill()
		return nil, fmt.Errorf("etcd did not become healthy: %w", err)
	}
	return e, nil
}

// waitHTTP polls url until it answers 200, the process exits or the timeout passes.
func waitHTTP(ctx context.Context, p *Process, client *http.Client, url string, timeout time.Duration) error {
	err := Poll(ctx, 100*time.Millisecond, timeout, func(ctx context.Context) (bool, string, error) {
		if !p.Running() {
			return false, "", fmt.Errorf("%s exited (%w); see %s; it ended with:\n%s", p.Name, p.ExitError(), p.LogPath, tailFile(p.LogPath, 5))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, "", fmt.Errorf("failed to create request for %s: %w", url, err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, err.Error(), nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status, nil
	})
	if err != nil {
		return fmt.Errorf("%s: %s not ready after %s (see %s): %w", p.Name, url, timeout, p.LogPath, err)
	}
	return nil
}
