package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/tmc-dev/tmc/cmd/tmc-controller/options"
	"github.com/tmc-dev/tmc/pkg/cliutil"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/heartbeat"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/location"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/placement"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/release"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/resource"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/synctarget"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	"github.com/tmc-dev/tmc/pkg/workspaces"
)

func main() {
	os.Exit(run(os.Args[1:], runController))
}

// run executes the command with args and returns the exit code: 0 once a signal stopped
// the controller, 1 on any error. A lost leader-election Lease is an error, so that the
// replica restarts as a candidate instead of idling as if it had finished.
func run(args []string, runController func(context.Context, *options.Options) error) int {
	defer cliutil.InitLogs()()
	cmd := newCommand(runController)
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		return 1
	}
	return 0
}

func newCommand(runController func(context.Context, *options.Options) error) *cobra.Command {
	logging := cliutil.NewLogging()
	opts := options.NewOptions()
	cmd := &cobra.Command{
		Use:   "tmc-controller",
		Short: "Run TMC's control-plane controllers",
		Long: `tmc-controller places the namespaces of workload workspaces onto SyncTargets (through
Placements and Locations), propagates the placement to the namespaces' objects, keeps
SyncTarget.status.workspaces, Location status and SyncTarget heartbeat health up to date,
and releases the upstream objects of deleted or silent SyncTargets whose syncer does not.
With --hub the upstream is a plain Kubernetes hub, its only workspace ("hub").`,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := logging.Apply(); err != nil {
				return err
			}
			if err := opts.Validate(); err != nil {
				return err
			}
			ctx, stop := cliutil.SignalContext("tmc-controller")
			defer stop()
			return runController(ctx, opts)
		},
	}
	opts.AddFlags(cmd.Flags())
	logging.AddFlags(cmd.Flags())
	cliutil.AddVersionFlag(cmd)
	return cmd
}

// controllerSet is every controller, constructed before any informer starts.
type controllerSet struct {
	set     *workspaces.Set
	runners []func(ctx context.Context, workers int)
	// binders are the controllers of workload workspaces, which take the workspaces
	// discovered at runtime.
	binders []workspaces.Binder
}

func newControllers(opts *options.Options, set *workspaces.Set, metrics *tmc.TMCMetrics) (*controllerSet, error) {
	cs := &controllerSet{set: set}
	res, err := resource.NewController(set, opts.ParsedResources(), metrics)
	if err != nil {
		return nil, err
	}
	cs.runners = append(cs.runners, res.Run)
	pl, err := placement.NewController(set, placement.Options{
		UnhealthyGracePeriod: opts.UnhealthyGracePeriod,
		TypesInUse:           res.TypesInUse,
		Clock:                clock.RealClock{},
		Metrics:              metrics,
	})
	if err != nil {
		return nil, err
	}
	cs.runners = append(cs.runners, pl.Run)
	wsc, err := synctarget.NewWorkspacesController(set, res)
	if err != nil {
		return nil, err
	}
	cs.runners = append(cs.runners, wsc.Run)
	// A plain hub has no virtual-workspace server: status.virtualWorkspaces stays unset.
	if !opts.Hub {
		vwc, err := synctarget.NewVirtualWorkspacesController(set, opts.VirtualWorkspaceURLs, metrics)
		if err != nil {
			return nil, err
		}
		cs.runners = append(cs.runners, vwc.Run)
	}
	rel, err := release.NewController(set, res, release.Options{
		Grace:              opts.SyncTargetReleaseGrace,
		HeartbeatThreshold: opts.HeartbeatThreshold,
		Resources:          opts.ParsedResources(),
		Clock:              clock.RealClock{},
		Metrics:            metrics,
	})
	if err != nil {
		return nil, err
	}
	cs.runners = append(cs.runners, rel.Run)
	cs.binders = []workspaces.Binder{res, pl, wsc, rel}
	for _, ws := range set.Location {
		hb, err := heartbeat.NewController(ws, opts.HeartbeatThreshold, clock.RealClock{}, metrics)
		if err != nil {
			return nil, err
		}
		loc, err := location.NewController(ws, metrics)
		if err != nil {
			return nil, err
		}
		cs.runners = append(cs.runners, hb.Run, loc.Run)
	}
	return cs, nil
}

func runController(ctx context.Context, opts *options.Options) error {
	cfg, err := opts.UpstreamConfig()
	if err != nil {
		return err
	}
	set, err := newWorkspaceSet(opts, cfg)
	if err != nil {
		return err
	}
	c, err := newComponent(opts, set, cfg)
	if err != nil {
		return err
	}
	return cliutil.RunComponent(ctx, c)
}

// resync is the informers' resync period.
const resync = 10 * time.Hour

// newWorkspaceSet returns the workspaces of the flags, or with --hub the hub as the one
// location and workload workspace. Without --workspaces it holds the location workspaces
// only; the workload workspaces are discovered when the controllers run.
func newWorkspaceSet(opts *options.Options, cfg *rest.Config) (*workspaces.Set, error) {
	if opts.Hub {
		return workspaces.NewHubSet(cfg, resync)
	}
	return workspaces.NewSet(cfg, opts.LocationWorkspaces, opts.Workspaces, resync)
}

// leaseWorkspace is where the leader-election Lease lives: the first location workspace,
// or the hub.
func leaseWorkspace(opts *options.Options, set *workspaces.Set) *workspaces.Workspace {
	if opts.Hub {
		return set.Location[workspaces.HubWorkspace]
	}
	return set.Location[opts.LocationWorkspaces[0]]
}

// newComponent wires metrics, health checks and the controllers of set into the
// controller's process; with --leader-elect the Lease lives in the first location workspace.
// upstream is the upstream root, where workload workspaces are discovered without
// --workspaces.
func newComponent(opts *options.Options, set *workspaces.Set, upstream *rest.Config) (cliutil.Component, error) {
	metrics := tmc.NewTMCMetrics("tmc-controller")
	health := tmc.NewComponentHealthManager("tmc-controller", tmc.WithHealthRegisterer(metrics.Registerer()))
	synced := &syncFlag{}
	if err := errors.Join(
		health.RegisterComponent("kcp-connection", func(ctx context.Context) error {
			for _, ws := range set.All() {
				if _, err := ws.Kube.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
					return fmt.Errorf("workspace %s: %w", ws.Path, err)
				}
			}
			return nil
		}, tmc.ReadinessOnly(), tmc.WithCheckTimeout(4*time.Second)),
		health.RegisterComponent("controllers", func(context.Context) error {
			if !synced.get() {
				return errors.New("caches not synced yet")
			}
			return nil
		}, tmc.ReadinessOnly()),
	); err != nil {
		return cliutil.Component{}, err
	}
	lockWS := leaseWorkspace(opts, set)
	return cliutil.Component{
		Name:               "tmc-controller",
		MetricsBindAddress: opts.MetricsBindAddress,
		Metrics:            metrics.Handler(),
		HealthBindAddress:  opts.HealthProbeBindAddress,
		Health:             health.Handler(),
		Run: func(ctx context.Context) error {
			return runControllers(ctx, opts, set, upstream, metrics, synced)
		},
		LeaderElection: opts.Election(lockWS.Kube, opts.LeaderElectionNamespace, opts.LeaderElectionID, identity()),
	}, nil
}

// runControllers starts the informers of every workspace and runs every controller until
// ctx ends. Without --workspaces, the workspaces with a Placement at start are bound before
// the caches are waited for, and those that get one later are bound while running.
func runControllers(ctx context.Context, opts *options.Options, set *workspaces.Set, upstream *rest.Config, metrics *tmc.TMCMetrics, synced *syncFlag) error {
	cs, err := newControllers(opts, set, metrics)
	if err != nil {
		return err
	}
	if opts.DiscoverWorkspaces() {
		discovery, err := workspaces.NewDiscovery(upstream, set, resync, cs.binders...)
		if err != nil {
			return err
		}
		if err := discovery.Start(ctx); err != nil {
			return err
		}
	}
	for _, ws := range set.All() {
		ws.Start(ctx)
	}
	for _, ws := range set.All() {
		if !ws.WaitForCacheSync(ctx) {
			return fmt.Errorf("failed to sync the caches of workspace %s: %w", ws.Path, ctx.Err())
		}
	}
	synced.set(true)
	klog.FromContext(ctx).Info("Controllers started", "locationWorkspaces", sortedKeys(set.Location), "workspaces", set.WorkloadPaths(), "hub", opts.Hub, "discovery", opts.DiscoverWorkspaces())
	var wg sync.WaitGroup
	for _, r := range cs.runners {
		wg.Add(1)
		go func() { defer wg.Done(); r(ctx, opts.Workers) }()
	}
	<-ctx.Done()
	wg.Wait()
	for _, ws := range set.All() {
		ws.Shutdown()
	}
	return nil
}

func sortedKeys(m map[string]*workspaces.Workspace) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func identity() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s_%d", host, os.Getpid())
}

type syncFlag struct {
	mu sync.Mutex
	v  bool
}

func (f *syncFlag) set(v bool) { f.mu.Lock(); f.v = v; f.mu.Unlock() }
func (f *syncFlag) get() bool  { f.mu.Lock(); defer f.mu.Unlock(); return f.v }
