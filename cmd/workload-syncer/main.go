package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/tmc-dev/tmc/cmd/workload-syncer/options"
	"github.com/tmc-dev/tmc/pkg/cliutil"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer"
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
	opts := options.NewOptions()
	cmd := &cobra.Command{
		Use:   "workload-syncer",
		Short: "Sync workloads between TMC workspaces and one physical cluster",
		Long: `workload-syncer serves one SyncTarget: it syncs the objects of the workload workspaces
placed on it down to this physical cluster (server-side apply), copies their status back up,
removes downstream copies before releasing upstream objects, and heartbeats the SyncTarget.`,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := logging.Apply(); err != nil {
				return err
			}
			if err := opts.Validate(); err != nil {
				return err
			}
			cfg, err := opts.Config()
			if err != nil {
				return err
			}
			s, err := syncer.New(cfg)
			if err != nil {
				return err
			}
			ctx, stop := cliutil.SignalContext("workload-syncer")
			defer stop()
			return s.Run(ctx)
		},
	}
	opts.AddFlags(cmd.Flags())
	logging.AddFlags(cmd.Flags())
	cliutil.AddVersionFlag(cmd)
	return cmd
}
