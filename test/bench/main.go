package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/tmc-dev/tmc/pkg/localenv"
)

// config sizes the scenarios.
type config struct {
	quick bool
	// n is the object count of B1 and B5 (and, split over five workspaces, of B7).
	n int
	// b0Single and b0Apply are the object counts of the one-worker and apply baselines.
	b0Single, b0Apply int
	b2Rates           []int
	b2Duration        time.Duration
	b3Samples         int
	b3ScaleSamples    int
	b4Objects         int
	b4Rate            float64
	b7N               int
	idleWindow        time.Duration

	out       string
	keep      bool
	pprofDir  string
	verbosity int

	// only names the one scenario to run instead of B0–B7; only "B8" (opt-in, on its own
	// environment) is supported.
	only string
	b8   b8Config
}

func main() {
	os.Exit(mainErr())
}

func mainErr() int {
	var cfg config
	flag.BoolVar(&cfg.quick, "quick", false, "Smoke-test sizes: N=300, 10s phases at 10 and 50 objects/s, few samples (about 2 minutes).")
	flag.IntVar(&cfg.n, "n", 0, "Objects of B1, B5 and B7 (default 10000, 300 with -quick).")
	flag.StringVar(&cfg.out, "out", "", "Also write the results as Markdown to this file.")
	flag.BoolVar(&cfg.keep, "keep", false, "Keep the environment directory (logs, data) after the run.")
	flag.StringVar(&cfg.pprofDir, "pprof", "", "Run a pprof-enabled build of the syncer (test/bench/syncerprof) and write a CPU profile of B1 and a heap profile at its end into this directory.")
	flag.IntVar(&cfg.verbosity, "v", 0, "Log verbosity of the syncer (-v).")
	flag.StringVar(&cfg.only, "only", "", "Run only this scenario: B8 (opt-in, not part of the default run: W workspaces × 20 ConfigMaps, direct against virtual-workspace mode).")
	flag.IntVar(&cfg.b8.workspaces, "workspaces", 0, "B8: workload workspaces, one kube-apiserver each (default 100, 5 with -quick).")
	flag.IntVar(&cfg.b8.batch, "workspace-batch", 4, "B8: workspace apiservers started at once.")
	flag.Float64Var(&cfg.b8.rate, "b8-rate", 10, "B8: ConfigMaps/s created in each mode's latency phase.")
	flag.DurationVar(&cfg.b8.duration, "b8-duration", 0, "B8: length of each mode's latency phase (default 30s, 10s with -quick).")
	flag.Parse()
	cfg.fill()
	if cfg.only != "" && cfg.only != "B8" {
		fmt.Fprintf(os.Stderr, "bench: -only supports B8 only, got %q\n", cfg.only)
		return 2
	}

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

func (c *config) fill() {
	if c.quick {
		if c.n == 0 {
			c.n = 300
		}
		c.b0Single, c.b0Apply = c.n, c.n
		c.b2Rates, c.b2Duration = []int{10, 50}, 10*time.Second
		c.b3Samples, c.b3ScaleSamples = 10, 2
		c.b4Objects, c.b4Rate = 30, 25
		c.idleWindow = 3 * time.Second
	} else {
		if c.n == 0 {
			c.n = 10000
		}
		// One worker at ~300/s would take half a minute for 10,000; 2,000 give the rate.
		c.b0Single, c.b0Apply = min(c.n, 2000), min(c.n, 5000)
		c.b2Rates, c.b2Duration = []int{10, 50, 200}, 60*time.Second
		c.b3Samples, c.b3ScaleSamples = 50, 10
		c.b4Objects, c.b4Rate = 100, 25
		c.idleWindow = 10 * time.Second
	}
	c.b7N = c.n - c.n%workloadCount
	c.b8.perWorkspace = 20
	if c.b8.workspaces == 0 {
		c.b8.workspaces = 100
		if c.quick {
			c.b8.workspaces = 5
		}
	}
	if c.b8.duration == 0 {
		c.b8.duration = 30 * time.Second
		if c.quick {
			c.b8.duration = 10 * time.Second
		}
	}
	c.b8.batch = max(c.b8.batch, 1)
}

// progress logs a timestamped line to stderr.
type progress struct{ start time.Time }

func (p progress) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, cfg config) (err error) {
	began := time.Now()
	log := progress{start: began}
	root, err := localenv.RepoRoot()
	if err != nil {
		return err
	}
	if err := useBenchBinaryDir(); err != nil {
		return err
	}
	if cfg.only == "B8" {
		return runB8(ctx, cfg, root, began)
	}
	if cfg.pprofDir != "" {
		if cfg.pprofDir, err = filepath.Abs(cfg.pprofDir); err != nil {
			return err
		}
		if err := os.MkdirAll(cfg.pprofDir, 0o755); err != nil {
			return err
		}
	}

	loadBefore := loadAvg()
	log.logf("building the workload-syncer (load average %s)", loadBefore)
	binary, err := buildSyncer(ctx, root, cfg.pprofDir != "")
	if err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "tmc-bench-")
	if err != nil {
		return fmt.Errorf("failed to create environment directory: %w", err)
	}
	log.logf("starting the environment in %s", dir)
	be, err := startEnv(ctx, dir)
	defer func() {
		stopErr := be.stop()
		if err == nil && stopErr != nil {
			err = fmt.Errorf("failed to stop the environment: %w", stopErr)
		}
		if err != nil || cfg.keep {
			fmt.Fprintf(os.Stderr, "bench: environment directory (logs) kept: %s\n", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()
	if err != nil {
		return err
	}
	envUp := be.env.StartupDuration()
	log.logf("environment up in %s", envUp.Round(time.Millisecond))

	r := &runner{cfg: cfg, be: be, rep: &report{}, log: log, binary: binary}
	if err := r.runAll(ctx); err != nil {
		return err
	}
	r.log.logf("done; stopping the environment")
	r.rep.header = header(ctx, root, cfg, be.downstream, began, loadBefore, envUp)
	return writeReport(r.rep, cfg.out)
}

// writeReport prints the report and, with out, writes it as Markdown there.
func writeReport(rep *report, out string) error {
	fmt.Println()
	rep.printText(os.Stdout)
	if out == "" {
		return nil
	}
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("failed to create %s: %w", out, err)
	}
	rep.printMarkdown(f)
	if err := f.Close(); err != nil {
		return fmt.Errorf("failed to write %s: %w", out, err)
	}
	return nil
}

// header describes the run: machine, versions, settings, load and duration.
func header(ctx context.Context, root string, cfg config, downstream kubernetes.Interface, began time.Time, loadBefore string, envUp time.Duration) []string {
	mode := "full"
	if cfg.quick {
		mode = "quick"
	}
	size := fmt.Sprintf("N=%d", cfg.n)
	if cfg.only == "B8" {
		size = fmt.Sprintf("B8 only, W=%d workspaces × %d ConfigMaps", cfg.b8.workspaces, cfg.b8.perWorkspace)
	}
	k8s := "?"
	if v, err := downstream.Discovery().ServerVersion(); err == nil {
		k8s = v.GitVersion
	}
	commit := "?"
	if out, err := exec.CommandContext(ctx, "git", "-C", root, "describe", "--always", "--dirty").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
	}
	return []string{
		fmt.Sprintf("Run: %s mode, %s, started %s, took %s (environment start %s), commit %s",
			mode, size, began.Format(time.RFC3339), time.Since(began).Round(time.Second), envUp.Round(time.Millisecond), commit),
		fmt.Sprintf("Machine: %d CPUs, %s memory, %s, Kubernetes %s servers (etcd, apiservers, kwok on 127.0.0.1)",
			runtime.NumCPU(), memTotal(), runtime.Version(), k8s),
		fmt.Sprintf("Syncer: bin/workload-syncer --workers=%d --qps=%g -v=%d (one process); B0 clients: QPS unlimited, %d and 1 workers",
			syncerWorkers, syncerQPS, cfg.verbosity, syncerWorkers),
		fmt.Sprintf("Load average (1/5/15 min): %s before, %s after", loadBefore, loadAvg()),
	}
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "MemTotal:") {
			return fmt.Sprintf("%.1f GiB", float64(parseKB(line))/(1<<30))
		}
	}
	return "?"
}

// runner runs the scenarios in order on one environment and one syncer.
type runner struct {
	cfg    config
	be     *benchEnv
	rep    *report
	log    progress
	binary string
	sp     *syncerProcess

	downConfigMaps *tracker // downstream ConfigMaps owned by the SyncTarget
	downIngresses  *tracker // downstream Ingresses owned by the SyncTarget
	upIngresses    *tracker // upstream Ingresses of workspace 1 selected for the SyncTarget
	upDeployments  *tracker // upstream Deployments of workspace 1 selected for the SyncTarget

	b0Rate, b0ApplyRate, b1Rate float64
	// b0CPU is the CPU time of the run's processes per direct create (16 workers).
	b0CPU time.Duration
	idle  procStat
}

func (r *runner) runAll(ctx context.Context) error {
	// The harness's watches end before the servers stop, so that they do not log errors.
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		for _, t := range []*tracker{r.downConfigMaps, r.downIngresses, r.upIngresses, r.upDeployments} {
			if t != nil {
				t.waitStopped(5 * time.Second)
			}
		}
	}()
	if err := r.startTrackers(ctx); err != nil {
		return err
	}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"B0 direct writes", r.b0},
		{"syncer start and B6 idle", r.startSyncerIdle},
		{"B1 throughput (with B6 under load)", r.b1},
		{"B5 restart", r.b5},
		{"B1 catch-up after downtime", r.b1CatchUp},
		{"B2 steady-rate latency", r.b2},
		{"B3 status round trip", r.b3},
		{"B4 update, drift and delete", r.b4},
		{"B7 fan-in", r.b7},
	}
	for _, s := range steps {
		r.log.logf("%s", s.name)
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if !r.syncerAlive() {
			return errors.New(s.name + ": the syncer exited: see its log in the environment directory")
		}
	}
	return nil
}

func (r *runner) syncerAlive() bool { return r.sp == nil || r.sp.Running() }

func (r *runner) startTrackers(ctx context.Context) error {
	owned := "internal.workload.kcp.io/cluster=" + r.be.stKey
	selected := labelSelector(r.be.syncLabels())
	var err error
	if r.downConfigMaps, err = startTracker(ctx, "downstream configmaps", r.be.downstreamDyn, configMapsGVR, owned); err != nil {
		return err
	}
	if r.downIngresses, err = startTracker(ctx, "downstream ingresses", r.be.downstreamDyn, ingressesGVR, owned); err != nil {
		return err
	}
	if r.upIngresses, err = startTracker(ctx, "upstream ingresses", r.be.upstreamDyn[0], ingressesGVR, selected); err != nil {
		return err
	}
	r.upDeployments, err = startTracker(ctx, "upstream deployments", r.be.upstreamDyn[0], deploymentsGVR, selected)
	return err
}

func labelSelector(labels map[string]string) string {
	var parts []string
	for k, v := range labels {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}
