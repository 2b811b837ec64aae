package tunnel

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// connectedTunnel starts a server and a client serving handler, and waits for the tunnel.
func connectedTunnel(t *testing.T, handler http.Handler) *Registry {
	t.Helper()
	reg := NewRegistry(RegistryOptions{PingInterval: testPing})
	srv := tunnelServer(t, reg)
	runClient(t, ClientOptions{URL: srv.URL + "/tunnel", Config: clientConfig(srv, testToken), Handler: handler})
	eventually(t, "the tunnel to connect", func() bool { return reg.Connected(testKey) })
	return reg
}

func TestRequestAndStreamedResponse(t *testing.T) {
	secondLine := make(chan struct{})
	reg := connectedTunnel(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = fmt.Fprintf(w, "line 1 for %s %s\n", req.Header.Get("X-Tmc-Workspace"), req.URL.RequestURI())
		w.(http.Flusher).Flush()
		// The second line is written only once the first was read through the tunnel.
		<-secondLine
		_, _ = fmt.Fprintln(w, "line 2")
	}))

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://tunnel/api/v1/namespaces/demo/pods/p/log?follow=true", nil)
	req.Header.Set("X-Tmc-Workspace", "ws1")
	resp, err := tunnelClient(reg, testKey).Do(req)
	if err != nil {
		t.Fatalf("request through the tunnel: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body := bufio.NewReader(resp.Body)
	line, err := body.ReadString('\n')
	if err != nil || line != "line 1 for ws1 /api/v1/namespaces/demo/pods/p/log?follow=true\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(secondLine)
	rest, err := io.ReadAll(body)
	if err != nil || string(rest) != "line 2\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
}

// echoUpgrade answers an "Upgrade: echo" request with 101 and then echoes upper-cased.
func echoUpgrade(w http.ResponseWriter, req *http.Request) {
	if req.Header.Get("Upgrade") != "echo" {
		http.Error(w, "upgrade to echo expected", http.StatusBadRequest)
		return
	}
	conn, brw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	defer func() { _ = conn.Close() }()
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	_ = brw.Flush()
	buf := make([]byte, 1024)
	for {
		n, err := brw.Read(buf)
		if n > 0 {
			if _, werr := conn.Write(bytes.ToUpper(buf[:n])); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func TestUpgradedConnection(t *testing.T) {
	reg := connectedTunnel(t, http.HandlerFunc(echoUpgrade))
	conn, err := reg.DialContext(t.Context(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if _, err := io.WriteString(conn, "POST /api/v1/namespaces/demo/pods/p/exec HTTP/1.1\r\nHost: tunnel\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("answer %v, %v", resp, err)
	}
	// After a 101 the body is empty: the connection carries the upgraded bytes.
	_ = resp.Body.Close()
	for _, word := range []string{"hello", "again"} {
		if _, err := io.WriteString(conn, word); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(word))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != strings.ToUpper(word) {
			t.Fatalf("echo of %q: %q, %v", word, got, err)
		}
	}
}

func TestConcurrentStreams(t *testing.T) {
	bServed := make(chan struct{})
	reg := connectedTunnel(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/a" {
			// /a can only finish once /b was served beside it.
			<-bServed
		} else {
			defer close(bServed)
		}
		_, _ = fmt.Fprint(w, req.URL.Path)
	}))
	client := tunnelClient(reg, testKey)
	got := make(chan string, 2)
	for _, path := range []string{"/a", "/b"} {
		go func() {
			resp, err := client.Get("http://tunnel" + path)
			if err != nil {
				got <- err.Error()
				return
			}
			defer func() { _ = resp.Body.Close() }()
			body, _ := io.ReadAll(resp.Body)
			got <- string(body)
		}()
	}
	seen := map[string]bool{<-got: true, <-got: true}
	if !seen["/a"] || !seen["/b"] {
		t.Fatalf("answers %v", seen)
	}
}

func TestNewerTunnelReplacesOlder(t *testing.T) {
	reg := NewRegistry(RegistryOptions{PingInterval: testPing})
	srv := tunnelServer(t, reg)
	answer := func(s string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprint(w, s) })
	}
	var first stateLog
	// The first client waits long before reconnecting, so that the second keeps the key.
	runClient(t, ClientOptions{URL: srv.URL, Config: clientConfig(srv, testToken), Handler: answer("first"), OnState: first.onState,
		Backoff: wait.Backoff{Duration: time.Hour, Cap: time.Hour}})
	eventually(t, "the first tunnel", func() bool { return first.connects.Load() == 1 })
	var second stateLog
	runClient(t, ClientOptions{URL: srv.URL, Config: clientConfig(srv, testToken), Handler: answer("second"), OnState: second.onState})
	eventually(t, "the second tunnel", func() bool { return second.connects.Load() >= 1 })
	eventually(t, "the first tunnel to be closed", func() bool { return first.disconnects.Load() >= 1 })

	resp, err := tunnelClient(reg, testKey).Get("http://tunnel/")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if body, _ := io.ReadAll(resp.Body); string(body) != "second" {
		t.Fatalf("served by %q, want the second tunnel", body)
	}
}

func TestClientReconnectsAfterDrop(t *testing.T) {
	reg := NewRegistry(RegistryOptions{PingInterval: testPing})
	srv := tunnelServer(t, reg)
	proxy := newTCPProxy(t, srv.Listener.Addr().String())
	var state stateLog
	runClient(t, ClientOptions{URL: "https://" + proxy.Addr() + "/tunnel", Config: withServerName(clientConfig(srv, testToken)),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprint(w, "ok") }), OnState: state.onState})
	eventually(t, "the tunnel", func() bool { return state.connects.Load() >= 1 && reg.Connected(testKey) })

	connects, disconnects := state.connects.Load(), state.disconnects.Load()
	proxy.Drop()
	eventually(t, "the client to notice", func() bool { return state.disconnects.Load() > disconnects })
	eventually(t, "the client to reconnect", func() bool { return state.connects.Load() > connects && reg.Connected(testKey) })
	expectOK(t, reg)
}

func TestDeadPeerDetected(t *testing.T) {
	reg := NewRegistry(RegistryOptions{PingInterval: testPing})
	srv := tunnelServer(t, reg)
	proxy := newTCPProxy(t, srv.Listener.Addr().String())
	var state stateLog
	runClient(t, ClientOptions{URL: "https://" + proxy.Addr() + "/tunnel", Config: withServerName(clientConfig(srv, testToken)),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprint(w, "ok") }), OnState: state.onState})
	eventually(t, "the tunnel", func() bool { return state.connects.Load() >= 1 && reg.Connected(testKey) })

	// A partition: no byte passes and nobody sees a FIN. Both ends must give up.
	connects, disconnects := state.connects.Load(), state.disconnects.Load()
	proxy.Pause()
	eventually(t, "the client to notice the silent server", func() bool { return state.disconnects.Load() > disconnects })
	eventually(t, "the server to drop the silent tunnel", func() bool { return !reg.Connected(testKey) })
	proxy.Resume()
	eventually(t, "the client to reconnect", func() bool { return state.connects.Load() > connects && reg.Connected(testKey) })
	expectOK(t, reg)
}

func TestDialWithoutTunnel(t *testing.T) {
	reg := NewRegistry(RegistryOptions{})
	_, err := reg.DialContext(t.Context(), testKey)
	if !errors.Is(err, ErrNoTunnel) || !strings.Contains(err.Error(), testKey) {
		t.Fatalf("got %v, want ErrNoTunnel naming %s", err, testKey)
	}
	if reg.Connected(testKey) {
		t.Fatal("connected without a tunnel")
	}
}

func TestRefusedTunnelRetriesSlowly(t *testing.T) {
	var attempts atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		attempts.Add(1)
		http.Error(w, `synctargets.workload.kcp.io "target1" is forbidden`, http.StatusForbidden)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	_, _, err := dial(t.Context(), ClientOptions{URL: u.String(), Config: clientConfig(srv, "wrong")})
	var refused *authError
	if !errors.As(err, &refused) || refused.code != http.StatusForbidden || !strings.Contains(refused.reason, "is forbidden") {
		t.Fatalf("got %v, want a refusal with the server's reason", err)
	}
	b := newBackoff(testBackoffOf(time.Hour))
	if d := retryDelay(b, err); d != time.Hour {
		t.Fatalf("delay after a refusal %v, want the cap", d)
	}
	if d := retryDelay(b, errors.New("reset")); d != 10*time.Millisecond {
		t.Fatalf("delay after a failure %v, want the initial step", d)
	}
}

func TestBackoffGrowsToCapAndResets(t *testing.T) {
	b := newBackoff(wait0(time.Second, 30*time.Second))
	var got []time.Duration
	for range 7 {
		got = append(got, b.next())
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("delays %v", got)
		}
	}
	b.reset()
	if d := b.next(); d != time.Second {
		t.Fatalf("after reset %v", d)
	}
	if d := newBackoff(wait0(0, 0)).next(); d < time.Second || d > 1200*time.Millisecond {
		t.Fatalf("default first delay %v, want 1s with 20%% jitter", d)
	}
}

func expectOK(t *testing.T, reg *Registry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), pollTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://tunnel/", nil)
	resp, err := tunnelClient(reg, testKey).Do(req)
	if err != nil {
		t.Fatalf("request after reconnecting: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if body, _ := io.ReadAll(resp.Body); string(body) != "ok" {
		t.Fatalf("answer %q", body)
	}
}
