package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
)

// configMap builds a small ConfigMap like the ones synced in every scenario.
func configMap(name string, labels, annotations, data map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]interface{}{"apiVersion": "v1", "kind": "ConfigMap"}}
	u.SetName(name)
	u.SetLabels(labels)
	if len(annotations) > 0 {
		u.SetAnnotations(annotations)
	}
	d := map[string]interface{}{}
	for k, v := range data {
		d[k] = v
	}
	u.Object["data"] = d
	return u
}

// create creates obj, retrying transient failures; an object that already exists (a retry
// whose first attempt succeeded) counts as created.
func create(ctx context.Context, client dynamic.ResourceInterface, obj *unstructured.Unstructured) error {
	return retry(ctx, func() error {
		_, err := client.Create(ctx, obj, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})
}

// b0 measures the baseline: ConfigMaps created straight into the downstream apiserver with
// the syncer's client settings (QPS unlimited; JSON through the dynamic client, as the
// syncer writes), with 16 workers and with one; and, for reference, server-side applied
// with 16 workers, which is the request the syncer actually sends.
func (r *runner) b0(ctx context.Context) error {
	const ns = "bench-b0"
	if _, err := r.be.downstream.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("failed to create namespace %s: %w", ns, err)
	}
	client := r.be.downstreamDyn.Resource(configMapsGVR).Namespace(ns)
	// The same shape as a synced ConfigMap downstream: one label, the spec-hash-sized
	// annotation, one data key.
	obj := func(prefix string, i int) *unstructured.Unstructured {
		return configMap(fmt.Sprintf("%s-%05d", prefix, i),
			map[string]string{"bench.tmc.dev/baseline": "b0"},
			map[string]string{"bench.tmc.dev/hash": "0123456789abcdef"},
			map[string]string{"key": fmt.Sprintf("value-%d", i)})
	}
	measure := func(workers, n int, write func(ctx context.Context, i int) error) (float64, cpuUse, error) {
		cpu := takeCPU(r.be.env)
		start := time.Now()
		if err := runPool(ctx, workers, n, write); err != nil {
			return 0, cpuUse{}, err
		}
		elapsed := time.Since(start)
		return float64(n) / elapsed.Seconds(), cpu.until(takeCPU(r.be.env)), nil
	}

	n := r.cfg.n
	rate16, cpu16, err := measure(syncerWorkers, n, func(ctx context.Context, i int) error { return create(ctx, client, obj("w16", i)) })
	if err != nil {
		return err
	}
	r.log.logf("B0: %d creates with %d workers: %.0f/s", n, syncerWorkers, rate16)
	rate1, _, err := measure(1, r.cfg.b0Single, func(ctx context.Context, i int) error { return create(ctx, client, obj("w1", i)) })
	if err != nil {
		return err
	}
	r.log.logf("B0: %d creates with 1 worker: %.0f/s", r.cfg.b0Single, rate1)
	rateApply, _, err := measure(syncerWorkers, r.cfg.b0Apply, func(ctx context.Context, i int) error {
		o := obj("ssa", i)
		return retry(ctx, func() error {
			_, err := client.Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: "bench", Force: true})
			return err
		})
	})
	if err != nil {
		return err
	}
	r.log.logf("B0: %d server-side applies with %d workers: %.0f/s", r.cfg.b0Apply, syncerWorkers, rateApply)

	r.b0Rate, r.b0ApplyRate = rate16, rateApply
	r.b0CPU = cpu16.ours() / time.Duration(n)
	r.rep.add(row{scenario: "B0 direct", figure: fmt.Sprintf("creates/s, %d workers (N=%d)", syncerWorkers, n), value: fmt.Sprintf("%.0f/s", rate16), baseline: "notes: 664/s"})
	r.rep.add(row{scenario: "B0 direct", figure: fmt.Sprintf("creates/s, 1 worker (N=%d)", r.cfg.b0Single), value: fmt.Sprintf("%.0f/s", rate1), baseline: "notes: 300/s"})
	r.rep.add(row{scenario: "B0 direct", figure: fmt.Sprintf("server-side applies/s, %d workers (N=%d)", syncerWorkers, r.cfg.b0Apply), value: fmt.Sprintf("%.0f/s", rateApply), baseline: fmt.Sprintf("creates %.0f/s", rate16), target: fmt.Sprintf("%.2f", rateApply/rate16)})
	r.rep.detail("B0 CPU (creates, %d workers) %s; downstream apiserver CPU per create %.2f ms",
		syncerWorkers, cpu16, 1000*cpu16.groups["downstream apiserver"].Seconds()/float64(n))
	return nil
}

// startSyncerIdle starts the syncer and measures its idle footprint (B6).
func (r *runner) startSyncerIdle(ctx context.Context) error {
	began := time.Now()
	sp, err := startSyncer(ctx, r.be, r.binary, r.cfg.verbosity, r.cfg.pprofDir != "")
	if err != nil {
		return err
	}
	r.sp = sp
	r.log.logf("syncer ready %s after start", time.Since(began).Round(time.Millisecond))
	if _, err := sp.waitIdle(ctx, 0, time.Minute); err != nil {
		return err
	}
	// Let start-up work (first heartbeat, discovery) finish before measuring idle.
	time.Sleep(r.cfg.idleWindow / 2)
	before := readProc(sp.Pid())
	time.Sleep(r.cfg.idleWindow)
	r.idle = readProc(sp.Pid())
	idleCPU := (r.idle.cpu - before.cpu).Seconds() / r.cfg.idleWindow.Seconds()
	r.rep.add(row{scenario: "B6 footprint", figure: "syncer RSS idle (0 objects)", value: mib(r.idle.rss)})
	r.rep.add(row{scenario: "B6 footprint", figure: fmt.Sprintf("syncer CPU idle (over %s)", r.cfg.idleWindow), value: fmt.Sprintf("%.1f%% of a core", 100*idleCPU)})
	return nil
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// upstreamCounts and downstreamCounts scrape the write requests of the apiservers.
type apiWrites struct {
	workspaces []requestCounts // workload workspaces 1..5
	location   requestCounts
	downstream requestCounts
}

func (r *runner) scrapeAll(ctx context.Context) (apiWrites, error) {
	var w apiWrites
	for i := 1; i <= workloadCount; i++ {
		c, err := scrapeRequests(ctx, r.be.env.Workspace(workloadWS(i)).APIServer.AdminConfig())
		if err != nil {
			return w, err
		}
		w.workspaces = append(w.workspaces, c)
	}
	var err error
	if w.location, err = scrapeRequests(ctx, r.be.env.Workspace(locationWS).APIServer.AdminConfig()); err != nil {
		return w, err
	}
	w.downstream, err = scrapeRequests(ctx, r.be.cluster.AdminConfig())
	return w, err
}

func (w apiWrites) minus(before apiWrites) apiWrites {
	out := apiWrites{location: w.location.minus(before.location), downstream: w.downstream.minus(before.downstream)}
	for i := range w.workspaces {
		out.workspaces = append(out.workspaces, w.workspaces[i].minus(before.workspaces[i]))
	}
	return out
}

// upstream sums the writes to the given resources over the workload workspaces.
func (w apiWrites) upstream(resources ...string) float64 {
	var t float64
	for _, c := range w.workspaces {
		t += c.total(resources...)
	}
	return t
}

// syncBurst creates n labelled ConfigMaps, object i in workload workspace ws(i), with 16
// workers as fast as they go, and waits until the harness's downstream watch has seen all
// of them. It returns the creation start, the time the last one appeared downstream, the
// create-return times and the waiters.
func (r *runner) syncBurst(ctx context.Context, prefix string, n int, ws func(i int) int, upstreamNS string) (time.Time, time.Time, []time.Time, []*waiter, error) {
	downstreamNS := map[int]string{}
	for i := 1; i <= workloadCount; i++ {
		if err := r.be.createUpstreamNamespace(ctx, i, upstreamNS); err != nil {
			return time.Time{}, time.Time{}, nil, nil, err
		}
		dns, err := r.be.downstreamNamespace(i, upstreamNS)
		if err != nil {
			return time.Time{}, time.Time{}, nil, nil, err
		}
		downstreamNS[i] = dns
	}
	group := newWaitGroup(n)
	waiters := make([]*waiter, n)
	created := make([]time.Time, n)
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("%s-%05d", prefix, i)
		waiters[i] = r.downConfigMaps.expect(downstreamNS[ws(i)], names[i], group, exists)
	}
	labels := r.be.syncLabels()
	start := time.Now()
	err := runPool(ctx, syncerWorkers, n, func(ctx context.Context, i int) error {
		client := r.be.upstreamDyn[ws(i)-1].Resource(configMapsGVR).Namespace(upstreamNS)
		if err := create(ctx, client, configMap(names[i], labels, nil, map[string]string{"key": fmt.Sprintf("value-%d", i)})); err != nil {
			return err
		}
		created[i] = time.Now()
		return nil
	})
	if err != nil {
		return time.Time{}, time.Time{}, nil, nil, err
	}
	lastCreate := created[0]
	for _, t := range created {
		if t.After(lastCreate) {
			lastCreate = t
		}
	}
	r.log.logf("%s: %d created upstream in %s (%.0f/s); waiting for them downstream", prefix, n, lastCreate.Sub(start).Round(time.Millisecond), float64(n)/lastCreate.Sub(start).Seconds())
	if err := group.wait(ctx, 3*time.Minute+time.Duration(n)*20*time.Millisecond, prefix+" objects downstream"); err != nil {
		return time.Time{}, time.Time{}, nil, nil, err
	}
	return start, group.lastAt(), created, waiters, nil
}

func burstLatencies(created []time.Time, waiters []*waiter) latencies {
	var l latencies
	for i, w := range waiters {
		if at, ok := w.firedAt(); ok {
			l = append(l, at.Sub(created[i]))
		}
	}
	return l
}

// b1 syncs N ConfigMaps created upstream in one workspace as fast as 16 workers can, and
// measures throughput, write requests per object and the syncer's footprint under load.
func (r *runner) b1(ctx context.Context) error {
	n := r.cfg.n
	writesBefore, err := r.scrapeAll(ctx)
	if err != nil {
		return err
	}
	cpu := takeCPU(r.be.env)
	syncerBefore := readProc(r.sp.Pid())

	var profiling sync.WaitGroup
	if r.cfg.pprofDir != "" {
		d := 30 * time.Second
		if r.cfg.quick {
			d = 5 * time.Second
		}
		profiling.Add(1)
		go func() {
			defer profiling.Done()
			path := filepath.Join(r.cfg.pprofDir, "b1-cpu.pprof")
			if err := r.sp.cpuProfile(ctx, d, path); err != nil {
				r.log.logf("B1: CPU profile failed: %v", err)
			} else {
				r.log.logf("B1: CPU profile of the first %s written to %s", d, path)
			}
		}()
	}

	start, last, created, waiters, err := r.syncBurst(ctx, "b1", n, func(int) int { return 1 }, "b1")
	if err != nil {
		return err
	}
	elapsed := last.Sub(start)
	cpuUsed := cpu.until(takeCPU(r.be.env))
	r.b1Rate = float64(n) / elapsed.Seconds()
	r.log.logf("B1: %d objects downstream in %s: %.0f/s", n, elapsed.Round(time.Millisecond), r.b1Rate)
	syncerEnd := readProc(r.sp.Pid())

	if _, err := r.sp.waitIdle(ctx, 0, 2*time.Minute); err != nil {
		return err
	}
	writesAfter, err := r.scrapeAll(ctx)
	if err != nil {
		return err
	}
	d := writesAfter.minus(writesBefore)
	upCM := d.upstream("configmaps", "namespaces") - float64(n) // the harness's own creates
	downCM := d.downstream.total("configmaps", "namespaces")
	perObject := (upCM + downCM) / float64(n)
	allSyncer := (d.upstream() - float64(n) + d.downstream.total() + d.location.total()) / float64(n)

	ratio := r.b1Rate / r.b0Rate
	r.rep.add(row{scenario: "B1 throughput", figure: fmt.Sprintf("objects/s, first create → all %d downstream", n), value: fmt.Sprintf("%.0f/s (%s)", r.b1Rate, elapsed.Round(100*time.Millisecond)),
		baseline: fmt.Sprintf("B0 %.0f/s (applies %.0f/s)", r.b0Rate, r.b0ApplyRate), target: fmt.Sprintf("%.2f (≥ 0.80); %.2f of applies", ratio, r.b1Rate/r.b0ApplyRate), verdict: verdict(ratio >= 0.8)})
	b1CPU := cpuUsed.ours() / time.Duration(n)
	r.rep.add(row{scenario: "B1 throughput", figure: "CPU per synced object, every process of the run", value: cpuUsed.perObject(n),
		baseline: fmt.Sprintf("B0 %.2f ms per create", 1000*r.b0CPU.Seconds()), target: fmt.Sprintf("CPU-bound ratio %.2f", r.b0CPU.Seconds()/b1CPU.Seconds())})
	r.rep.add(row{scenario: "B1 throughput", figure: "write requests per synced object (configmaps+namespaces, both apiservers, harness creates excluded)", value: fmt.Sprintf("%.2f (upstream %.2f, downstream %.2f)", perObject, upCM/float64(n), downCM/float64(n)), baseline: "B0: 1 create"})
	r.rep.add(row{scenario: "B1 throughput", figure: "write requests per synced object, every resource and apiserver", value: fmt.Sprintf("%.2f", allSyncer)})
	r.rep.add(row{scenario: "B1 throughput", figure: "create → downstream latency in the burst", value: burstLatencies(created, waiters).summary()})
	r.rep.detail("B1 write requests: upstream workspace %s; downstream %s; location %s (upstream includes the harness's %d creates)",
		d.workspaces[0], d.downstream, d.location, n)
	r.rep.detail("B1 read requests: upstream workspace %s; downstream %s", d.workspaces[0].readsString(), d.downstream.readsString())
	r.rep.detail("B1 CPU %s; apiserver CPU per write request: upstream %.2f ms, downstream %.2f ms",
		cpuUsed, 1000*cpuUsed.groups["upstream apiservers"].Seconds()/d.upstream(), 1000*cpuUsed.groups["downstream apiserver"].Seconds()/d.downstream.total())

	// B6 under load.
	heap := 0.0
	if m, err := r.sp.metrics(ctx); err == nil {
		heap = m.Sum("go_memstats_heap_inuse_bytes", nil)
	}
	syncerCPU := syncerEnd.cpu - syncerBefore.cpu
	perObjectBytes := float64(syncerEnd.rss-r.idle.rss) / float64(n)
	r.rep.add(row{scenario: "B6 footprint", figure: fmt.Sprintf("syncer RSS at end of B1 (%d objects), peak", n), value: fmt.Sprintf("%s, peak %s", mib(syncerEnd.rss), mib(syncerEnd.hwm)), target: "< 150 MiB at 10,000", verdict: verdict(syncerEnd.hwm < 150<<20)})
	r.rep.add(row{scenario: "B6 footprint", figure: "syncer CPU during B1", value: fmt.Sprintf("%.1fs (%.2f ms/object, %.0f%% of a core)", syncerCPU.Seconds(), 1000*syncerCPU.Seconds()/float64(n), 100*syncerCPU.Seconds()/elapsed.Seconds())})
	r.rep.add(row{scenario: "B6 footprint", figure: "bytes per synced object ((RSS end of B1 − idle) / N)", value: fmt.Sprintf("%.1f KiB (Go heap in use %s)", perObjectBytes/1024, mib(int64(heap)))})

	profiling.Wait()
	if r.cfg.pprofDir != "" {
		path := filepath.Join(r.cfg.pprofDir, "b1-heap.pprof")
		code, body, err := httpGet(ctx, r.sp.PprofURL+"/heap")
		if err == nil && code == 200 {
			err = writeFile(path, body)
		}
		if err != nil {
			r.log.logf("B1: heap profile failed: %v", err)
		}
	}
	return nil
}

// b7 syncs N ConfigMaps spread over five workload workspaces with one syncer.
func (r *runner) b7(ctx context.Context) error {
	n := r.cfg.b7N
	cpu := takeCPU(r.be.env)
	start, last, created, waiters, err := r.syncBurst(ctx, "b7", n, func(i int) int { return i%workloadCount + 1 }, "b7")
	if err != nil {
		return err
	}
	r.rep.detail("B7 CPU %s", cpu.until(takeCPU(r.be.env)))
	elapsed := last.Sub(start)
	rate := float64(n) / elapsed.Seconds()
	r.log.logf("B7: %d objects from %d workspaces downstream in %s: %.0f/s", n, workloadCount, elapsed.Round(time.Millisecond), rate)
	r.rep.add(row{scenario: "B7 fan-in", figure: fmt.Sprintf("objects/s, %d workspaces × %d objects", workloadCount, n/workloadCount), value: fmt.Sprintf("%.0f/s (%s)", rate, elapsed.Round(100*time.Millisecond)), baseline: fmt.Sprintf("B0 %.0f/s; B1 %.0f/s", r.b0Rate, r.b1Rate), target: fmt.Sprintf("%.2f of B0 (≥ 0.80), %.2f of B1", rate/r.b0Rate, rate/r.b1Rate), verdict: verdict(rate/r.b0Rate >= 0.8)})
	r.rep.add(row{scenario: "B7 fan-in", figure: "create → downstream latency in the burst", value: burstLatencies(created, waiters).summary()})
	return nil
}
