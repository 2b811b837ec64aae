package localenv

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// FaultProxy is a loopback TCP proxy placed in front of a server (usually an apiserver or
// the front proxy) to inject network faults between a client and that server:
//
//   - Partition: blackhole. Existing connections stop moving bytes, new ones are accepted
//     but never reach the server, so clients see timeouts, as with a real partition.
//   - Heal: traffic flows again; the connections frozen by the partition are closed, as a
//     real network's would be after a long outage, and new ones go through.
//   - SetLatency: every chunk of data is delayed by d in each direction.
//   - ResetConnections: every open connection is closed with a TCP RST.
type FaultProxy struct {
	// Addr is "127.0.0.1:<port>" the proxy listens on.
	Addr string
	// Target is the address traffic is forwarded to.
	Target string

	listener net.Listener
	mu       sync.Mutex
	conns    map[*proxiedConn]bool
	parted   bool
	latency  time.Duration
	healed   chan struct{}
	closed   bool
	wg       sync.WaitGroup
}

type proxiedConn struct {
	client, server net.Conn
	frozen         bool
}

// StartFaultProxy starts a proxy on a free loopback port forwarding to target.
func StartFaultProxy(target string) (*FaultProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("failed to listen: %w", err)
	}
	fp := &FaultProxy{
		Addr:     l.Addr().String(),
		Target:   target,
		listener: l,
		conns:    map[*proxiedConn]bool{},
		healed:   make(chan struct{}),
	}
	close(fp.healed)
	fp.wg.Add(1)
	go fp.acceptLoop()
	return fp, nil
}

func (fp *FaultProxy) acceptLoop() {
	defer fp.wg.Done()
	for {
		c, err := fp.listener.Accept()
		if err != nil {
			return
		}
		fp.wg.Add(1)
		go fp.handle(c)
	}
}

func (fp *FaultProxy) handle(client net.Conn) {
	defer fp.wg.Done()
	// While partitioned, a new connection is accepted and then left hanging: the client's
	// TLS handshake or request times out, as it would against a blackholed route.
	for {
		fp.mu.Lock()
		healed, closed := fp.healed, fp.closed
		fp.mu.Unlock()
		if closed {
			_ = client.Close()
			return
		}
		select {
		case <-healed:
		case <-time.After(50 * time.Millisecond):
			continue
		}
		break
	}
	server, err := net.DialTimeout("tcp", fp.Target, 5*time.Second)
	if err != nil {
		_ = client.Close()
		return
	}
	pc := &proxiedConn{client: client, server: server}
	fp.mu.Lock()
	if fp.closed {
		fp.mu.Unlock()
		_ = client.Close()
		_ = server.Close()
		return
	}
	fp.conns[pc] = true
	fp.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); fp.pipe(pc, server, client) }()
	go func() { defer wg.Done(); fp.pipe(pc, client, server) }()
	wg.Wait()
	fp.mu.Lock()
	delete(fp.conns, pc)
	fp.mu.Unlock()
}

// pipe copies src to dst, honouring partition and latency.
func (fp *FaultProxy) pipe(pc *proxiedConn, dst, src net.Conn) {
	defer func() { _ = dst.Close(); _ = src.Close() }()
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			fp.mu.Lock()
			latency, frozen := fp.latency, pc.frozen || fp.parted
			if fp.parted {
				pc.frozen = true
			}
			fp.mu.Unlock()
			if frozen {
				// Blackholed: drop the bytes and keep reading until the connection dies.
				continue
			}
			if latency > 0 {
				time.Sleep(latency)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}

// Partition blackholes all traffic until Heal.
func (fp *FaultProxy) Partition() {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if fp.parted {
		return
	}
	fp.parted = true
	fp.healed = make(chan struct{})
	for pc := range fp.conns {
		pc.frozen = true
	}
}

// Heal ends a partition. Connections frozen during it are closed.
func (fp *FaultProxy) Heal() {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if !fp.parted {
		return
	}
	fp.parted = false
	for pc := range fp.conns {
		if pc.frozen {
			_ = pc.client.Close()
			_ = pc.server.Close()
		}
	}
	close(fp.healed)
}

// Partitioned reports whether the proxy is partitioned.
func (fp *FaultProxy) Partitioned() bool {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return fp.parted
}

// SetLatency delays each chunk of data by d in each direction (0 disables).
func (fp *FaultProxy) SetLatency(d time.Duration) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	fp.latency = d
}

// ResetConnections closes every open connection with a TCP RST. New connections work.
func (fp *FaultProxy) ResetConnections() int {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	n := 0
	for pc := range fp.conns {
		for _, c := range []net.Conn{pc.client, pc.server} {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
		}
		n++
	}
	return n
}

// OpenConnections returns the number of proxied connections.
func (fp *FaultProxy) OpenConnections() int {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return len(fp.conns)
}

// Close stops the proxy and closes all connections.
func (fp *FaultProxy) Close() error {
	fp.mu.Lock()
	fp.closed = true
	if fp.parted {
		fp.parted = false
		close(fp.healed)
	}
	for pc := range fp.conns {
		_ = pc.client.Close()
		_ = pc.server.Close()
	}
	fp.mu.Unlock()
	err := fp.listener.Close()
	fp.wg.Wait()
	return err
}
