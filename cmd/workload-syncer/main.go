// Command workload-syncer is TMC's per-physical-cluster syncer: spec down, status up, heartbeats.
package main

import (
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/tmc-dev/tmc/pkg/cliutil"
)

func main() {
	os.Exit(run())
}

func run() int {
	defer cliutil.InitLogs()()
	if err := newCommand().Execute(); err != nil {
		return 1
	}
	return 0
}

func newCommand() *cobra.Command {
	logging := cliutil.NewLogging()
	cmd := &cobra.Command{
		Use:           "workload-syncer",
		Short:         "Sync workloads between TMC workspaces and one physical cluster",
		SilenceUsage:  true,
		SilenceErrors: false,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := logging.Apply(); err != nil {
				return err
			}
			return errors.New("workload-syncer: the controllers are not part of this build yet")
		},
	}
	logging.AddFlags(cmd.Flags())
	cliutil.AddVersionFlag(cmd)
	return cmd
}
