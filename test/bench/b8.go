package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tmc-dev/tmc/pkg/localenv"
)

// b8Config sizes B8.
type b8Config struct {
	// workspaces is W, the workload workspaces; perWorkspace the ConfigMaps in each.
	workspaces, perWorkspace int
	// batch is how many workspace apiservers start at once.
	batch int
	// rate and duration pace the latency phase of each mode.
	rate     float64
	duration time.Duration
}

// b8Runner runs B8: for W workload workspaces with one placed namespace of 20 ConfigMaps
// each, one syncer reaching them directly (W watches per type), then one through the
// virtual-workspace server (one watch per type), each measured the same way.
type b8Runner struct {
	cfg    b8Config
	e      *b8Env
	rep    *report
	log    progress
	syncer string // the workload-syncer binary
	// baselineRate is direct creates/s into the downstream apiserver.
	baselineRate float64
	results      map[string]*b8Result // by mode
}

// b8Result is what one mode measured.
type b8Result struct {
	watches      upstreamWatches
	view         watchCounts
	ready, total time.Duration
	rate         float64
	cpu          cpuUse
	lat          latencies
	achieved     float64
	syncer, vw   procStat
	syncerCPU    time.Duration
	vwIdle       procStat
}

func (r *b8Runner) run(ctx context.Context, viewBin string) error {
	n := r.cfg.workspaces * r.cfg.perWorkspace
	began := time.Now()
	if err := r.e.prepare(ctx); err != nil {
		return err
	}
	if err := r.e.populate(ctx, r.cfg.perWorkspace); err != nil {
		return err
	}
	r.log.logf("B8: %d workspaces × %d ConfigMaps created and granted in %s", r.cfg.workspaces, r.cfg.perWorkspace, time.Since(began).Round(time.Millisecond))
	if err := r.baseline(ctx, n); err != nil {
		return err
	}
	for _, t := range []*b8Target{r.e.direct, r.e.view} {
		var err error
		if t.downConfigMaps, err = startTracker(ctx, "downstream configmaps of "+t.name, r.e.downstreamDyn, configMapsGVR,
			"internal.workload.kcp.io/cluster="+t.key); err != nil {
			return err
		}
	}
	idle := takeCPU(r.e.env)
	time.Sleep(10 * time.Second)
	r.rep.add(row{scenario: "B8 environment", figure: "CPU at rest over 10s (objects created, no syncer)", value: idle.until(takeCPU(r.e.env)).String()})
	r.results = map[string]*b8Result{}
	if err := r.phase(ctx, r.e.direct, nil); err != nil {
		return fmt.Errorf("direct mode: %w", err)
	}
	vwIdle, err := r.startView(ctx, viewBin)
	if err != nil {
		return err
	}
	if err := r.phase(ctx, r.e.view, &vwIdle); err != nil {
		return fmt.Errorf("virtual-workspace mode: %w", err)
	}
	r.addRows(n)
	return nil
}

// baseline creates n ConfigMaps straight into the downstream apiserver, 16 workers, as B0.
func (r *b8Runner) baseline(ctx context.Context, n int) error {
	const ns = "b8-baseline"
	if err := createNamespace(ctx, r.e.downstream, ns); err != nil {
		return err
	}
	client := r.e.downstreamDyn.Resource(configMapsGVR).Namespace(ns)
	start := time.Now()
	if err := runPool(ctx, syncerWorkers, n, func(ctx context.Context, i int) error {
		name := b8Name("direct", i)
		return create(ctx, client, configMap(name, map[string]string{"bench": "b8"}, nil, map[string]string{"key": name}))
	}); err != nil {
		return err
	}
	r.baselineRate = float64(n) / time.Since(start).Seconds()
	r.log.logf("B8 baseline: %d direct creates downstream at %.0f/s", n, r.baselineRate)
	return nil
}

// startView starts the virtual-workspace server and returns its footprint at rest.
func (r *b8Runner) startView(ctx context.Context, binary string) (procStat, error) {
	if err := r.e.startView(ctx, binary); err != nil {
		return procStat{}, err
	}
	time.Sleep(5 * time.Second)
	return readProc(r.e.vw.Pid()), nil
}

// phase runs one syncer of target t from a standing start (every object already upstream),
// measures it and stops it.
func (r *b8Runner) phase(ctx context.Context, t *b8Target, vwIdle *procStat) error {
	res := &b8Result{}
	if vwIdle != nil {
		res.vwIdle = *vwIdle
	}
	r.results[t.mode] = res
	n := r.cfg.workspaces * r.cfg.perWorkspace
	group := newWaitGroup(n)
	for i := 1; i <= r.cfg.workspaces; i++ {
		dns, err := r.e.downstreamNamespace(t, i)
		if err != nil {
			return err
		}
		for j := range r.cfg.perWorkspace {
			t.downConfigMaps.expect(dns, b8Name("cm", j), group, exists)
		}
	}
	before, err := r.e.scrapeWatches(ctx)
	if err != nil {
		return err
	}
	r.log.logf("B8 %s: starting the syncer (%d objects waiting upstream)", t.mode, n)
	cpu := takeCPU(r.e.env)
	start := time.Now()
	sp, err := r.startSyncer(ctx, t)
	if err != nil {
		return err
	}
	defer func() { _ = sp.Stop(10 * time.Second) }()
	res.ready = time.Since(start)
	if err := group.wait(ctx, 10*time.Minute, fmt.Sprintf("B8 %s: objects downstream", t.mode)); err != nil {
		return err
	}
	res.total = group.lastAt().Sub(start)
	res.rate = float64(n) / res.total.Seconds()
	res.cpu = cpu.until(takeCPU(r.e.env))
	r.log.logf("B8 %s: %d objects downstream %s after the syncer started (%.0f/s)", t.mode, n, res.total.Round(time.Millisecond), res.rate)
	if _, err := sp.waitIdle(ctx, 0, 5*time.Minute); err != nil {
		return err
	}
	after, err := r.e.scrapeWatches(ctx)
	if err != nil {
		return err
	}
	res.watches = after.minus(before)
	if res.view, err = viewWatches(ctx, r.e.vw); err != nil {
		return err
	}
	r.log.logf("B8 %s: syncer watches on the workload apiservers %s; on the view %s", t.mode, res.watches.workspaces, res.view)
	if err := r.latency(ctx, t, res); err != nil {
		return err
	}
	res.syncer = readProc(sp.Pid())
	res.syncerCPU = res.syncer.cpu
	if r.e.vw != nil {
		res.vw = readProc(r.e.vw.Pid())
	}
	if !sp.Running() {
		return fmt.Errorf("the syncer exited: see %s", sp.LogPath)
	}
	return nil
}

func (r *b8Runner) startSyncer(ctx context.Context, t *b8Target) (*syncerProcess, error) {
	c, err := r.e.env.StartSyncer(ctx, localenv.SyncerOptions{
		Binary:              r.syncer,
		Name:                "workload-syncer-" + t.name,
		User:                t.user,
		Cluster:             clusterName,
		SyncTargetWorkspace: locationWS,
		SyncTargetName:      t.name,
		SyncTargetUID:       string(t.st.UID),
		QPS:                 syncerQPS,
		Workers:             syncerWorkers,
		ExtraArgs:           []string{"--upstream-mode=" + t.mode},
		ReadyTimeout:        5 * time.Minute,
	})
	if err != nil {
		return nil, err
	}
	return &syncerProcess{Component: c}, nil
}

// latency creates ConfigMaps for t only, round-robin over the workspaces, at the configured
// rate, and times each from the return of its create to its downstream watch event.
func (r *b8Runner) latency(ctx context.Context, t *b8Target, res *b8Result) error {
	n := int(r.cfg.rate * r.cfg.duration.Seconds())
	dns := make([]string, r.cfg.workspaces)
	for i := range dns {
		var err error
		if dns[i], err = r.e.downstreamNamespace(t, i+1); err != nil {
			return err
		}
	}
	labels := labelsFor(t)
	group := newWaitGroup(n)
	waiters := make([]*waiter, n)
	created := make([]time.Time, n)
	started := make([]time.Time, n)
	err := runPaced(ctx, r.cfg.rate, syncerWorkers, n, func(ctx context.Context, i int) error {
		ws, name := i%r.cfg.workspaces, b8Name("lat-"+t.mode, i)
		waiters[i] = t.downConfigMaps.expect(dns[ws], name, group, exists)
		started[i] = time.Now()
		if err := create(ctx, r.e.upstreamDyn[ws].Resource(configMapsGVR).Namespace(b8Namespace), configMap(name, labels, nil, map[string]string{"key": name})); err != nil {
			return err
		}
		created[i] = time.Now()
		return nil
	})
	if err != nil {
		return err
	}
	if err := group.wait(ctx, 2*time.Minute, fmt.Sprintf("B8 %s latency objects downstream", t.mode)); err != nil {
		return err
	}
	res.lat = burstLatencies(created, waiters)
	if n > 1 {
		res.achieved = float64(n-1) / started[n-1].Sub(started[0]).Seconds()
	}
	r.log.logf("B8 %s latency at %.0f/s: %s", t.mode, r.cfg.rate, res.lat.summary())
	return nil
}

// memAvailable prints the machine's MemAvailable.
func memAvailable() string {
	return fmt.Sprintf("%.1f GiB available", float64(memAvailableBytes())/(1<<30))
}

// memAvailableBytes is the machine's MemAvailable, 0 if unknown.
func memAvailableBytes() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "MemAvailable:") {
			return parseKB(line)
		}
	}
	return 0
}

// runB8 builds the syncer and the virtual-workspace server, starts B8's environment, runs
// B8 and prints its report.
func runB8(ctx context.Context, cfg config, root string, began time.Time) (err error) {
	log := progress{start: began}
	loadBefore := loadAvg()
	log.logf("B8: building the workload-syncer and tmc-virtual-workspaces (load average %s)", loadBefore)
	syncerBin, err := buildSyncer(ctx, root, false)
	if err != nil {
		return err
	}
	viewBin, err := buildBinary(ctx, root, "tmc-virtual-workspaces", "./cmd/tmc-virtual-workspaces")
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "tmc-bench-")
	if err != nil {
		return fmt.Errorf("failed to create environment directory: %w", err)
	}
	log.logf("B8: starting the environment in %s (%d workload workspaces)", dir, cfg.b8.workspaces)
	envStart := time.Now()
	e, err := startB8Env(ctx, dir, cfg.b8.workspaces, cfg.b8.batch, log)
	defer func() {
		stopErr := e.stop()
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
	envUp := time.Since(envStart)
	if e.w == 0 {
		return fmt.Errorf("no workload workspace started: %s", e.stoppedBy)
	}
	rep := &report{}
	if e.stoppedBy != "" {
		rep.add(row{scenario: "B8 environment", figure: fmt.Sprintf("workload workspaces: %d asked for, %d started", cfg.b8.workspaces, e.w), value: e.stoppedBy})
		cfg.b8.workspaces = e.w
	}
	rep.add(row{scenario: "B8 environment", figure: fmt.Sprintf("%d workload apiservers started", cfg.b8.workspaces), value: e.startupSummary(cfg.b8.batch)})
	rep.add(row{scenario: "B8 environment", figure: "RSS of the workload apiservers at rest (no objects yet)", value: e.workspaceFootprint()})
	r := &b8Runner{cfg: cfg.b8, e: e, rep: rep, log: log, syncer: syncerBin}
	// The harness's watches end before the servers stop, so that they do not log errors.
	runCtx, cancel := context.WithCancel(ctx)
	err = r.run(runCtx, viewBin)
	rep.add(row{scenario: "B8 environment", figure: "RSS of the workload apiservers at the end", value: e.workspaceFootprint()})
	cancel()
	for _, t := range []*b8Target{e.direct, e.view} {
		if t != nil && t.downConfigMaps != nil {
			t.downConfigMaps.waitStopped(5 * time.Second)
		}
	}
	if err != nil {
		return err
	}
	log.logf("done; stopping the environment")
	rep.header = header(ctx, root, cfg, e.downstream, began, loadBefore, envUp)
	return writeReport(rep, cfg.out)
}
