package pods

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"k8s.io/kubectl/pkg/cmd/exec"
	"k8s.io/kubectl/pkg/cmd/logs"
	"k8s.io/kubectl/pkg/cmd/portforward"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
)

// VirtualWorkspaceURLFlag names the flag with the virtual-workspace server's URL.
const VirtualWorkspaceURLFlag = "virtual-workspace-url"

// NewLogsCommand returns `kubectl tmc logs`: kubectl logs through the pod-access view.
func NewLogsCommand(streams genericiooptions.IOStreams) *cobra.Command {
	return newPodCommand(streams, logs.NewCmdLogs)
}

// NewExecCommand returns `kubectl tmc exec`: kubectl exec through the pod-access view.
func NewExecCommand(streams genericiooptions.IOStreams) *cobra.Command {
	return newPodCommand(streams, exec.NewCmdExec)
}

// NewPortForwardCommand returns `kubectl tmc port-forward`: kubectl port-forward through the
// pod-access view.
func NewPortForwardCommand(streams genericiooptions.IOStreams) *cobra.Command {
	return newPodCommand(streams, portforward.NewCmdPortForward)
}

// viewTarget is the pod-access view's URL the commands' requests go to, set before they run.
type viewTarget struct {
	configFlags *genericclioptions.ConfigFlags
	vwURL       string
	url         string
}

// wrap points cfg at the pod-access view once it is known (completion runs without it and
// reaches the workspace itself).
func (v *viewTarget) wrap(cfg *rest.Config) *rest.Config {
	if v.url == "" {
		return cfg
	}
	cfg = rest.CopyConfig(cfg)
	cfg.Host = v.url
	cfg.APIPath = ""
	return cfg
}

// resolve computes the pod-access view's URL from the kubeconfig's server URL (the current
// workspace) and --virtual-workspace-url or the workspace's SyncTargets.
func (v *viewTarget) resolve(cmd *cobra.Command) error {
	workspaceConfig, err := v.configFlags.ToRawKubeConfigLoader().ClientConfig()
	if err != nil {
		return fmt.Errorf("failed to load the kubeconfig: %w", err)
	}
	workspace, err := workspaceOf(workspaceConfig.Host)
	if err != nil {
		return err
	}
	vw := v.vwURL
	if vw == "" {
		if vw, err = virtualWorkspaceFromSyncTargets(cmd.Context(), workspaceConfig); err != nil {
			return err
		}
	}
	v.url, err = podAccessURL(vw, workspace)
	return err
}

// newPodCommand builds kubectl's command with the kubeconfig flags and the pod-access view.
func newPodCommand(streams genericiooptions.IOStreams, newKubectlCmd func(cmdutil.Factory, genericiooptions.IOStreams) *cobra.Command) *cobra.Command {
	target := &viewTarget{configFlags: genericclioptions.NewConfigFlags(true).WithDeprecatedPasswordFlag().WithDiscoveryBurst(300).WithDiscoveryQPS(50.0)}
	target.configFlags.WrapConfigFn = target.wrap
	matchVersionFlags := cmdutil.NewMatchVersionFlags(target.configFlags)
	cmd := newKubectlCmd(cmdutil.NewFactory(matchVersionFlags), streams)

	target.configFlags.AddFlags(cmd.Flags())
	matchVersionFlags.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&target.vwURL, VirtualWorkspaceURLFlag, "",
		"URL of the virtual-workspace server (e.g. https://vw.example:6444); default: the server of the current workspace's SyncTargets' status.virtualWorkspaces")

	name := cmd.Name()
	cmd.Short += ", through TMC's virtual-workspace server"
	cmd.Long = fmt.Sprintf("Run kubectl %s on the pods of your workloads on physical clusters: the requests go to the\n"+
		"virtual-workspace server's pod-access view of the current workspace,\n"+
		"<virtual-workspace-url>/services/pods/clusters/<workspace>, which reaches the pod through\n"+
		"the syncer of its physical cluster. Needs kcp mode and the virtual-workspace server.\n\n", name) + cmd.Long
	cmd.Example = strings.ReplaceAll(cmd.Example, "kubectl "+name, "kubectl tmc "+name)
	prerun := cmd.PreRunE
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		if err := target.resolve(cmd); err != nil {
			return fmt.Errorf("kubectl tmc %s: %w", name, err)
		}
		if prerun != nil {
			return prerun(cmd, args)
		}
		return nil
	}
	return cmd
}
