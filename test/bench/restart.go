package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// b5 restarts the syncer with the B1 objects synced and measures the time to Ready, the
// time until every object was re-checked, and the write requests issued meanwhile, from
// the apiservers' own counters. Only the heartbeat (SyncTarget status) may write.
func (r *runner) b5(ctx context.Context) error {
	n := r.cfg.n
	if _, err := r.sp.waitIdle(ctx, 0, 2*time.Minute); err != nil {
		return err
	}
	before, err := r.scrapeAll(ctx)
	if err != nil {
		return err
	}
	if err := r.sp.Stop(10 * time.Second); err != nil {
		return fmt.Errorf("failed to stop the syncer: %w", err)
	}
	started := time.Now()
	if err := r.sp.Start(); err != nil {
		return fmt.Errorf("failed to start the syncer again: %w", err)
	}
	ready, err := r.sp.waitReady(ctx, 2*time.Minute)
	if err != nil {
		return err
	}
	// The new process counts from zero: every synced object re-checked without a write.
	idle, err := r.sp.waitIdle(ctx, float64(n), 3*time.Minute)
	if err != nil {
		return err
	}
	// Writes issued at the very end would show up a moment later.
	time.Sleep(2 * time.Second)
	after, err := r.scrapeAll(ctx)
	if err != nil {
		return err
	}
	d := after.minus(before)
	synced := d.upstream("configmaps", "namespaces") + d.downstream.total("configmaps", "namespaces")
	other := d.upstream() + d.downstream.total() + d.location.total() - synced
	ssar := d.upstream("selfsubjectaccessreviews") + d.downstream.total("selfsubjectaccessreviews") + d.location.total("selfsubjectaccessreviews")
	heartbeat := d.location.total("synctargets/status")
	toReady, toIdle := ready.Sub(started), idle.Sub(started)
	r.log.logf("B5: ready after %s, all %d objects re-checked after %s, %.0f writes to configmaps/namespaces", toReady.Round(time.Millisecond), n, toIdle.Round(time.Millisecond), synced)

	syncerWrites := "?"
	if m, err := r.sp.metrics(ctx); err == nil {
		syncerWrites = fmt.Sprintf("downstream %.0f, upstream %.0f", m.Sum("syncer_downstream_writes_total", nil), m.Sum("syncer_upstream_writes_total", nil))
	}
	r.rep.add(row{scenario: "B5 restart", figure: fmt.Sprintf("process start → /readyz ok (%d objects synced)", n), value: toReady.Round(time.Millisecond).String(), target: "< 10s", verdict: verdict(toReady < 10*time.Second)})
	r.rep.add(row{scenario: "B5 restart", figure: "process start → every object re-checked, queues empty", value: toIdle.Round(time.Millisecond).String()})
	r.rep.add(row{scenario: "B5 restart", figure: "write requests to configmaps/namespaces, both apiservers", value: fmt.Sprintf("%.0f", synced), target: "0", verdict: verdict(synced == 0)})
	r.rep.add(row{scenario: "B5 restart", figure: "other write requests in the window (not to synced objects)",
		value: fmt.Sprintf("%.0f: %.0f SelfSubjectAccessReviews (permission discovery), %.0f SyncTarget status, %.0f leases/nodes of the servers", other, ssar, heartbeat, other-ssar-heartbeat)})
	r.rep.detail("B5 write requests during the restart: downstream %s; location %s; workspace 1 %s; syncer's own counters: %s",
		d.downstream, d.location, d.workspaces[0], syncerWrites)

	ps := readProc(r.sp.Pid())
	heap := 0.0
	if m, err := r.sp.metrics(ctx); err == nil {
		heap = m.Sum("go_memstats_heap_inuse_bytes", nil)
	}
	r.rep.add(row{scenario: "B6 footprint", figure: fmt.Sprintf("syncer RSS after the restart, %d objects synced and idle, peak", n),
		value: fmt.Sprintf("%s, peak %s (Go heap in use %s)", mib(ps.rss), mib(ps.hwm), mib(int64(heap))), target: "< 150 MiB at 10,000", verdict: verdict(ps.hwm < 150<<20)})
	return nil
}

func writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	return nil
}

// b1CatchUp stops the syncer, creates N more labelled ConfigMaps upstream while it is down,
// starts it again and measures how fast it syncs them: the syncer's own throughput, without
// the harness's upstream creates competing for the same two cores as in B1.
func (r *runner) b1CatchUp(ctx context.Context) error {
	n := r.cfg.n
	const ns = "b1c"
	if err := r.be.createUpstreamNamespace(ctx, 1, ns); err != nil {
		return err
	}
	dns, err := r.be.downstreamNamespace(1, ns)
	if err != nil {
		return err
	}
	if err := r.sp.Stop(10 * time.Second); err != nil {
		return fmt.Errorf("failed to stop the syncer: %w", err)
	}
	group := newWaitGroup(n)
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("b1c-%05d", i)
		r.downConfigMaps.expect(dns, names[i], group, exists)
	}
	client := r.be.upstreamDyn[0].Resource(configMapsGVR).Namespace(ns)
	labels := r.be.syncLabels()
	if err := runPool(ctx, syncerWorkers, n, func(ctx context.Context, i int) error {
		return create(ctx, client, configMap(names[i], labels, nil, map[string]string{"key": fmt.Sprintf("value-%d", i)}))
	}); err != nil {
		return err
	}
	cpu := takeCPU(r.be.env)
	started := time.Now()
	if err := r.sp.Start(); err != nil {
		return fmt.Errorf("failed to start the syncer again: %w", err)
	}
	ready, err := r.sp.waitReady(ctx, 2*time.Minute)
	if err != nil {
		return err
	}
	if err := group.wait(ctx, 3*time.Minute+time.Duration(n)*20*time.Millisecond, "B1 catch-up objects downstream"); err != nil {
		return err
	}
	last := group.lastAt()
	cpuUsed := cpu.until(takeCPU(r.be.env))
	rate := float64(n) / last.Sub(started).Seconds()
	r.log.logf("B1 catch-up: %d objects downstream %s after the syncer started (ready after %s): %.0f/s",
		n, last.Sub(started).Round(time.Millisecond), ready.Sub(started).Round(time.Millisecond), rate)
	r.rep.add(row{scenario: "B1 catch-up", figure: fmt.Sprintf("objects/s, syncer start → all %d created while it was down are downstream (%d already synced)", n, n),
		value:    fmt.Sprintf("%.0f/s (%s, ready after %s)", rate, last.Sub(started).Round(100*time.Millisecond), ready.Sub(started).Round(time.Millisecond)),
		baseline: fmt.Sprintf("B0 %.0f/s (applies %.0f/s)", r.b0Rate, r.b0ApplyRate), target: fmt.Sprintf("%.2f (≥ 0.80); %.2f of applies", rate/r.b0Rate, rate/r.b0ApplyRate), verdict: verdict(rate/r.b0Rate >= 0.8)})
	r.rep.add(row{scenario: "B1 catch-up", figure: "CPU per synced object, every process of the run", value: cpuUsed.perObject(n),
		baseline: fmt.Sprintf("B0 %.2f ms per create", 1000*r.b0CPU.Seconds()), target: fmt.Sprintf("CPU-bound ratio %.2f", r.b0CPU.Seconds()/(cpuUsed.ours()/time.Duration(n)).Seconds())})
	r.rep.detail("B1 catch-up CPU %s", cpuUsed)
	_, err = r.sp.waitIdle(ctx, 0, 2*time.Minute)
	return err
}
