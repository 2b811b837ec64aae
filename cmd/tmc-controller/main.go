// Command tmc-controller is TMC's control-plane controller: placement, locations and SyncTarget health.
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
		Use:           "tmc-controller",
		Short:         "Run TMC's control-plane controllers",
		SilenceUsage:  true,
		SilenceErrors: false,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := logging.Apply(); err != nil {
				return err
			}
			return errors.New("tmc-controller: the controllers are not part of this build yet")
		},
	}
	logging.AddFlags(cmd.Flags())
	cliutil.AddVersionFlag(cmd)
	return cmd
}
