package tunnel

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// Backoff defaults of Run: 1 s doubling to 30 s, 20 % jitter, reset after a tunnel that
// lived a minute.
const (
	defaultBackoffInitial = time.Second
	defaultBackoffCap     = 30 * time.Second
	defaultBackoffJitter  = 0.2
	stableAfter           = time.Minute
	// exchangeTimeout bounds the dial, TLS handshake and upgrade exchange.
	exchangeTimeout = 30 * time.Second
)

// ClientOptions configure Run.
type ClientOptions struct {
	// URL is where the tunnel is opened (a syncer view URL + TunnelSubpath).
	URL string
	// Config gives the TLS settings and the credential (bearer token, client certificate,
	// exec plugin) of the syncer; its Host is not used.
	Config *rest.Config
	// Handler serves every request the server sends through the tunnel.
	Handler http.Handler
	// Backoff between attempts: Duration (initial), Factor, Jitter and Cap are used; the
	// zero value means 1 s doubling to 30 s with 20 % jitter.
	Backoff wait.Backoff
	// PingInterval is how often the syncer pings the server (DefaultPingInterval when 0);
	// a server silent for three intervals ends the tunnel.
	PingInterval time.Duration
	// OnState, when set, is called with true when the tunnel connects and false when it
	// ends.
	OnState func(connected bool)
	// Metrics, when set, receive the connection state and reconnects.
	Metrics *ClientMetrics
}

// authError is a 401 or 403 answer to the tunnel request.
type authError struct {
	code   int
	reason string
}

func (e *authError) Error() string {
	return fmt.Sprintf("the server refused the tunnel (%d %s): %s", e.code, http.StatusText(e.code), e.reason)
}

// Run holds the tunnel at opts.URL until ctx ends: it dials, serves opts.Handler on every
// stream the server opens, and reconnects with jittered exponential backoff after any
// failure (after a 401 or 403 at the backoff's cap, as the SyncTarget may be re-created).
// It returns nil when ctx ends, or an error for invalid options.
func Run(ctx context.Context, opts ClientOptions) error {
	switch {
	case opts.URL == "":
		return errors.New("a tunnel URL is required")
	case opts.Config == nil:
		return errors.New("a rest config is required")
	case opts.Handler == nil:
		return errors.New("a handler is required")
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = DefaultPingInterval
	}
	logger := klog.FromContext(ctx).WithValues("tunnelURL", opts.URL)
	ctx = klog.NewContext(ctx, logger)
	b := newBackoff(opts.Backoff)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			opts.Metrics.reconnect(opts.URL)
		}
		start := time.Now()
		connected, err := runOnce(ctx, opts)
		if ctx.Err() != nil {
			return nil
		}
		if connected && time.Since(start) > stableAfter {
			b.reset()
		}
		delay := retryDelay(b, err)
		if refused := (*authError)(nil); errors.As(err, &refused) {
			logger.Info("The server refused the tunnel; retrying slowly", "code", refused.code, "reason", refused.reason, "retryAfter", delay)
		} else {
			logger.Info("Tunnel ended; reconnecting", "err", err, "retryAfter", delay)
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
	}
}

// retryDelay is the wait after err: the backoff's next step, or its cap after a refusal
// (the credential will not change within seconds; the SyncTarget may be re-created).
func retryDelay(b *backoff, err error) time.Duration {
	var refused *authError
	if errors.As(err, &refused) {
		return b.slow()
	}
	return b.next()
}

// runOnce dials and serves one tunnel until it ends; connected says whether it got that
// far.
func runOnce(ctx context.Context, opts ClientOptions) (bool, error) {
	raw, br, err := dial(ctx, opts)
	if err != nil {
		return false, err
	}
	logger := klog.FromContext(ctx)
	logger.Info("Tunnel connected")
	opts.Metrics.setConnected(opts.URL, true)
	if opts.OnState != nil {
		opts.OnState(true)
	}
	defer func() {
		opts.Metrics.setConnected(opts.URL, false)
		if opts.OnState != nil {
			opts.OnState(false)
		}
	}()
	return true, serve(ctx, raw, br, opts)
}

// dial opens the connection, over TLS with ALPN http/1.1 for https, and upgrades it.
func dial(ctx context.Context, opts ClientOptions) (net.Conn, *bufio.Reader, error) {
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to parse the tunnel URL: %w", err)
	}
	header, err := credentialHeaders(opts.Config, u)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	raw, err := dialTransport(ctx, opts.Config, u)
	if err != nil {
		return nil, nil, err
	}
	br, err := upgrade(ctx, raw, u, header)
	if err != nil {
		_ = raw.Close()
		return nil, nil, err
	}
	return raw, br, nil
}

func dialTransport(ctx context.Context, cfg *rest.Config, u *url.URL) (net.Conn, error) {
	address := u.Host
	if u.Port() == "" {
		port := "443"
		if u.Scheme == "http" {
			port = "80"
		}
		address = net.JoinHostPort(u.Hostname(), port)
	}
	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	raw, err := dialer.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, fmt.Errorf("failed to dial %s: %w", address, err)
	}
	if u.Scheme == "http" {
		return raw, nil
	}
	tlsConfig, err := rest.TLSConfigFor(cfg)
	if err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("failed to build the TLS config: %w", err)
	}
	if tlsConfig == nil {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tlsConfig = tlsConfig.Clone()
	// The upgrade needs HTTP/1.1: an HTTP/2 connection cannot be taken over.
	tlsConfig.NextProtos = []string{"http/1.1"}
	if tlsConfig.ServerName == "" {
		tlsConfig.ServerName = u.Hostname()
	}
	tlsConn := tls.Client(raw, tlsConfig)
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("failed the TLS handshake with %s: %w", address, err)
	}
	return tlsConn, nil
}

// upgrade sends the tunnel request on raw and reads the answer; the reader may hold the
// first bytes of the tunnel.
func upgrade(ctx context.Context, raw net.Conn, u *url.URL, header http.Header) (*bufio.Reader, error) {
	if deadline, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(deadline)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("failed to build the tunnel request: %w", err)
	}
	req.Header = header
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", Protocol)
	if err := req.Write(raw); err != nil {
		return nil, fmt.Errorf("failed to send the tunnel request: %w", err)
	}
	br := bufio.NewReader(raw)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, fmt.Errorf("failed to read the answer to the tunnel request: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
		reason := strings.TrimSpace(string(body))
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			return nil, &authError{code: resp.StatusCode, reason: reason}
		}
		return nil, fmt.Errorf("the server answered the tunnel request with %s: %s", resp.Status, reason)
	}
	if !isTunnelUpgrade(resp.Header) {
		return nil, fmt.Errorf("the server switched to %q, not %s", resp.Header.Get("Upgrade"), Protocol)
	}
	_ = raw.SetDeadline(time.Time{})
	return br, nil
}

// serve runs the tunnel on raw until it ends or ctx does: an http.Server serves
// opts.Handler on every stream the server opens.
func serve(ctx context.Context, raw net.Conn, br *bufio.Reader, opts ClientOptions) error {
	listener := newStreamListener(raw.LocalAddr())
	ready := make(chan struct{})
	var conn httpstream.Connection
	accept := func(stream httpstream.Stream, replySent <-chan struct{}) error {
		if stream.Headers().Get(streamTypeHeader) != "http" {
			return fmt.Errorf("unexpected stream type %q", stream.Headers().Get(streamTypeHeader))
		}
		go func() {
			<-replySent
			<-ready
			listener.deliver(newStreamConn(stream, raw.LocalAddr(), raw.RemoteAddr(), func() {
				if conn != nil {
					conn.RemoveStreams(stream)
				}
			}))
		}()
		return nil
	}
	conn, err := spdy.NewServerConnectionWithPings(newLiveConn(raw, br, deadPings*opts.PingInterval), accept, opts.PingInterval)
	close(ready)
	if err != nil {
		_ = raw.Close()
		return fmt.Errorf("failed to start the tunnel: %w", err)
	}
	srv := &http.Server{
		Handler:           opts.Handler,
		ReadHeaderTimeout: exchangeTimeout,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(listener)
	}()
	var why error
	select {
	case <-conn.CloseChan():
		why = errors.New("the tunnel connection closed")
	case <-ctx.Done():
		why = ctx.Err()
	}
	_ = listener.Close()
	_ = srv.Close()
	_ = conn.Close()
	_ = raw.Close()
	<-served
	return why
}

// credentialHeaders returns the headers client-go would send with cfg (bearer token, token
// file, exec plugin, impersonation, user agent), for a request to u.
func credentialHeaders(cfg *rest.Config, u *url.URL) (http.Header, error) {
	capture := &headerCapture{}
	rt, err := rest.HTTPWrappersForConfig(cfg, capture)
	if err != nil {
		return nil, fmt.Errorf("failed to build the tunnel credential: %w", err)
	}
	req, err := http.NewRequest(http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("failed to build the tunnel request: %w", err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("failed to get the tunnel credential: %w", err)
	}
	_ = resp.Body.Close()
	return capture.header, nil
}

// headerCapture is the innermost round tripper of credentialHeaders: it records the
// headers the wrappers set and answers without sending anything.
type headerCapture struct{ header http.Header }

func (c *headerCapture) RoundTrip(req *http.Request) (*http.Response, error) {
	c.header = req.Header.Clone()
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody, Request: req}, nil
}

// backoff is Run's jittered exponential backoff.
type backoff struct {
	initial, limit, current time.Duration
	factor, jitter          float64
}

func newBackoff(b wait.Backoff) *backoff {
	if b.Duration <= 0 {
		b = wait.Backoff{Duration: defaultBackoffInitial, Factor: 2, Jitter: defaultBackoffJitter, Cap: defaultBackoffCap}
	}
	if b.Factor < 1 {
		b.Factor = 1
	}
	if b.Cap <= 0 {
		b.Cap = defaultBackoffCap
	}
	return &backoff{initial: b.Duration, limit: b.Cap, current: b.Duration, factor: b.Factor, jitter: b.Jitter}
}

// next returns the next delay and grows the following one up to the cap.
func (b *backoff) next() time.Duration {
	d := b.current
	b.current = min(time.Duration(float64(b.current)*b.factor), b.limit)
	return b.jittered(d)
}

// slow returns the delay after a refusal: the cap.
func (b *backoff) slow() time.Duration { return b.jittered(b.limit) }

// jittered adds up to jitter×d (wait.Jitter would read 0 as 1).
func (b *backoff) jittered(d time.Duration) time.Duration {
	if b.jitter <= 0 {
		return d
	}
	return wait.Jitter(d, b.jitter)
}

func (b *backoff) reset() { b.current = b.initial }
