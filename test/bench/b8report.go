package main

import (
	"fmt"
	"time"
)

// addRows puts every B8 figure of virtual-workspace mode (Value) next to direct mode's
// (Baseline), with their ratio.
func (r *b8Runner) addRows(n int) {
	direct, view := r.results["direct"], r.results["virtual-workspace"]
	w := r.cfg.workspaces
	add := func(figure, value, baseline, ratio string) {
		r.rep.add(row{scenario: "B8 view vs direct", figure: figure, value: value, baseline: baseline, target: ratio})
	}
	add(fmt.Sprintf("syncer's watches on the %d workload apiservers (apiserver_longrunning_requests WATCH, after − before the syncer)", w),
		view.watches.workspaces.String(), direct.watches.workspaces.String(), "–")
	add("syncer's watches per type upstream",
		fmt.Sprintf("%s on the virtual-workspace server (tmc_virtualworkspace_open_watches)", view.view.perType()),
		fmt.Sprintf("%s on the workload apiservers (%d workspaces)", direct.watches.workspaces.perType(), w), "–")
	add("virtual-workspace server's open watches (tmc_virtualworkspace_open_watches)", view.view.String(), "no server", "–")
	add("watches on the location workspace's apiserver (after − before)", view.watches.location.String(), direct.watches.location.String(), "–")
	add("etcd watchers (etcd_debugging_mvcc_watcher_total, after − before; the front proxy's wildcard and the apiservers without watch cache watch etcd)",
		fmt.Sprintf("%.0f", view.watches.etcdWatchers), fmt.Sprintf("%.0f", direct.watches.etcdWatchers), "–")
	add(fmt.Sprintf("throughput: syncer start → all %d ConfigMaps (%d × %d) downstream", n, w, r.cfg.perWorkspace),
		fmt.Sprintf("%.0f/s (%s, ready after %s)", view.rate, view.total.Round(time.Millisecond), view.ready.Round(time.Millisecond)),
		fmt.Sprintf("%.0f/s (%s, ready after %s); direct creates downstream %.0f/s", direct.rate, direct.total.Round(time.Millisecond), direct.ready.Round(time.Millisecond), r.baselineRate),
		fmt.Sprintf("%.2f of direct mode; %.2f and %.2f of direct creates", view.rate/direct.rate, view.rate/r.baselineRate, direct.rate/r.baselineRate))
	add("CPU per synced object in the throughput phase, every process",
		view.cpu.perObject(n), direct.cpu.perObject(n), ratio(view.cpu.ours(), direct.cpu.ours()))
	add(fmt.Sprintf("sync latency, create → downstream at %.0f/s for %s, round-robin over the workspaces", r.cfg.rate, r.cfg.duration),
		fmt.Sprintf("%s (achieved %.1f/s)", view.lat.summary(), view.achieved), fmt.Sprintf("%s (achieved %.1f/s)", direct.lat.summary(), direct.achieved),
		fmt.Sprintf("p99 %s", ratio(view.lat.percentile(0.99), direct.lat.percentile(0.99))))
	m := n + int(r.cfg.rate*r.cfg.duration.Seconds())
	add(fmt.Sprintf("syncer RSS at the end (%d objects synced), peak", m),
		fmt.Sprintf("%s, peak %s", mib(view.syncer.rss), mib(view.syncer.hwm)), fmt.Sprintf("%s, peak %s", mib(direct.syncer.rss), mib(direct.syncer.hwm)),
		fmt.Sprintf("%.2f", float64(view.syncer.rss)/float64(direct.syncer.rss)))
	add("syncer CPU: throughput phase / whole life (start, sync, idle, latency phase)",
		fmt.Sprintf("%.1fs / %.1fs", view.cpu.groups["syncer"].Seconds(), view.syncerCPU.Seconds()),
		fmt.Sprintf("%.1fs / %.1fs", direct.cpu.groups["syncer"].Seconds(), direct.syncerCPU.Seconds()), ratio(view.syncerCPU, direct.syncerCPU))
	add("virtual-workspace server RSS idle → at the end, peak",
		fmt.Sprintf("%s → %s, peak %s", mib(view.vwIdle.rss), mib(view.vw.rss), mib(view.vw.hwm)), "no server", "–")
	add("virtual-workspace server CPU: throughput phase / whole life",
		fmt.Sprintf("%.1fs / %.1fs", view.cpu.groups[vwGroup].Seconds(), view.vw.cpu.Seconds()), "no server", "–")
	add("syncer + virtual-workspace server RSS at the end",
		mib(view.syncer.rss+view.vw.rss), mib(direct.syncer.rss), fmt.Sprintf("%.2f", float64(view.syncer.rss+view.vw.rss)/float64(direct.syncer.rss)))
	r.rep.detail("B8 direct mode, throughput phase CPU %s", direct.cpu)
	r.rep.detail("B8 virtual-workspace mode, throughput phase CPU %s", view.cpu)
	if direct.watches.registered != 0 || view.watches.registered != 0 {
		r.rep.detail("B8 apiserver_registered_watchers on the workload apiservers, after − before: direct %.0f, virtual-workspace %.0f",
			direct.watches.registered, view.watches.registered)
	}
}

func ratio(a, b time.Duration) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a.Seconds()/b.Seconds())
}
