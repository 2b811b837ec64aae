package tunnel

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/streaming/pkg/httpstream"
)

// Protocol is the Upgrade token of a tunnel request and its 101 answer.
const Protocol = "tmc-tunnel"

// DefaultPingInterval is how often each end pings the other; a peer silent for
// deadPings intervals is taken for dead.
const DefaultPingInterval = 10 * time.Second

// deadPings is how many ping intervals without a single byte from the peer end a tunnel.
const deadPings = 3

// isTunnelUpgrade reports whether h asks for (or answers with) the tunnel protocol.
func isTunnelUpgrade(h http.Header) bool {
	return headerHasToken(h, "Connection", "upgrade") && headerHasToken(h, "Upgrade", Protocol)
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// liveConn is the tunnel's connection: every Read must return within timeout, so that a
// peer that stopped answering (both ends ping, so a live peer is never silent that long)
// fails the read and ends the tunnel even without a FIN. Bytes the HTTP upgrade already
// buffered are read first.
type liveConn struct {
	net.Conn
	buffered io.Reader
	timeout  time.Duration
}

func newLiveConn(conn net.Conn, br *bufio.Reader, timeout time.Duration) *liveConn {
	c := &liveConn{Conn: conn, timeout: timeout}
	if br != nil && br.Buffered() > 0 {
		data, _ := br.Peek(br.Buffered())
		c.buffered = strings.NewReader(string(data))
	}
	return c
}

func (c *liveConn) Read(p []byte) (int, error) {
	if c.buffered != nil {
		n, err := c.buffered.Read(p)
		if n > 0 || !errors.Is(err, io.EOF) {
			return n, err
		}
		c.buffered = nil
	}
	if err := c.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// streamConn is one stream of a tunnel as a net.Conn. The stream is bridged to one end of
// a net.Pipe, which gives the conn the deadlines net/http relies on (its server aborts a
// background read with a past read deadline).
type streamConn struct {
	net.Conn
	local, remote net.Addr
}

// newStreamConn bridges stream; release is called once both directions are done.
func newStreamConn(stream httpstream.Stream, local, remote net.Addr, release func()) net.Conn {
	ours, bridge := net.Pipe()
	var wg sync.WaitGroup
	wg.Go(func() {
		// The peer finished or the tunnel ended: our reads end too.
		_, _ = io.Copy(bridge, stream)
		_ = bridge.Close()
	})
	wg.Go(func() {
		_, _ = io.Copy(stream, bridge)
		_ = bridge.Close()
		_ = stream.Close()
	})
	go func() {
		wg.Wait()
		release()
	}()
	return &streamConn{Conn: ours, local: local, remote: remote}
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

// tunnelAddr names a tunnel's end in a stream conn's addresses.
type tunnelAddr string

func (a tunnelAddr) Network() string { return Protocol }
func (a tunnelAddr) String() string  { return string(a) }

// streamListener hands the streams a tunnel accepts to an http.Server.
type streamListener struct {
	addr    net.Addr
	conns   chan net.Conn
	done    chan struct{}
	closing sync.Once
}

func newStreamListener(addr net.Addr) *streamListener {
	return &streamListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// deliver hands conn to Accept, or closes it when the listener is closed.
func (l *streamListener) deliver(conn net.Conn) {
	select {
	case l.conns <- conn:
	case <-l.done:
		_ = conn.Close()
	}
}

func (l *streamListener) Accept() (net.Conn, error) {
	select {
	case conn := <-l.conns:
		return conn, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *streamListener) Close() error {
	l.closing.Do(func() { close(l.done) })
	return nil
}

func (l *streamListener) Addr() net.Addr { return l.addr }
