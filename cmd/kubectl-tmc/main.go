package main

import (
	"os"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/tmc-dev/tmc/pkg/cliplugins/dev"
	"github.com/tmc-dev/tmc/pkg/cliplugins/pods"
	"github.com/tmc-dev/tmc/pkg/cliplugins/workload"
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
		Use:          "kubectl-tmc",
		Short:        "Register physical clusters with TMC and see what TMC is doing",
		SilenceUsage: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return logging.Apply()
		},
	}
	logging.AddFlags(cmd.PersistentFlags())
	cliutil.AddVersionFlag(cmd)
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	cmd.AddCommand(workload.NewCommand(streams), dev.NewCommand(streams),
		pods.NewLogsCommand(streams), pods.NewExecCommand(streams), pods.NewPortForwardCommand(streams))
	return cmd
}
