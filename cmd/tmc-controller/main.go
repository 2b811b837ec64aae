// Command tmc-controller runs TMC's control-plane controllers: placement of namespaces onto
// SyncTargets, Location status, SyncTarget heartbeat health, label propagation from
// namespaces to their objects, and SyncTarget.status.workspaces.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/tmc-dev/tmc/cmd/tmc-controller/options"
	"github.com/tmc-dev/tmc/pkg/cliutil"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/heartbeat"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/location"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/placement"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/resource"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/synctarget"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	"github.com/tmc-dev/tmc/pkg/workspaces"
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
		Use:   "tmc-controller",
		Short: "Run TMC's control-plane controllers",
		Long: `tmc-controller places the namespaces of workload workspaces onto SyncTargets (through
Placements and Locations), propagates the placement to the namespaces' objects, keeps
SyncTarget.status.workspaces, Location status and SyncTarget heartbeat health up to date.`,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := logging.Apply(); err != nil {
				return err
			}
			if err := opts.Validate(); err != nil {
				return err
			}
			ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer cancel()
			ctx = klog.NewContext(ctx, klog.Background().WithName("tmc-controller"))
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
	logger := klog.FromContext(ctx)
	cfg, err := opts.UpstreamConfig()
	if err != nil {
		return err
	}
	metrics := tmc.NewTMCMetrics("tmc-controller")
	health := tmc.NewComponentHealthManager("tmc-controller", tmc.WithHealthRegisterer(metrics.Registerer()))

	set, err := workspaces.NewSet(cfg, opts.LocationWorkspaces, opts.Workspaces, 10*time.Hour)
	if err != nil {
		return err
	}
	var synced syncFlag
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
		return err
	}
	servers, err := serve(ctx, opts, metrics, health)
	if err != nil {
		return err
	}
	defer servers.Shutdown()

	runAll := func(ctx context.Context) error {
		cs, err := newControllers(opts, set, metrics)
		if err != nil {
			return err
		}
		for _, ws := range set.All() {
			ws.Start(ctx)
		}
		for _, ws := range set.All() {
			if !ws.WaitForCacheSync(ctx) {
				return fmt.Errorf("caches of workspace %s did not sync", ws.Path)
			}
		}
		synced.set(true)
		logger.Info("Controllers started", "locationWorkspaces", opts.LocationWorkspaces, "workspaces", opts.Workspaces)
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
	if !opts.LeaderElect {
		return runAll(ctx)
	}
	lockWS := set.Location[opts.LocationWorkspaces[0]]
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, opts.LeaderElectionNamespace, opts.LeaderElectionID,
		lockWS.Kube.CoreV1(), lockWS.Kube.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: identity()})
	if err != nil {
		return fmt.Errorf("failed to create the leader-election lock: %w", err)
	}
	errCh := make(chan error, 1)
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   15 * time.Second,
		RenewDeadline:   10 * time.Second,
		RetryPeriod:     2 * time.Second,
		ReleaseOnCancel: true,
		Name:            opts.LeaderElectionID,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) { errCh <- runAll(ctx) },
			OnStoppedLeading: func() { logger.Info("Lost leadership") },
		},
	})
	select {
	case err := <-errCh:
		return err
	default:
		return ctx.Err()
	}
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

func serve(ctx context.Context, opts *options.Options, metrics *tmc.TMCMetrics, health *tmc.ComponentHealthManager) (cliutil.Servers, error) {
	var servers cliutil.Servers
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler())
	if err := servers.Serve(ctx, opts.MetricsBindAddress, mux, "metrics"); err != nil {
		return nil, err
	}
	if err := servers.Serve(ctx, opts.HealthProbeBindAddress, health.Handler(), "health probes"); err != nil {
		servers.Shutdown()
		return nil, err
	}
	return servers, nil
}
