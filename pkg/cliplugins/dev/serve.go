package dev

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"

	"github.com/tmc-dev/tmc/pkg/localenv"
	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
)

// serveOptions are the flags of the hidden `dev serve`, which `dev up` starts in the
// background.
type serveOptions struct {
	dir          string
	clusters     int
	binDir       string
	setupTimeout time.Duration
}

func newServeCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &serveOptions{clusters: 2, setupTimeout: 10 * time.Minute}
	cmd := &cobra.Command{
		Use:    "serve",
		Short:  "Run the local environment in the foreground (started by 'dev up')",
		Hidden: true,
		Args:   cobra.NoArgs,
		// The failure is logged with the state; once is enough.
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkPlatform(); err != nil {
				_, _ = fmt.Fprintf(streams.ErrOut, "Error: %v\n", err)
				return err
			}
			if err := o.complete(); err != nil {
				_, _ = fmt.Fprintf(streams.ErrOut, "Error: %v\n", err)
				return err
			}
			return o.run(cmd.Context(), streams.Out)
		},
	}
	cmd.Flags().StringVar(&o.dir, "dir", defaultDir, "Directory of the environment.")
	cmd.Flags().IntVar(&o.clusters, "clusters", o.clusters, "Number of physical clusters (1 or 2).")
	cmd.Flags().StringVar(&o.binDir, "bin-dir", "", "Directory holding workload-syncer and tmc-controller (default <dir>/bin).")
	cmd.Flags().DurationVar(&o.setupTimeout, "setup-timeout", o.setupTimeout, "Give up if set-up takes longer.")
	return cmd
}

func (o *serveOptions) complete() error {
	if err := validateClusters(o.clusters); err != nil {
		return err
	}
	abs, err := filepath.Abs(o.dir)
	if err != nil {
		return fmt.Errorf("failed to resolve --dir: %w", err)
	}
	o.dir = abs
	if o.binDir == "" {
		o.binDir = filepath.Join(o.dir, "bin")
	}
	return nil
}

// server runs one environment and keeps state.json up to date.
type server struct {
	opts  *serveOptions
	out   io.Writer
	env   *localenv.Environment
	st    state
	began time.Time
	uids  map[string]string // SyncTarget name -> uid
	urls  map[string]string // process name -> its /metrics URL
}

func (o *serveOptions) run(ctx context.Context, out io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	s := &server{opts: o, out: out, began: time.Now(), uids: map[string]string{}, urls: map[string]string{}}
	s.st = state{
		Phase:             phaseStarting,
		PID:               os.Getpid(),
		Dir:               o.dir,
		LogDir:            filepath.Join(o.envDir(), "logs"),
		LocationWorkspace: locationWorkspace,
		WorkloadWorkspace: workloadWorkspace,
		StartedAt:         s.began.UTC().Truncate(time.Second),
	}
	setupCtx, cancel := context.WithTimeout(ctx, o.setupTimeout)
	err := s.setup(setupCtx)
	cancel()
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if err != nil {
		s.logf("Error: set-up failed: %v", err)
		s.st.Phase, s.st.Error, s.st.Message = phaseFailed, err.Error(), ""
		s.save(true)
		s.stop()
		return err
	}
	s.st.Phase, s.st.Message = phaseReady, ""
	s.st.ReadyAfterSeconds = time.Since(s.began).Round(100 * time.Millisecond).Seconds()
	s.save(true)
	s.logf("Ready after %.1fs; waiting for SIGTERM", s.st.ReadyAfterSeconds)
	<-ctx.Done()
	s.logf("Stopping")
	s.st.Phase = phaseStopping
	s.save(false)
	s.stop()
	s.st.Phase = phaseStopped
	s.save(false)
	s.logf("Stopped")
	return nil
}

func (o *serveOptions) envDir() string { return filepath.Join(o.dir, "env") }

func (s *server) logf(format string, args ...any) {
	_, _ = fmt.Fprintf(s.out, "%s %s\n", time.Now().Format(time.RFC3339), fmt.Sprintf(format, args...))
}

// step records and logs the set-up step in progress.
func (s *server) step(format string, args ...any) {
	s.st.Message = fmt.Sprintf(format, args...)
	s.logf("%s", s.st.Message)
	s.save(true)
}

// save writes state.json; with refresh it first records the running processes.
func (s *server) save(refresh bool) {
	if refresh && s.env != nil {
		var procs []processInfo
		for _, p := range s.env.Processes() {
			if pid := p.Pid(); pid != 0 {
				procs = append(procs, processInfo{Name: p.Name, PID: pid, URL: s.urls[p.Name]})
			}
		}
		sort.Slice(procs, func(i, j int) bool { return procs[i].Name < procs[j].Name })
		s.st.Processes = append([]processInfo{{Name: "dev serve (front proxy)", PID: os.Getpid(), URL: s.env.FrontProxy.URL}}, procs...)
	}
	if err := writeState(s.opts.dir, &s.st); err != nil {
		s.logf("Failed to write the state: %v", err)
	}
}

func (s *server) stop() {
	if s.env == nil {
		return
	}
	if err := s.env.Stop(); err != nil {
		s.logf("Failed to stop every process cleanly: %v", err)
	}
}

func (s *server) setup(ctx context.Context) error {
	names := clusterNames(s.opts.clusters)
	for _, bin := range []string{"workload-syncer", "tmc-controller"} {
		if _, err := os.Stat(filepath.Join(s.opts.binDir, bin)); err != nil {
			return fmt.Errorf("%s is missing in %s (dev up builds it): %w", bin, s.opts.binDir, err)
		}
	}
	// Every start is a fresh environment: old etcd data belongs to other certificates.
	if err := os.RemoveAll(s.opts.envDir()); err != nil {
		return fmt.Errorf("failed to remove the old environment: %w", err)
	}
	if err := os.MkdirAll(s.opts.envDir(), 0o700); err != nil {
		return fmt.Errorf("failed to create %s: %w", s.opts.envDir(), err)
	}
	s.step("Starting etcd, 2 workspaces behind the front proxy and %d kwok physical cluster(s)", len(names))
	opts := localenv.Options{
		Workspaces: []string{locationWorkspace, workloadWorkspace},
		Dir:        s.opts.envDir(),
	}
	for _, n := range names {
		opts.PhysicalClusters = append(opts.PhysicalClusters, localenv.PhysicalClusterOptions{Name: n})
		opts.Users = append(opts.Users, syncerUser(n))
	}
	env, err := localenv.Start(ctx, opts)
	if err != nil {
		return fmt.Errorf("failed to start the servers: %w", err)
	}
	s.env = env
	s.step("Servers up after %s; installing CRDs", env.StartupDuration().Round(100*time.Millisecond))
	if err := s.writeKubeconfigs(names); err != nil {
		return err
	}
	for _, ws := range []string{locationWorkspace, workloadWorkspace} {
		if err := localenv.InstallCRDs(ctx, env.Workspace(ws).AdminConfig()); err != nil {
			return fmt.Errorf("failed to install the CRDs in %s: %w", ws, err)
		}
	}
	s.step("Registering Location %q and SyncTargets %v", locationName, names)
	if err := s.register(ctx, names); err != nil {
		return err
	}
	s.step("Starting tmc-virtual-workspaces")
	virtualWorkspaceURL, err := s.startVirtualWorkspaces(ctx)
	if err != nil {
		return err
	}
	s.st.VirtualWorkspaceURL = virtualWorkspaceURL
	s.step("Starting tmc-controller")
	if err := s.startController(ctx, virtualWorkspaceURL); err != nil {
		return err
	}
	if err := s.waitForSyncerViews(ctx, names); err != nil {
		return fmt.Errorf("the tmc-controller did not publish the syncer views (see its log): %w", err)
	}
	for _, n := range names {
		s.step("Starting workload-syncer for %s (through its syncer view)", n)
		if err := s.startSyncer(ctx, n); err != nil {
			return err
		}
	}
	s.step("Creating Placement %q and the sample app in %s", placementName, workloadWorkspace)
	return s.createDemo(ctx, names)
}

func (s *server) writeKubeconfigs(names []string) error {
	dir := filepath.Join(s.opts.dir, "kubeconfigs")
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("failed to remove old kubeconfigs: %w", err)
	}
	type kc struct {
		name, description string
		cfg               *rest.Config
	}
	list := []kc{
		{"location", "location workspace " + locationWorkspace, s.env.Workspace(locationWorkspace).AdminConfig()},
		{"workload", "workload workspace " + workloadWorkspace, s.env.Workspace(workloadWorkspace).AdminConfig()},
	}
	for _, n := range names {
		list = append(list, kc{n, "physical cluster " + n, s.env.Cluster(n).AdminConfig()})
	}
	s.st.Kubeconfigs = nil
	for _, k := range list {
		path, err := localenv.WriteKubeconfig(k.cfg, "tmc-dev-"+k.name, filepath.Join(dir, k.name+".kubeconfig"))
		if err != nil {
			return err
		}
		s.st.Kubeconfigs = append(s.st.Kubeconfigs, kubeconfig{Name: k.name, Path: path, Description: k.description})
	}
	return nil
}

func (s *server) register(ctx context.Context, names []string) error {
	tc, err := tmcclient.NewForConfig(s.env.Workspace(locationWorkspace).AdminConfig())
	if err != nil {
		return fmt.Errorf("failed to create client: %w", err)
	}
	if _, err := tc.SchedulingV1alpha1().Locations().Create(ctx, &schedulingv1alpha1.Location{
		ObjectMeta: metav1.ObjectMeta{Name: locationName},
		Spec:       schedulingv1alpha1.LocationSpec{Description: "every SyncTarget of the local environment"},
	}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("failed to create Location %s: %w", locationName, err)
	}
	for _, n := range names {
		st, err := tc.WorkloadV1alpha1().SyncTargets().Create(ctx, &workloadv1alpha1.SyncTarget{
			ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"region": n}},
		}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("failed to create SyncTarget %s: %w", n, err)
		}
		s.uids[n] = string(st.UID)
		// As `kubectl tmc workload sync` registers a cluster on kcp: nothing in the workload
		// workspace, which the syncer reaches through its syncer view.
		if err := s.env.GrantSyncer(ctx, localenv.SyncerGrant{
			User:              syncerUser(n),
			SyncTargetName:    n,
			LocationWorkspace: locationWorkspace,
			Cluster:           n,
		}); err != nil {
			return err
		}
	}
	return nil
}
