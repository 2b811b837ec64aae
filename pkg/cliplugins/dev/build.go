package dev

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/tmc-dev/tmc/pkg/localenv"
)

// tmcBinaries are the TMC programs the environment runs.
var tmcBinaries = []string{"workload-syncer", "tmc-controller", "tmc-virtual-workspaces"}

// ensureBinaries builds what is missing: the Kubernetes servers with hack/test-binaries.sh
// (its progress goes to errOut as it comes) and the TMC binaries with go build into binDir,
// which relinks nothing when they are up to date. Outside a repository clone, existing
// binaries are used as they are. It returns the directory of the Kubernetes servers.
func ensureBinaries(ctx context.Context, binDir string, out, errOut io.Writer) (string, error) {
	root, rootErr := localenv.RepoRoot()
	bins, err := localenv.FindBinaries()
	if err != nil {
		if rootErr != nil {
			return "", fmt.Errorf("%w; run 'kubectl tmc dev up' inside a clone of the TMC repository to build them", err)
		}
		_, _ = fmt.Fprintln(out, "Building the Kubernetes servers (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok); only the first time")
		script := exec.CommandContext(ctx, filepath.Join(root, "hack", "test-binaries.sh"))
		script.Dir = root
		script.Stdout, script.Stderr = io.Discard, errOut
		if err := script.Run(); err != nil {
			return "", fmt.Errorf("failed to build the Kubernetes servers (hack/test-binaries.sh): %w", err)
		}
		if bins, err = localenv.FindBinaries(); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", fmt.Errorf("failed to create %s: %w", binDir, err)
	}
	for _, name := range tmcBinaries {
		target := filepath.Join(binDir, name)
		if rootErr != nil {
			if _, err := os.Stat(target); err != nil {
				return "", fmt.Errorf("%s is missing and this is not a clone of the TMC repository to build it from: %w", target, err)
			}
			continue
		}
		_, _ = fmt.Fprintf(out, "Building %s ...\n", name)
		began := time.Now()
		build := exec.CommandContext(ctx, "go", "build", "-o", target, "./cmd/"+name)
		build.Dir = root
		build.Stdout, build.Stderr = errOut, errOut
		if err := build.Run(); err != nil {
			return "", fmt.Errorf("failed to build %s: %w", name, err)
		}
		_, _ = fmt.Fprintf(out, "Built %s in %s\n", target, time.Since(began).Round(100*time.Millisecond))
	}
	return bins.Dir, nil
}
