package inspect

import (
	"fmt"
	"net/url"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
)

// hubWorkspace names the only workspace of a plain Kubernetes hub (an upstream URL without
// /clusters/). It is the name the workload-syncer uses, so that SyncTarget keys and
// downstream namespaces computed here match the syncer's.
const hubWorkspace = "hub"

// upstream connects to the workspace of the current kubeconfig context and to other
// workspaces of the same upstream. Commands get one so that tests can hand them fakes.
type upstream interface {
	// workspace returns the logical-cluster path of the current workspace ("hub" for a
	// plain Kubernetes hub).
	workspace() (string, error)
	// tmcClient returns a TMC client for the workspace at path; "" means the current one.
	tmcClient(path string) (tmcclient.Interface, error)
	// dynamicClient returns a dynamic client for the current workspace.
	dynamicClient() (dynamic.Interface, error)
	// restMapper returns a RESTMapper of the current workspace that knows short names.
	restMapper() (meta.RESTMapper, error)
	// namespace returns the namespace of -n, or else of the current context.
	namespace() (string, error)
}

// kubeconfigUpstream implements upstream with the standard kubectl flags.
type kubeconfigUpstream struct {
	flags *genericclioptions.ConfigFlags
}

var _ upstream = &kubeconfigUpstream{}

func (k *kubeconfigUpstream) config() (*rest.Config, error) {
	cfg, err := k.flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("failed to load the upstream kubeconfig: %w", err)
	}
	return cfg, nil
}

func (k *kubeconfigUpstream) workspace() (string, error) {
	cfg, err := k.config()
	if err != nil {
		return "", err
	}
	return workspaceOf(cfg.Host)
}

func (k *kubeconfigUpstream) tmcClient(path string) (tmcclient.Interface, error) {
	cfg, err := k.config()
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	current, err := workspaceOf(cfg.Host)
	if err != nil {
		return nil, err
	}
	if path != "" && path != current {
		p, err := logicalcluster.ParsePath(path)
		if err != nil {
			return nil, err
		}
		if cfg.Host, err = logicalcluster.WorkspaceURL(cfg.Host, p); err != nil {
			return nil, err
		}
	}
	c, err := tmcclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create a client for workspace %q: %w", path, err)
	}
	return c, nil
}

func (k *kubeconfigUpstream) dynamicClient() (dynamic.Interface, error) {
	cfg, err := k.config()
	if err != nil {
		return nil, err
	}
	c, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create the upstream client: %w", err)
	}
	return c, nil
}

func (k *kubeconfigUpstream) restMapper() (meta.RESTMapper, error) {
	m, err := k.flags.ToRESTMapper()
	if err != nil {
		return nil, fmt.Errorf("failed to discover the upstream resource types: %w", err)
	}
	return m, nil
}

func (k *kubeconfigUpstream) namespace() (string, error) {
	ns, _, err := k.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("failed to determine the namespace: %w", err)
	}
	return ns, nil
}

// workspaceOf returns the workspace a server URL points at: the path after /clusters/, or
// "hub" for a plain Kubernetes API server.
func workspaceOf(host string) (string, error) {
	u, err := url.Parse(host)
	if err != nil {
		return "", fmt.Errorf("failed to parse the server URL %q: %w", host, err)
	}
	_, p := logicalcluster.SplitClusterURL(u.Path)
	if p.Empty() {
		return hubWorkspace, nil
	}
	return p.String(), nil
}

// newUpstreamFlags returns the kubectl connection flags. Commands on cluster-scoped
// SyncTargets do without --namespace.
func newUpstreamFlags(namespaced bool) *genericclioptions.ConfigFlags {
	flags := genericclioptions.NewConfigFlags(true)
	if !namespaced {
		flags.Namespace = nil
	}
	return flags
}

// downstreamDynamic returns a dynamic client for the physical cluster of kubeconfig (and
// context, if set).
func downstreamDynamic(kubeconfig, context string) (dynamic.Interface, error) {
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: context})
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("failed to load the downstream kubeconfig %q: %w", kubeconfig, err)
	}
	c, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create the downstream client: %w", err)
	}
	return c, nil
}
