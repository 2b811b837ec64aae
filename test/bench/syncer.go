package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/tmc-dev/tmc/pkg/localenv"
)

// Syncer settings of every scenario, and the client settings of the B0 baseline.
const (
	syncerWorkers         = 16
	syncerQPS     float32 = -1 // no client-side rate limiting
)

// buildSyncer builds bin/workload-syncer from the repository (or, for profiling, the same
// syncer with a pprof endpoint) and returns its path.
func buildSyncer(ctx context.Context, root string, pprof bool) (string, error) {
	name, pkg := "workload-syncer", "./cmd/workload-syncer"
	if pprof {
		name, pkg = "workload-syncer-pprof", "./test/bench/syncerprof"
	}
	return buildBinary(ctx, root, name, pkg)
}

// buildBinary builds package pkg of the repository into bin/name and returns its path.
func buildBinary(ctx context.Context, root, name, pkg string) (string, error) {
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
	*localenv.Component
}

func startSyncer(ctx context.Context, be *benchEnv, binary string, verbosity int, pprof bool) (*syncerProcess, error) {
	c, err := be.env.StartSyncer(ctx, localenv.SyncerOptions{
		Binary:              binary,
		Name:                "workload-syncer",
		User:                syncerUser,
		Cluster:             clusterName,
		SyncTargetWorkspace: locationWS,
		SyncTargetName:      clusterName,
		SyncTargetUID:       string(be.st.UID),
		QPS:                 syncerQPS,
		Workers:             syncerWorkers,
		Verbosity:           verbosity,
		Pprof:               pprof,
	})
	if err != nil {
		return nil, err
	}
	return &syncerProcess{Component: c}, nil
}

// waitReady waits until /readyz answers 200 and returns when it did.
func (sp *syncerProcess) waitReady(ctx context.Context, timeout time.Duration) (time.Time, error) {
	return sp.WaitReady(ctx, timeout)
}

// metrics scrapes the syncer's /metrics.
func (sp *syncerProcess) metrics(ctx context.Context) (localenv.Metrics, error) {
	return sp.Metrics(ctx)
}

// waitIdle waits until the syncer's spec and status queues are empty and, when
// minProcessed > 0, until it has processed at least that many objects downstream since it
// started, with or without a write (the sign that a restarted syncer has re-checked every
// synced object).
func (sp *syncerProcess) waitIdle(ctx context.Context, minProcessed float64, timeout time.Duration) (time.Time, error) {
	stable := 0
	err := localenv.Poll(ctx, 100*time.Millisecond, timeout, func(ctx context.Context) (bool, string, error) {
		m, err := sp.metrics(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		depth := m.Sum("workqueue_depth", map[string]string{"name": "spec"}) + m.Sum("workqueue_depth", map[string]string{"name": "status"})
		processed := m.Sum("syncer_skipped_writes_total", map[string]string{"direction": "down"}) +
			m.Sum("syncer_resources_synced_total", map[string]string{"direction": "down"})
		status := fmt.Sprintf("queue depth %.0f, %.0f objects processed", depth, processed)
		if depth != 0 || processed < minProcessed {
			stable = 0
			return false, status, nil
		}
		// Twice in a row, so that a key being processed right now is finished.
		stable++
		return stable >= 2, status, nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("the syncer did not become idle within %s (want %.0f objects re-checked): %w", timeout, minProcessed, err)
	}
	return time.Now(), nil
}

// cpuProfile fetches a CPU profile of d from the pprof build into path.
func (sp *syncerProcess) cpuProfile(ctx context.Context, d time.Duration, path string) error {
	if sp.PprofURL == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/profile?seconds=%d", sp.PprofURL, int(d.Seconds())), nil)
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
	return localenv.HTTPGet(ctx, url)
}
