package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// ErrNoTunnel is returned (wrapped with the key) by DialContext when no tunnel of that key
// is connected.
var ErrNoTunnel = errors.New("no tunnel connected")

// streamTypeHeader is set on every stream the server opens; it marks one HTTP exchange.
const streamTypeHeader = "X-Tmc-Stream"

// RegistryOptions configure a Registry.
type RegistryOptions struct {
	// PingInterval is how often the server pings each syncer (DefaultPingInterval when 0);
	// a syncer silent for three intervals loses its tunnel.
	PingInterval time.Duration
	// Registerer registers tmc_virtualworkspace_tunnels; nil registers nothing.
	Registerer prometheus.Registerer
}

// Registry holds the tunnels syncers opened to the server, one per SyncTarget key.
type Registry struct {
	pingInterval time.Duration
	tunnels      prometheus.Gauge

	mu      sync.Mutex
	byKey   map[string]*serverTunnel
	counter uint64
}

// serverTunnel is one accepted tunnel.
type serverTunnel struct {
	key    string
	id     uint64
	conn   httpstream.Connection
	remote net.Addr
}

// NewRegistry returns an empty Registry; it registers its gauge with opts.Registerer (a
// gauge already registered there is shared).
func NewRegistry(opts RegistryOptions) *Registry {
	r := &Registry{pingInterval: opts.PingInterval, byKey: map[string]*serverTunnel{}}
	if r.pingInterval <= 0 {
		r.pingInterval = DefaultPingInterval
	}
	r.tunnels = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tmc_virtualworkspace_tunnels",
		Help: "Syncer tunnels connected to this virtual-workspace server.",
	})
	r.tunnels = register(opts.Registerer, r.tunnels)
	return r
}

// Accept takes over req, already authorised as the syncer of SyncTarget key, as that key's
// tunnel: it answers 101 with the tunnel protocol, replaces an older tunnel of the same key
// (closing it), and returns when the tunnel ends. A request that is not a tunnel upgrade
// gets 400.
func (r *Registry) Accept(w http.ResponseWriter, req *http.Request, key string) {
	logger := klog.FromContext(req.Context()).WithValues("syncTargetKey", key)
	if req.Method != http.MethodGet || !isTunnelUpgrade(req.Header) {
		http.Error(w, "expected a GET upgrading to "+Protocol, http.StatusBadRequest)
		return
	}
	hijacker, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "the connection cannot be upgraded (HTTP/2?): the tunnel needs HTTP/1.1", http.StatusBadRequest)
		return
	}
	raw, brw, err := hijacker.Hijack()
	if err != nil {
		logger.Error(err, "Failed to take over the tunnel connection")
		return
	}
	_ = raw.SetDeadline(time.Time{})
	if _, err := raw.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + Protocol + "\r\n\r\n")); err != nil {
		logger.Error(err, "Failed to answer the tunnel upgrade")
		_ = raw.Close()
		return
	}
	conn, err := spdy.NewClientConnectionWithPings(newLiveConn(raw, brw.Reader, deadPings*r.pingInterval), r.pingInterval)
	if err != nil {
		logger.Error(err, "Failed to start the tunnel")
		_ = raw.Close()
		return
	}
	t := r.add(key, conn, raw.RemoteAddr())
	logger.V(2).Info("Tunnel connected", "remote", raw.RemoteAddr().String())
	<-conn.CloseChan()
	r.remove(t)
	_ = conn.Close()
	_ = raw.Close()
	logger.V(2).Info("Tunnel disconnected", "remote", raw.RemoteAddr().String())
}

// add registers a new tunnel of key, closing the one it replaces.
func (r *Registry) add(key string, conn httpstream.Connection, remote net.Addr) *serverTunnel {
	r.mu.Lock()
	r.counter++
	t := &serverTunnel{key: key, id: r.counter, conn: conn, remote: remote}
	old := r.byKey[key]
	r.byKey[key] = t
	r.tunnels.Set(float64(len(r.byKey)))
	r.mu.Unlock()
	if old != nil {
		_ = old.conn.Close()
	}
	return t
}

// remove forgets t unless a newer tunnel replaced it.
func (r *Registry) remove(t *serverTunnel) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byKey[t.key] == t {
		delete(r.byKey, t.key)
	}
	r.tunnels.Set(float64(len(r.byKey)))
}

func (r *Registry) get(key string) *serverTunnel {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byKey[key]
}

// Connected reports whether a tunnel of key is connected.
func (r *Registry) Connected(key string) bool { return r.get(key) != nil }

// DialContext opens a new stream over key's tunnel, to carry one HTTP/1.1 exchange the
// syncer serves (an upgrade continues on it). It fails with ErrNoTunnel when none is
// connected.
func (r *Registry) DialContext(ctx context.Context, key string) (net.Conn, error) {
	t := r.get(key)
	if t == nil {
		return nil, fmt.Errorf("%w for SyncTarget %s", ErrNoTunnel, key)
	}
	type result struct {
		stream httpstream.Stream
		err    error
	}
	created := make(chan result, 1)
	go func() {
		stream, err := t.conn.CreateStream(http.Header{streamTypeHeader: []string{"http"}})
		created <- result{stream, err}
	}()
	select {
	case <-ctx.Done():
		go func() {
			if res := <-created; res.stream != nil {
				_ = res.stream.Reset()
				t.conn.RemoveStreams(res.stream)
			}
		}()
		return nil, fmt.Errorf("failed to open a stream to SyncTarget %s: %w", key, ctx.Err())
	case res := <-created:
		if res.err != nil {
			return nil, fmt.Errorf("failed to open a stream to SyncTarget %s: %w", key, res.err)
		}
		local := tunnelAddr(key + "#" + strconv.FormatUint(t.id, 10))
		return newStreamConn(res.stream, local, t.remote, func() { t.conn.RemoveStreams(res.stream) }), nil
	}
}
