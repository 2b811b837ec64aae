package tunnel

import (
	"context"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
)

const (
	testToken    = "syncer-secret"
	testKey      = "cluster1-target1"
	testPing     = 250 * time.Millisecond
	pollInterval = 20 * time.Millisecond
	pollTimeout  = 20 * time.Second
)

// testBackoff retries quickly, so that reconnects are seen within the poll deadlines.
var testBackoff = wait.Backoff{Duration: 20 * time.Millisecond, Factor: 2, Cap: 200 * time.Millisecond}

// tunnelServer is an httptest TLS server accepting tunnels of testKey for testToken.
func tunnelServer(t *testing.T, reg *Registry) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Authorization") != "Bearer "+testToken {
			http.Error(w, "forbidden: not the syncer of this SyncTarget", http.StatusForbidden)
			return
		}
		reg.Accept(w, req, testKey)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// clientConfig trusts srv and carries token.
func clientConfig(srv *httptest.Server, token string) *rest.Config {
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return &rest.Config{BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: ca}}
}

// stateLog records OnState calls.
type stateLog struct {
	connects, disconnects atomic.Int32
}

func (s *stateLog) onState(connected bool) {
	if connected {
		s.connects.Add(1)
	} else {
		s.disconnects.Add(1)
	}
}

// runClient runs Run until the test ends.
func runClient(t *testing.T, opts ClientOptions) {
	t.Helper()
	if opts.PingInterval == 0 {
		opts.PingInterval = testPing
	}
	if opts.Backoff.Duration == 0 {
		opts.Backoff = testBackoff
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v", err)
		}
	})
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), pollInterval, pollTimeout, true, func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// tunnelClient sends requests through reg's tunnel of key, one stream per request.
func tunnelClient(reg *Registry, key string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return reg.DialContext(ctx, key) },
		DisableKeepAlives: true,
	}}
}

// tcpProxy forwards to a backend; it can drop every connection, or pause: connections
// stay open but no byte passes (a partition without a FIN), and new ones are refused.
type tcpProxy struct {
	listener net.Listener
	backend  string

	mu     sync.Mutex
	paused bool
	resume chan struct{}
	conns  map[net.Conn]bool
}

func newTCPProxy(t *testing.T, backend string) *tcpProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{listener: l, backend: backend, resume: make(chan struct{}), conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() {
		_ = l.Close()
		p.Resume()
		p.Drop()
	})
	return p
}

func (p *tcpProxy) Addr() string { return p.listener.Addr().String() }

func (p *tcpProxy) serve() {
	for {
		front, err := p.listener.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		paused := p.paused
		p.mu.Unlock()
		if paused {
			_ = front.Close()
			continue
		}
		back, err := net.Dial("tcp", p.backend)
		if err != nil {
			_ = front.Close()
			continue
		}
		p.track(front, back)
		go p.pipe(front, back)
		go p.pipe(back, front)
	}
}

func (p *tcpProxy) track(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		p.conns[c] = true
	}
}

// pipe copies src to dst, holding every chunk while paused.
func (p *tcpProxy) pipe(src, dst net.Conn) {
	defer func() { _ = src.Close(); _ = dst.Close() }()
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			paused, resume := p.paused, p.resume
			p.mu.Unlock()
			if paused {
				<-resume
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Pause stops every byte; Resume lets them flow again.
func (p *tcpProxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = true
}

func (p *tcpProxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.paused = false
		close(p.resume)
		p.resume = make(chan struct{})
	}
}

// Drop closes every connection (the peers see a FIN).
func (p *tcpProxy) Drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// testBackoffOf starts at 10ms and waits cap after a refusal, without jitter.
func testBackoffOf(limit time.Duration) wait.Backoff {
	return wait.Backoff{Duration: 10 * time.Millisecond, Factor: 2, Cap: limit}
}

func wait0(initial, limit time.Duration) wait.Backoff {
	return wait.Backoff{Duration: initial, Factor: 2, Cap: limit}
}

// withServerName keeps verifying the httptest certificate when dialling through a proxy.
func withServerName(cfg *rest.Config) *rest.Config {
	cfg.ServerName = "127.0.0.1"
	return cfg
}
