package options

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer"
	"github.com/tmc-dev/tmc/pkg/version"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
)

// userAgent is the user agent of the syncer's clients on both sides.
func userAgent() string { return "workload-syncer/" + version.Get().GitVersion }

// Config validates the options and turns them into a syncer.Config: kubeconfigs loaded (the
// upstream server URL reduced to its root), QPS, burst and user agent applied to both sides,
// paths and resources parsed, leader election and pod name resolved from the environment.
func (o *Options) Config() (*syncer.Config, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}

	upstreamConfig, err := loadKubeconfig(o.UpstreamKubeconfig, o.UpstreamContext)
	if err != nil {
		return nil, fmt.Errorf("failed to load --upstream-kubeconfig %q: %w", o.UpstreamKubeconfig, err)
	}
	syncTargetWorkspace, err := o.resolveUpstreamRoot(upstreamConfig)
	if err != nil {
		return nil, err
	}

	downstreamConfig, err := o.downstreamConfig()
	if err != nil {
		return nil, err
	}

	agent := userAgent()
	for _, cfg := range []*rest.Config{upstreamConfig, downstreamConfig} {
		cfg.QPS = o.QPS
		cfg.Burst = o.Burst
		cfg.UserAgent = agent
	}

	// Already validated: the parse errors cannot occur here.
	resources, _ := parseResources(o.Resources)
	workspaces, _ := parseWorkspaces(o.Workspaces)
	if syncTargetWorkspace.Empty() && syncer.UpstreamMode(o.UpstreamMode) == syncer.UpstreamModeVirtualWorkspace {
		return nil, errors.New("--upstream-mode=virtual-workspace needs a kcp upstream (--sync-target-workspace or a server URL ending in /clusters/<path>): a plain Kubernetes hub is reached directly")
	}
	if len(workspaces) > 0 && syncer.UpstreamMode(o.UpstreamMode) == syncer.UpstreamModeVirtualWorkspace {
		return nil, errors.New("--workspaces lists workspaces to reach directly: it cannot be combined with --upstream-mode=virtual-workspace")
	}
	if len(workspaces) > 0 && syncTargetWorkspace.Empty() {
		return nil, errors.New("--workspaces needs --sync-target-workspace (or an upstream server URL ending in /clusters/<path>): a plain Kubernetes hub is a single workspace")
	}

	config := &syncer.Config{
		UpstreamConfig:                upstreamConfig,
		SyncTargetWorkspace:           syncTargetWorkspace,
		SyncTargetName:                o.SyncTargetName,
		SyncTargetUID:                 o.SyncTargetUID,
		AdmissionPolicyName:           o.AdmissionPolicyName,
		DownstreamConfig:              downstreamConfig,
		Resources:                     resources,
		Workspaces:                    workspaces,
		UpstreamMode:                  syncer.UpstreamMode(o.UpstreamMode),
		Tunnel:                        o.Tunnel,
		Workers:                       o.Workers,
		HeartbeatInterval:             o.HeartbeatInterval,
		DownstreamNamespaceCleanDelay: o.DownstreamNamespaceCleanDelay,
		ResyncPeriod:                  o.ResyncPeriod,
		DiscoveryInterval:             o.DiscoveryInterval,
		DeletionBudget: &syncer.DeletionBudget{
			Objects: o.DeletionBudgetObjects,
			Percent: o.DeletionBudgetPercent,
			Window:  o.DeletionBudgetWindow,
		},
		MetricsBindAddress:     o.MetricsBindAddress,
		HealthProbeBindAddress: o.HealthProbeBindAddress,
		PodName:                o.podName(),
	}
	if o.LeaderElect {
		config.LeaderElection = &syncer.LeaderElectionConfig{
			Namespace: o.leaderElectionNamespace(),
			Name:      o.leaderElectionID(),
			// Unique per process, as client-go's examples do, so that two syncers sharing a
			// host name (outside a cluster) never both believe they hold the lease.
			Identity:      hostIdentity() + "_" + string(uuid.NewUUID()),
			LeaseDuration: o.LeaseDuration,
			RenewDeadline: o.RenewDeadline,
			RetryPeriod:   o.RetryPeriod,
		}
	}
	return config, nil
}

// loadKubeconfig reads exactly the file at path (never $KUBECONFIG or ~/.kube/config) and
// returns the rest config of context, or of the file's current context when context is empty.
// Unlike clientcmd's deferred loading it never falls back to the in-cluster config, which
// would silently talk to the wrong cluster when the file is empty.
func loadKubeconfig(path, context string) (*rest.Config, error) {
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: path}
	kubeconfig, err := rules.Load()
	if err != nil {
		return nil, err
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: context}
	return clientcmd.NewNonInteractiveClientConfig(*kubeconfig, context, overrides, rules).ClientConfig()
}

// resolveUpstreamRoot strips "/clusters/<path>" from the upstream server URL, because the
// syncer adds it per workspace itself, and returns the location workspace: the flag, else the
// path found in the URL, else empty (a plain Kubernetes hub).
func (o *Options) resolveUpstreamRoot(upstreamConfig *rest.Config) (logicalcluster.Path, error) {
	var syncTargetWorkspace logicalcluster.Path
	if o.SyncTargetWorkspace != "" {
		syncTargetWorkspace = logicalcluster.NewPath(o.SyncTargetWorkspace) // validated
	}
	if !strings.Contains(upstreamConfig.Host, logicalcluster.ClustersPrefix) {
		return syncTargetWorkspace, nil
	}

	u, err := url.Parse(upstreamConfig.Host)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return logicalcluster.Path{}, fmt.Errorf("--upstream-kubeconfig: server %q is not an absolute URL (scheme://host[:port]/...)", upstreamConfig.Host)
	}
	root, urlWorkspace := logicalcluster.SplitClusterURL(u.Path)
	if syncTargetWorkspace.Empty() {
		if err := urlWorkspace.Validate(); err != nil {
			return logicalcluster.Path{}, fmt.Errorf("--sync-target-workspace is not set and the upstream server URL %q names no valid workspace: %w", upstreamConfig.Host, err)
		}
		syncTargetWorkspace = urlWorkspace
	}
	u.Path = strings.TrimSuffix(root, "/")
	u.RawPath = ""
	upstreamConfig.Host = u.String()
	return syncTargetWorkspace, nil
}

// downstreamConfig loads --downstream-kubeconfig, or the in-cluster config when it is empty.
func (o *Options) downstreamConfig() (*rest.Config, error) {
	if o.DownstreamKubeconfig != "" {
		cfg, err := loadKubeconfig(o.DownstreamKubeconfig, o.DownstreamContext)
		if err != nil {
			return nil, fmt.Errorf("failed to load --downstream-kubeconfig %q: %w", o.DownstreamKubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if errors.Is(err, rest.ErrNotInCluster) {
		return nil, fmt.Errorf("--downstream-kubeconfig is not set and the syncer is not running in a pod (%w): set --downstream-kubeconfig to reach the physical cluster", err)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to load the in-cluster config of the physical cluster (set --downstream-kubeconfig to use a kubeconfig instead): %w", err)
	}
	return cfg, nil
}

// podNamespace is the namespace of the syncer's pod: POD_NAMESPACE, else the
// service-account namespace file, else empty (not in a pod).
func (o *Options) podNamespace() string {
	if ns := strings.TrimSpace(os.Getenv(podNamespaceEnv)); ns != "" {
		return ns
	}
	file := o.serviceAccountNamespaceFile
	if file == "" {
		file = defaultServiceAccountNamespaceFile
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

func (o *Options) leaderElectionNamespace() string {
	if o.LeaderElectionNamespace != "" {
		return o.LeaderElectionNamespace
	}
	return o.podNamespace()
}

func (o *Options) leaderElectionID() string {
	if o.LeaderElectionID != "" {
		return o.LeaderElectionID
	}
	return DefaultLeaderElectionIDPrefix + o.SyncTargetName
}

// podName is PodName, else "<namespace>/<name>" from the downward API, else the host name.
func (o *Options) podName() string {
	if o.PodName != "" {
		return o.PodName
	}
	if name := strings.TrimSpace(os.Getenv(podNameEnv)); name != "" {
		if ns := o.podNamespace(); ns != "" {
			return ns + "/" + name
		}
		return name
	}
	return hostIdentity()
}

// hostIdentity is the pod name from the downward API, else the host name (which is the pod
// name in a pod too).
func hostIdentity() string {
	if name := strings.TrimSpace(os.Getenv(podNameEnv)); name != "" {
		return name
	}
	if host, err := os.Hostname(); err == nil && host != "" {
		return host
	}
	return "unknown"
}
