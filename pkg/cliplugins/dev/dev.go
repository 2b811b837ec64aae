package dev

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// defaultDir is where an environment lives unless --dir says otherwise.
const defaultDir = ".tmc-dev"

// NewCommand returns `dev` with its subcommands `up`, `down` and `status` (and the hidden
// `serve` that `up` starts in the background).
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a complete TMC environment on this machine",
		Long: `Run a complete TMC environment on this machine, as processes: etcd, a location workspace
and a workload workspace behind a kcp-style front proxy, one or two kwok physical clusters
(real kube-apiserver, controller-manager and scheduler with fake nodes), the tmc-controller and
one workload-syncer per cluster, with a Placement and a sample app (Deployment, Service,
ConfigMap) already running.

Run it from a clone of the TMC repository: 'dev up' builds what is missing (the Kubernetes
servers once, about 15 minutes on 2 cores; the TMC binaries in seconds).`,
		Example: `  # Start the environment and wait until the sample app is ready
  kubectl tmc dev up

  # What is running
  kubectl tmc dev status

  # Stop everything
  kubectl tmc dev down`,
		Args: cobra.NoArgs,
	}
	serve := newServeCommand(streams)
	cmd.AddCommand(newUpCommand(streams, serve), newDownCommand(streams), newStatusCommand(streams), serve)
	return cmd
}

// absDir resolves --dir.
func absDir(dir string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("--dir must not be empty")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("failed to resolve --dir %q: %w", dir, err)
	}
	return abs, nil
}

func validateClusters(n int) error {
	if n != 1 && n != 2 {
		return fmt.Errorf("--clusters must be 1 or 2, not %d", n)
	}
	return nil
}

func validateTimeout(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("--timeout must be positive, not %s", d)
	}
	return nil
}

// dirFlag returns " --dir <dir>" for the commands printed to the user, or "" when dir is
// the default seen from the current directory.
func dirFlag(dir string) string {
	if def, err := filepath.Abs(defaultDir); err == nil && def == dir {
		return ""
	}
	return " --dir " + dir
}
