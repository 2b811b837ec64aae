package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/tmc-dev/tmc/pkg/localenv"
)

// Syncer settings of every scenario, and the client settings of the B0 baseline.
const (
	syncerWorkers = 16
	syncerQPS     = "-1" // no client-side rate limiting
)

// buildSyncer builds bin/workload-syncer from the repository (or, for profiling, the same
// syncer with a pprof endpoint) and returns its path.
func buildSyncer(ctx context.Context, root string, pprof bool) (string, error) {
	name, pkg := "workload-syncer", "./cmd/workload-syncer"
	if pprof {
		name, pkg = "workload-syncer-pprof", "./test/bench/syncerprof"
	}
	out := filepath.Join(root, "bin", name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("failed to build %s: %w", pkg, err)
	}
	return out, nil
}

// syncerProcess is the workload-syncer running as a process, as the syncer user.
type syncerProcess struct {
	*localenv.Process
	metricsURL string
	healthURL  string
	pprofURL   string
}

func startSyncer(ctx context.Context, be *benchEnv, binary string, verbosity int, pprof bool) (*syncerProcess, error) {
	dir := filepath.Join(be.env.Dir, "syncer")
	upKC, err := localenv.WriteKubeconfig(be.env.UpstreamConfig(syncerUser), "upstream", filepath.Join(dir, "upstream.kubeconfig"))
	if err != nil {
		return nil, err
	}
	downKC, err := localenv.WriteKubeconfig(be.cluster.Config(syncerUser), "downstream", filepath.Join(dir, "downstream.kubeconfig"))
	if err != nil {
		return nil, err
	}
	metricsPort, err := localenv.FreePort()
	if err != nil {
		return nil, err
	}
	healthPort, err := localenv.FreePort()
	if err != nil {
		return nil, err
	}
	args := []string{
		"--upstream-kubeconfig=" + upKC,
		"--downstream-kubeconfig=" + downKC,
		"--sync-target-workspace=" + locationWS,
		"--sync-target-name=" + clusterName,
		"--sync-target-uid=" + string(be.st.UID),
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", healthPort),
		"--qps=" + syncerQPS,
		"--workers=" + strconv.Itoa(syncerWorkers),
		"-v=" + strconv.Itoa(verbosity),
	}
	sp := &syncerProcess{
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort),
		healthURL:  fmt.Sprintf("http://127.0.0.1:%d", healthPort),
	}
	if pprof {
		port, err := localenv.FreePort()
		if err != nil {
			return nil, err
		}
		args = append(args, fmt.Sprintf("--pprof-bind-address=127.0.0.1:%d", port))
		sp.pprofURL = fmt.Sprintf("http://127.0.0.1:%d/debug/pprof", port)
	}
	sp.Process = localenv.NewProcess("workload-syncer", binary, args, be.env.LogDir)
	if err := sp.Start(); err != nil {
		return nil, err
	}
	be.env.Track(sp.Process)
	if _, err := sp.waitReady(ctx, 90*time.Second); err != nil {
		return nil, err
	}
	return sp, nil
}

// waitReady polls /readyz every 50ms until it answers 200 and returns when it did.
func (sp *syncerProcess) waitReady(ctx context.Context, timeout time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	for {
		if !sp.Running() {
			exitErr := sp.ExitError()
			if exitErr == nil {
				exitErr = errors.New("exit status 0")
			}
			return time.Time{}, fmt.Errorf("the syncer exited (log: %s): %w", sp.LogPath, exitErr)
		}
		if code, _, err := httpGet(ctx, sp.healthURL+"/readyz"); err == nil && code == http.StatusOK {
			return time.Now(), nil
		}
		select {
		case <-ctx.Done():
			_, body, _ := httpGet(context.Background(), sp.healthURL+"/readyz?verbose")
			return time.Time{}, fmt.Errorf("the syncer did not become ready within %s (log: %s):\n%s", timeout, sp.LogPath, body)
		case <-ticker.C:
		}
	}
}

// metrics scrapes the syncer's /metrics.
func (sp *syncerProcess) metrics(ctx context.Context) (samples, error) {
	code, body, err := httpGet(ctx, sp.metricsURL)
	if err != nil {
		return nil, fmt.Errorf("failed to scrape the syncer: %w", err)
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("failed to scrape the syncer: HTTP %d", code)
	}
	return parseSamples(body), nil
}

// waitIdle waits until the syncer's spec and status queues are empty and, when
// minProcessed > 0, until it has processed at least that many objects downstream since it
// started, with or without a write (the sign that a restarted syncer has re-checked every
// synced object).
func (sp *syncerProcess) waitIdle(ctx context.Context, minProcessed float64, timeout time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stable := 0
	for {
		m, err := sp.metrics(ctx)
		if err == nil {
			depth := m.sum("workqueue_depth", map[string]string{"name": "spec"}) + m.sum("workqueue_depth", map[string]string{"name": "status"})
			processed := m.sum("syncer_skipped_writes_total", map[string]string{"direction": "down"}) +
				m.sum("syncer_resources_synced_total", map[string]string{"direction": "down"})
			if depth == 0 && processed >= minProcessed {
				// Twice in a row, so that a key being processed right now is finished.
				if stable++; stable >= 2 {
					return time.Now(), nil
				}
			} else {
				stable = 0
			}
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("the syncer did not become idle within %s (want %.0f objects re-checked): %w", timeout, minProcessed, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cpuProfile fetches a CPU profile of d from the pprof build into path.
func (sp *syncerProcess) cpuProfile(ctx context.Context, d time.Duration, path string) error {
	if sp.pprofURL == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/profile?seconds=%d", sp.pprofURL, int(d.Seconds())), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: d + 30*time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("failed to fetch CPU profile: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("failed to fetch CPU profile: HTTP %d", resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("failed to create %s: %w", path, err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	return f.Close()
}

func httpGet(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
