package workload

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/tmc-dev/tmc/pkg/cliplugins/workload/inspect"
	"github.com/tmc-dev/tmc/pkg/cliplugins/workload/sync"
)

// NewCommand returns `kubectl tmc workload`.
func NewCommand(streams genericiooptions.IOStreams, extra ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "workload",
		Short: "Register physical clusters, inspect SyncTargets, preview, drain and resume paused deletions",
	}
	cmd.AddCommand(
		sync.NewCommand(streams),
		inspect.NewStatusCommand(streams),
		inspect.NewCordonCommand(streams),
		inspect.NewUncordonCommand(streams),
		inspect.NewDrainCommand(streams),
		inspect.NewResumeDeletionsCommand(streams),
		inspect.NewPreviewCommand(streams),
	)
	cmd.AddCommand(extra...)
	return cmd
}
