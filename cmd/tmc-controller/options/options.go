package options

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tmc-dev/tmc/pkg/cliutil"
	"github.com/tmc-dev/tmc/pkg/version"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// Options are the tmc-controller's flags.
type Options struct {
	UpstreamKubeconfig string
	UpstreamContext    string
	// Hub says the upstream is a plain Kubernetes hub (no /clusters/ URLs): its one cluster
	// is both the location and the workload workspace, named "hub" as the workload-syncer
	// names it in hub mode, and neither workspace list is given.
	Hub bool
	// LocationWorkspaces hold SyncTargets and Locations.
	LocationWorkspaces []string
	// Workspaces are the workload workspaces whose Placements and namespaces are handled.
	// Empty (without Hub): every workspace with a Placement is found through the
	// upstream's wildcard endpoint and bound at runtime (workspaces.Discovery).
	Workspaces []string
	Resources  []string
	// VirtualWorkspaceURLs are the virtual-workspace servers' base URLs, one per shard,
	// written into every SyncTarget's status.virtualWorkspaces in this order.
	VirtualWorkspaceURLs []string

	HeartbeatThreshold   time.Duration
	UnhealthyGracePeriod time.Duration
	// SyncTargetReleaseGrace is how long the syncer of a deleted SyncTarget, or of one past
	// its heartbeat threshold, has to release its upstream objects before the controller
	// releases them itself.
	SyncTargetReleaseGrace time.Duration
	Workers                int
	QPS                    float32
	Burst                  int

	MetricsBindAddress     string
	HealthProbeBindAddress string

	// LeaderElectionFlags elect a leader through a Lease in the first location workspace.
	cliutil.LeaderElectionFlags
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	return &Options{
		HeartbeatThreshold:     60 * time.Second,
		UnhealthyGracePeriod:   5 * time.Minute,
		SyncTargetReleaseGrace: 5 * time.Minute,
		Workers:                4,
		QPS:                    50,
		Burst:                  100,
		MetricsBindAddress:     ":8090",
		HealthProbeBindAddress: ":8091",
		LeaderElectionFlags:    cliutil.NewLeaderElectionFlags("kube-system", "tmc-controller"),
	}
}

// AddFlags binds the options to fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.UpstreamKubeconfig, "upstream-kubeconfig", o.UpstreamKubeconfig, "Kubeconfig of the control plane (the root of a kcp front proxy; a /clusters/<path> suffix is removed). Required.")
	fs.StringVar(&o.UpstreamContext, "upstream-context", o.UpstreamContext, "Context of --upstream-kubeconfig to use instead of its current context.")
	fs.BoolVar(&o.Hub, "hub", o.Hub, `The upstream is a plain Kubernetes hub, not kcp: the hub holds SyncTargets, Locations, Placements and workloads, and is the workspace "hub" (Placements name it in spec.locationWorkspace). Excludes --location-workspaces and --workspaces.`)
	fs.StringSliceVar(&o.LocationWorkspaces, "location-workspaces", o.LocationWorkspaces, "Location workspaces holding SyncTargets and Locations, e.g. root:org:locations. Required unless --hub.")
	fs.StringSliceVar(&o.Workspaces, "workspaces", o.Workspaces, "Workload workspaces whose Placements and namespaces are scheduled, exactly these. Empty: every workspace with a Placement, found through the upstream's wildcard endpoint /clusters/* (needs a privileged identity, e.g. a kcp shard admin) and bound while running, under its logical-cluster name.")
	fs.StringSliceVar(&o.Resources, "resources", o.Resources, "Resource types whose objects follow their namespace's placement (resource[.group]); default: the SyncTarget default set.")
	fs.DurationVar(&o.HeartbeatThreshold, "heartbeat-threshold", o.HeartbeatThreshold, "A SyncTarget whose syncer has not sent a heartbeat for this long is HeartbeatHealthy=False.")
	fs.DurationVar(&o.UnhealthyGracePeriod, "unhealthy-grace-period", o.UnhealthyGracePeriod, "Namespaces are moved away from a SyncTarget that has not been Ready for this long.")
	fs.DurationVar(&o.SyncTargetReleaseGrace, "synctarget-release-grace", o.SyncTargetReleaseGrace, "The syncer of a deleted SyncTarget has this long (from the deletionTimestamp) to release its upstream objects, and a syncer silent for longer than the heartbeat threshold this long more to complete the removals asked of it; then the controller releases them itself and records where copies may remain.")
	fs.IntVar(&o.Workers, "workers", o.Workers, "Workers per controller.")
	fs.Float32Var(&o.QPS, "qps", o.QPS, "Queries per second to the control plane; negative disables client-side rate limiting.")
	fs.IntVar(&o.Burst, "burst", o.Burst, "Burst of queries to the control plane.")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, `Address (host:port) serving /metrics; "0" disables it.`)
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress, `Address (host:port) serving /healthz, /livez and /readyz; "0" disables it.`)
	o.addVirtualWorkspaceFlags(fs)
	o.LeaderElectionFlags.AddFlags(fs, cliutil.LeaderElectionUsage{Lease: "in the first location workspace"})
}

// Validate reports every problem with the flags, each naming its flag.
func (o *Options) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.UpstreamKubeconfig == "" {
		add("--upstream-kubeconfig is required")
	} else if _, err := os.Stat(o.UpstreamKubeconfig); err != nil {
		add("--upstream-kubeconfig: %v", err)
	}
	switch {
	case o.Hub && (len(o.LocationWorkspaces) > 0 || len(o.Workspaces) > 0):
		add("--hub excludes --location-workspaces and --workspaces: a plain hub is the only workspace")
	case o.Hub:
	case len(o.LocationWorkspaces) == 0:
		add("--location-workspaces is required")
	}
	for _, p := range o.LocationWorkspaces {
		if _, err := logicalcluster.ParsePath(p); err != nil {
			add("--location-workspaces: %v", err)
		}
	}
	for _, p := range o.Workspaces {
		if _, err := logicalcluster.ParsePath(p); err != nil {
			add("--workspaces: %v", err)
		}
	}
	for _, r := range o.Resources {
		if _, err := workloadv1alpha1.ParseResourceToSync(r); err != nil {
			add("--resources: %v", err)
		}
	}
	if o.HeartbeatThreshold < time.Second {
		add("--heartbeat-threshold must be at least 1s, got %s", o.HeartbeatThreshold)
	}
	if o.UnhealthyGracePeriod < 0 {
		add("--unhealthy-grace-period must not be negative, got %s", o.UnhealthyGracePeriod)
	}
	if o.SyncTargetReleaseGrace < 0 {
		add("--synctarget-release-grace must not be negative, got %s", o.SyncTargetReleaseGrace)
	}
	if o.Workers < 1 {
		add("--workers must be at least 1, got %d", o.Workers)
	}
	if o.QPS == 0 {
		add("--qps must not be 0 (negative disables rate limiting)")
	}
	for flag, addr := range map[string]string{"--metrics-bind-address": o.MetricsBindAddress, "--health-probe-bind-address": o.HealthProbeBindAddress} {
		if addr == "0" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			add("%s must be host:port or \"0\": %v", flag, err)
		}
	}
	if o.LeaderElect && (o.LeaderElectionNamespace == "" || o.LeaderElectionID == "") {
		add("--leader-election-namespace and --leader-election-id must be set with --leader-elect")
	}
	errs = append(errs, o.validateVirtualWorkspaceURLs()...)
	errs = append(errs, o.LeaderElectionFlags.Validate()...)
	return errors.Join(errs...)
}

// UpstreamConfig loads the upstream kubeconfig and returns the config of the front proxy's
// root, or of the hub itself with --hub.
func (o *Options) UpstreamConfig() (*rest.Config, error) {
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: o.UpstreamKubeconfig}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: o.UpstreamContext}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("failed to load --upstream-kubeconfig: %w", err)
	}
	if o.Hub {
		if _, ws := logicalcluster.SplitClusterURL(hostPath(cfg.Host)); !ws.Empty() {
			return nil, fmt.Errorf("--hub: the upstream server %s is a kcp workspace URL (/clusters/%s), not a plain hub", cfg.Host, ws)
		}
	} else {
		root, err := rootURL(cfg.Host)
		if err != nil {
			return nil, fmt.Errorf("--upstream-kubeconfig: %w", err)
		}
		cfg.Host = root
	}
	cfg.QPS, cfg.Burst = o.QPS, o.Burst
	cfg.UserAgent = "tmc-controller/" + version.Get().GitVersion
	return cfg, nil
}

// rootURL removes a /clusters/<path> suffix from a server URL.
func rootURL(host string) (string, error) {
	u, err := logicalcluster.WorkspaceURL(host, logicalcluster.NewPath("x"))
	if err != nil {
		return "", err
	}
	return u[:len(u)-len("/clusters/x")], nil
}

// hostPath returns the path of a server URL, "" if it does not parse (the client fails on
// it later with a clearer error).
func hostPath(host string) string {
	u, err := url.Parse(host)
	if err != nil {
		return ""
	}
	return u.Path
}

// DiscoverWorkspaces reports whether workload workspaces are found at runtime: no --hub and
// no --workspaces.
func (o *Options) DiscoverWorkspaces() bool { return !o.Hub && len(o.Workspaces) == 0 }

// ParsedResources returns --resources parsed (nil when unset).
func (o *Options) ParsedResources() []workloadv1alpha1.ResourceToSync {
	var out []workloadv1alpha1.ResourceToSync
	for _, r := range o.Resources {
		if rs, err := workloadv1alpha1.ParseResourceToSync(r); err == nil {
			out = append(out, rs)
		}
	}
	return out
}
