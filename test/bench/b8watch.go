package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/tmc-dev/tmc/pkg/localenv"
)

// watchCounts are watches being served, by resource ("configmaps", "deployments.apps").
type watchCounts map[string]float64

func (c watchCounts) total() float64 {
	var t float64
	for _, v := range c {
		t += v
	}
	return t
}

// minus returns c − before, keeping only the resources whose count changed.
func (c watchCounts) minus(before watchCounts) watchCounts {
	out := watchCounts{}
	for res, v := range c {
		if d := v - before[res]; d != 0 {
			out[res] = d
		}
	}
	for res, v := range before {
		if _, ok := c[res]; !ok {
			out[res] = -v
		}
	}
	return out
}

// String prints "N watches: configmaps 100, deployments.apps 100, ...".
func (c watchCounts) String() string {
	names := make([]string, 0, len(c))
	for res := range c {
		names = append(names, res)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, res := range names {
		parts = append(parts, fmt.Sprintf("%s %.0f", res, c[res]))
	}
	if len(parts) == 0 {
		return "0 watches"
	}
	return fmt.Sprintf("%.0f watches (%d types): %s", c.total(), len(c), strings.Join(parts, ", "))
}

// perType prints how many watches each watched type has, e.g. "100 per type (11 types)", or
// the range when they differ.
func (c watchCounts) perType() string {
	if len(c) == 0 {
		return "none"
	}
	lo, hi := -1.0, 0.0
	for _, v := range c {
		if lo < 0 || v < lo {
			lo = v
		}
		hi = max(hi, v)
	}
	if lo == hi {
		return fmt.Sprintf("%.0f per type (%d types)", lo, len(c))
	}
	return fmt.Sprintf("%.0f–%.0f per type (%d types)", lo, hi, len(c))
}

// upstreamWatches are the watches the workload apiservers serve (every one's
// apiserver_longrunning_requests{verb="WATCH"}, summed by resource), those of the location
// workspace's apiserver, etcd's watchers, and apiserver_registered_watchers where the watch
// cache exists (absent with --watch-cache=false).
type upstreamWatches struct {
	workspaces, location watchCounts
	registered           float64
	etcdWatchers         float64
}

func (e *b8Env) scrapeWatches(ctx context.Context) (upstreamWatches, error) {
	out := upstreamWatches{workspaces: watchCounts{}}
	var mu sync.Mutex
	err := runPool(ctx, 4, e.w, func(ctx context.Context, i int) error {
		m, err := localenv.ScrapeAPIServerMetrics(ctx, e.env.Workspace(workloadWS(i+1)).APIServer.AdminConfig())
		if err != nil {
			return err
		}
		c := longrunningWatches(m)
		registered := m.Sum("apiserver_registered_watchers", nil)
		mu.Lock()
		defer mu.Unlock()
		for res, v := range c {
			out.workspaces[res] += v
		}
		out.registered += registered
		return nil
	})
	if err != nil {
		return out, err
	}
	m, err := localenv.ScrapeAPIServerMetrics(ctx, e.env.Workspace(locationWS).APIServer.AdminConfig())
	if err != nil {
		return out, err
	}
	out.location = longrunningWatches(m)
	etcd, err := localenv.ScrapeMetrics(ctx, e.env.Etcd.ClientURL+"/metrics")
	if err != nil {
		return out, err
	}
	out.etcdWatchers = etcd.Sum("etcd_debugging_mvcc_watcher_total", nil)
	return out, nil
}

func (w upstreamWatches) minus(before upstreamWatches) upstreamWatches {
	return upstreamWatches{
		workspaces:   w.workspaces.minus(before.workspaces),
		location:     w.location.minus(before.location),
		registered:   w.registered - before.registered,
		etcdWatchers: w.etcdWatchers - before.etcdWatchers,
	}
}

// longrunningWatches reads apiserver_longrunning_requests{verb="WATCH"} by resource.
func longrunningWatches(m localenv.Metrics) watchCounts {
	out := watchCounts{}
	for _, s := range m.Samples("apiserver_longrunning_requests") {
		if s.Labels["verb"] != "WATCH" || s.Value == 0 {
			continue
		}
		res := s.Labels["resource"]
		if g := s.Labels["group"]; g != "" {
			res += "." + g
		}
		out[res] += s.Value
	}
	return out
}

// viewWatches reads the virtual-workspace server's tmc_virtualworkspace_open_watches by
// resource.
func viewWatches(ctx context.Context, vw *localenv.VirtualWorkspaces) (watchCounts, error) {
	out := watchCounts{}
	if vw == nil {
		return out, nil
	}
	m, err := vw.Metrics(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range m.Samples("tmc_virtualworkspace_open_watches") {
		if s.Value != 0 {
			out[s.Labels["resource"]] += s.Value
		}
	}
	return out, nil
}
