package localenv

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// SyncerOptions describe a workload-syncer to run against the environment.
type SyncerOptions struct {
	// Binary is the workload-syncer to run.
	Binary string
	// Name of the process, its log and its directory; default "workload-syncer-<SyncTargetName>".
	Name string
	// User is the token user the syncer authenticates as, upstream and downstream; grant it
	// with GrantSyncer.
	User string
	// Cluster is the physical cluster the syncer serves.
	Cluster string
	// Upstream and Downstream replace the syncer's configs (default: the front proxy and
	// the cluster's apiserver as User), e.g. to route it through a fault proxy.
	Upstream, Downstream *rest.Config

	// SyncTargetWorkspace, SyncTargetName and SyncTargetUID identify the SyncTarget.
	SyncTargetWorkspace, SyncTargetName, SyncTargetUID string
	// AdmissionPolicyName is the admission policy the syncer checks for SyncerConfined;
	// default the one GrantSyncer installs (SyncerRBACName).
	AdmissionPolicyName string

	// HeartbeatInterval, DownstreamNamespaceCleanDelay and DiscoveryInterval are passed
	// when set; zero keeps the syncer's defaults.
	HeartbeatInterval, DownstreamNamespaceCleanDelay, DiscoveryInterval time.Duration
	// DeletionBudgetObjects and DeletionBudgetPercent are passed when set (0 is a
	// value); DeletionBudgetWindow when non-zero. Unset keeps the syncer's defaults.
	DeletionBudgetObjects, DeletionBudgetPercent *int
	DeletionBudgetWindow                         time.Duration
	// QPS is passed when set: negative disables client-side rate limiting.
	QPS float32
	// Workers per controller; zero keeps the syncer's default.
	Workers int
	// Verbosity is the klog -v level.
	Verbosity int
	// Pprof serves /debug/pprof on a free port (the binary must have --pprof-bind-address).
	Pprof bool
	// ExtraArgs come last.
	ExtraArgs []string
	// ReadyTimeout bounds the wait for /readyz (default 90s).
	ReadyTimeout time.Duration
}

// StartSyncer runs the workload-syncer binary, tracked with the environment (stopped with
// it, its log printed on failure), and waits until it is ready. Every caller (dev, e2e,
// bench) starts syncers here.
func (env *Environment) StartSyncer(ctx context.Context, opts SyncerOptions) (*Component, error) {
	pc := env.Cluster(opts.Cluster)
	if pc == nil && opts.Downstream == nil {
		return nil, fmt.Errorf("failed to start the syncer: no physical cluster %q", opts.Cluster)
	}
	upstream, downstream := opts.Upstream, opts.Downstream
	if upstream == nil {
		upstream = env.UpstreamConfig(opts.User)
	}
	if downstream == nil {
		downstream = pc.Config(opts.User)
	}
	name := opts.Name
	if name == "" {
		name = "workload-syncer-" + opts.SyncTargetName
	}
	policyName := opts.AdmissionPolicyName
	if policyName == "" {
		policyName = SyncerRBACName(opts.SyncTargetName)
	}
	args := []string{
		"--sync-target-workspace=" + opts.SyncTargetWorkspace,
		"--sync-target-name=" + opts.SyncTargetName,
		"--admission-policy-name=" + policyName,
	}
	if opts.SyncTargetUID != "" {
		args = append(args, "--sync-target-uid="+opts.SyncTargetUID)
	}
	args = durationArg(args, "heartbeat-interval", opts.HeartbeatInterval)
	args = durationArg(args, "downstream-namespace-clean-delay", opts.DownstreamNamespaceCleanDelay)
	args = durationArg(args, "discovery-interval", opts.DiscoveryInterval)
	args = durationArg(args, "deletion-budget-window", opts.DeletionBudgetWindow)
	if opts.DeletionBudgetObjects != nil {
		args = append(args, "--deletion-budget-objects="+strconv.Itoa(*opts.DeletionBudgetObjects))
	}
	if opts.DeletionBudgetPercent != nil {
		args = append(args, "--deletion-budget-percent="+strconv.Itoa(*opts.DeletionBudgetPercent))
	}
	args = qpsArg(args, opts.QPS)
	if opts.Workers > 0 {
		args = append(args, "--workers="+strconv.Itoa(opts.Workers))
	}
	args = append(append(args, verbosityArg(opts.Verbosity)), opts.ExtraArgs...)
	c, err := env.startComponent(ctx, componentSpec{
		name:   name,
		binary: opts.Binary,
		kubeconfigs: []kubeconfigFlag{
			{flag: "upstream-kubeconfig", cfg: upstream},
			{flag: "downstream-kubeconfig", cfg: downstream},
		},
		args:    args,
		pprof:   opts.Pprof,
		timeout: opts.ReadyTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to start the syncer of SyncTarget %s: %w", opts.SyncTargetName, err)
	}
	return c, nil
}

// ControllerOptions describe a tmc-controller to run against the environment.
type ControllerOptions struct {
	// Binary is the tmc-controller to run.
	Binary string
	// Name of the process, its log and its directory; default "tmc-controller".
	Name string
	// User is the token user the controller authenticates as; grant it with
	// GrantController. Without Workspaces (and without Hub) it defaults to ShardAdminUser:
	// the controller then discovers the workload workspaces and needs no grant in them.
	User string
	// LocationWorkspaces hold SyncTargets and Locations; Workspaces hold Placements. No
	// Workspaces: the controller discovers every workspace with a Placement.
	LocationWorkspaces, Workspaces []string
	// Hub runs the controller with --hub instead of workspace lists (see Hub.StartController).
	Hub bool
	// Upstream replaces the controller's config (default: the front proxy as User).
	Upstream *rest.Config
	// HeartbeatThreshold, UnhealthyGracePeriod and SyncTargetReleaseGrace are passed when
	// set.
	HeartbeatThreshold, UnhealthyGracePeriod, SyncTargetReleaseGrace time.Duration
	// QPS is passed when set: negative disables client-side rate limiting.
	QPS float32
	// Verbosity is the klog -v level.
	Verbosity int
	// ExtraArgs come last.
	ExtraArgs []string
	// ReadyTimeout bounds the wait for /readyz (default 90s).
	ReadyTimeout time.Duration
}

// StartController runs the tmc-controller binary, tracked with the environment, and waits
// until it is ready.
func (env *Environment) StartController(ctx context.Context, opts ControllerOptions) (*Component, error) {
	name := opts.Name
	if name == "" {
		name = "tmc-controller"
	}
	args := []string{"--hub"}
	user := opts.User
	if !opts.Hub {
		args = []string{"--location-workspaces=" + strings.Join(opts.LocationWorkspaces, ",")}
		if len(opts.Workspaces) > 0 {
			args = append(args, "--workspaces="+strings.Join(opts.Workspaces, ","))
		} else if user == "" {
			user = ShardAdminUser
		}
	}
	upstream := opts.Upstream
	if upstream == nil {
		upstream = env.UpstreamConfig(user)
	}
	args = durationArg(args, "heartbeat-threshold", opts.HeartbeatThreshold)
	args = durationArg(args, "unhealthy-grace-period", opts.UnhealthyGracePeriod)
	args = durationArg(args, "synctarget-release-grace", opts.SyncTargetReleaseGrace)
	args = qpsArg(args, opts.QPS)
	args = append(append(args, verbosityArg(opts.Verbosity)), opts.ExtraArgs...)
	c, err := env.startComponent(ctx, componentSpec{
		name:        name,
		binary:      opts.Binary,
		kubeconfigs: []kubeconfigFlag{{flag: "upstream-kubeconfig", cfg: upstream}},
		args:        args,
		timeout:     opts.ReadyTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to start the tmc-controller: %w", err)
	}
	return c, nil
}
