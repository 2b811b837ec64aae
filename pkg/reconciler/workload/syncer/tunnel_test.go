package syncer

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"

	"github.com/tmc-dev/tmc/pkg/tunnel"
)

// fakeTunnelRuns records the tunnels running.
type fakeTunnelRuns struct {
	mu      sync.Mutex
	running map[string]bool
	configs map[string]*rest.Config
}

func (f *fakeTunnelRuns) run(ctx context.Context, opts tunnel.ClientOptions) error {
	f.mu.Lock()
	f.running[opts.URL] = true
	f.configs[opts.URL] = opts.Config
	f.mu.Unlock()
	<-ctx.Done()
	f.mu.Lock()
	delete(f.running, opts.URL)
	f.mu.Unlock()
	return nil
}

func (f *fakeTunnelRuns) urls() map[string]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]bool{}
	for u := range f.running {
		out[u] = true
	}
	return out
}

func TestTunnelsFollowSyncerViews(t *testing.T) {
	upstream := &rest.Config{BearerToken: "syncer-token"}
	fake := &fakeTunnelRuns{running: map[string]bool{}, configs: map[string]*rest.Config{}}
	ts := newTunnels(upstream, http.NotFoundHandler(), nil)
	ts.run = fake.run
	const shardA, shardB = "https://vw-a/services/syncer/lc/east/uid", "https://vw-b/services/syncer/lc/east/uid/"
	expect := func(what string, want ...string) {
		t.Helper()
		err := wait.PollUntilContextTimeout(t.Context(), 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			got := fake.urls()
			if len(got) != len(want) {
				return false, nil
			}
			for _, u := range want {
				if !got[u] {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			t.Fatalf("%s: running %v, want %v", what, fake.urls(), want)
		}
	}

	ts.set(t.Context(), []string{shardA, shardB})
	expect("two views", shardA+"/tunnel", "https://vw-b/services/syncer/lc/east/uid/tunnel")
	ts.set(t.Context(), []string{shardA, shardB})
	expect("unchanged views", shardA+"/tunnel", "https://vw-b/services/syncer/lc/east/uid/tunnel")
	ts.set(t.Context(), []string{shardB})
	expect("a view removed", "https://vw-b/services/syncer/lc/east/uid/tunnel")
	fake.mu.Lock()
	if fake.configs[shardA+"/tunnel"] != upstream {
		t.Errorf("the tunnel does not use the syncer's upstream credential")
	}
	fake.mu.Unlock()
	ts.stop()
	if got := fake.urls(); len(got) != 0 {
		t.Fatalf("after stop still running %v", got)
	}
}

func TestTunnelOff(t *testing.T) {
	s := &Syncer{cfg: &Config{Tunnel: false}}
	ts, err := s.newTunnels(nil)
	if err != nil || ts != nil {
		t.Fatalf("newTunnels with the tunnel off = %v, %v; want none", ts, err)
	}
}
