package syncer

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"sync"

	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/tunnel"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// tunnels holds one reverse tunnel (pkg/tunnel) per syncer view of the SyncTarget, at
// <syncerURL>/tunnel, with the syncer's upstream credential, in every upstream mode: the
// virtual-workspace server reaches upsynced pods' log, exec, attach and portforward
// through them (pod_access.go serves them). Tunnels start and stop as
// status.virtualWorkspaces changes; nothing else depends on them.
type tunnels struct {
	upstreamConfig *rest.Config
	handler        http.Handler
	metrics        *tunnel.ClientMetrics
	// run is tunnel.Run (tests replace it).
	run func(context.Context, tunnel.ClientOptions) error

	mu      sync.Mutex
	running map[string]context.CancelFunc
	wg      sync.WaitGroup
}

func newTunnels(upstreamConfig *rest.Config, handler http.Handler, metrics *tunnel.ClientMetrics) *tunnels {
	return &tunnels{upstreamConfig: upstreamConfig, handler: handler, metrics: metrics, run: tunnel.Run, running: map[string]context.CancelFunc{}}
}

// tunnelURLs returns the tunnel URLs of the syncer view URLs, sorted.
func tunnelURLs(syncerURLs []string) []string {
	urls := make([]string, 0, len(syncerURLs))
	for _, u := range syncerURLs {
		urls = append(urls, strings.TrimSuffix(u, "/")+workloadv1alpha1.TunnelSubpath)
	}
	sort.Strings(urls)
	return urls
}

// set runs a tunnel to each syncer view URL (until ctx ends) and stops the others.
func (t *tunnels) set(ctx context.Context, syncerURLs []string) {
	logger := klog.FromContext(ctx)
	want := map[string]bool{}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, url := range tunnelURLs(syncerURLs) {
		want[url] = true
		if t.running[url] != nil {
			continue
		}
		tunnelCtx, cancel := context.WithCancel(ctx)
		t.running[url] = cancel
		logger.Info("Opening the tunnel to the virtual-workspace server", "tunnelURL", url)
		t.wg.Go(func() {
			err := t.run(tunnelCtx, tunnel.ClientOptions{URL: url, Config: t.upstreamConfig, Handler: t.handler, Metrics: t.metrics})
			if err != nil {
				logger.Error(err, "The tunnel cannot run", "tunnelURL", url)
			}
		})
	}
	for url, cancel := range t.running {
		if !want[url] {
			logger.Info("Closing the tunnel of a syncer view no longer listed", "tunnelURL", url)
			cancel()
			delete(t.running, url)
		}
	}
}

// stop closes every tunnel and waits for them.
func (t *tunnels) stop() {
	t.mu.Lock()
	for url, cancel := range t.running {
		cancel()
		delete(t.running, url)
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// newTunnels builds the tunnels and their pod-access handler, unless cfg.Tunnel is off
// (then nil). The handler maps namespaces with the namespace manager's locator lookups.
func (s *Syncer) newTunnels(namespaces *namespaceManager) (*tunnels, error) {
	if !s.cfg.Tunnel {
		return nil, nil
	}
	handler, err := newPodAccessHandler(s.target.key, namespaces.downstreamNamespaceOf, s.downstreamKube, s.cfg.DownstreamConfig)
	if err != nil {
		return nil, err
	}
	return newTunnels(s.cfg.UpstreamConfig, handler, tunnel.NewClientMetrics(s.metrics.tmc.Registerer())), nil
}
