package podaccess

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const (
	connectedKey    = "k2"
	disconnectedKey = "k1"
)

// fakeUpstream is the workspace c1 seen by the server's identity (token "privileged"):
// TokenReviews (tokens alice, carol, bob are those users), SubjectAccessReviews (alice may
// do anything, carol only get pods/log, bob nothing) and a few pods. Every request with
// another credential is recorded as forwarded and answered with an empty list.
type fakeUpstream struct {
	mu        sync.Mutex
	reviews   []map[string]any
	forwarded []*http.Request
}

func (f *fakeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer privileged" {
		f.mu.Lock()
		f.forwarded = append(f.forwarded, r.Clone(context.Background()))
		f.mu.Unlock()
		_, _ = w.Write([]byte(`{"kind":"PodList","apiVersion":"v1","items":[]}`))
		return
	}
	switch {
	case strings.HasSuffix(r.URL.Path, "/tokenreviews"):
		review := map[string]any{}
		_ = json.NewDecoder(r.Body).Decode(&review)
		token, _ := review["spec"].(map[string]any)["token"].(string)
		known := token == "alice" || token == "carol" || token == "bob"
		review["status"] = map[string]any{"authenticated": known, "user": map[string]any{"username": token}}
		_ = json.NewEncoder(w).Encode(review)
	case strings.HasSuffix(r.URL.Path, "/subjectaccessreviews"):
		review := map[string]any{}
		_ = json.NewDecoder(r.Body).Decode(&review)
		f.mu.Lock()
		f.reviews = append(f.reviews, review)
		f.mu.Unlock()
		spec, _ := review["spec"].(map[string]any)
		attrs, _ := spec["resourceAttributes"].(map[string]any)
		allowed := spec["user"] == "alice" || (spec["user"] == "carol" && attrs["verb"] == "get" && attrs["subresource"] == "log")
		review["status"] = map[string]any{"allowed": allowed, "reason": "no RBAC"}
		_ = json.NewEncoder(w).Encode(review)
	case strings.HasPrefix(r.URL.Path, "/clusters/c1/api/v1/namespaces/demo/pods/"):
		pod, ok := fakePods[strings.TrimPrefix(r.URL.Path, "/clusters/c1/api/v1/namespaces/demo/pods/")]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"pods not found"}`))
			return
		}
		_ = json.NewEncoder(w).Encode(pod)
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`))
	}
}

func fakePod(name string, labels, annotations map[string]string) map[string]any {
	return map[string]any{"kind": "Pod", "apiVersion": "v1", "metadata": map[string]any{"name": name, "namespace": "demo", "labels": labels, "annotations": annotations}}
}

var (
	stateLabel = workloadv1alpha1.ClusterResourceStateLabel
	inC1       = map[string]string{"kcp.io/cluster": "lc-c1"}
	fakePods   = map[string]map[string]any{
		// web is upsynced by both targets; only the second in sorted order has a tunnel.
		"web":       fakePod("web", map[string]string{stateLabel(disconnectedKey): "Upsync", stateLabel(connectedKey): "Upsync"}, inC1),
		"synced":    fakePod("synced", map[string]string{stateLabel(connectedKey): "Sync"}, inC1),
		"offline":   fakePod("offline", map[string]string{stateLabel(disconnectedKey): "Upsync"}, inC1),
		"nocluster": fakePod("nocluster", map[string]string{stateLabel(connectedKey): "Upsync"}, nil),
	}
)

// fakeSyncer is the syncer's end of the tunnels: an HTTP server the fake Dialer connects
// to, recording what arrives; exec upgrades to an echo of the stream.
type fakeSyncer struct {
	mu       sync.Mutex
	received []*http.Request
}

func (f *fakeSyncer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.received = append(f.received, r.Clone(context.Background()))
	f.mu.Unlock()
	if r.Header.Get("Upgrade") == "" {
		_, _ = w.Write([]byte("line 1\nline 2\n"))
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer func() { _ = conn.Close() }()
	_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + r.Header.Get("Upgrade") + "\r\n\r\n")
	_ = rw.Flush()
	line, err := rw.ReadString('\n')
	if err != nil {
		return
	}
	_, _ = rw.WriteString("echo " + line)
	_ = rw.Flush()
}

// fakeDialer connects every stream of a connected key to the fake syncer's address.
type fakeDialer struct {
	address   string
	connected map[string]bool
	mu        sync.Mutex
	dialed    []string
}

func (d *fakeDialer) Connected(key string) bool { return d.connected[key] }

func (d *fakeDialer) DialContext(ctx context.Context, key string) (net.Conn, error) {
	d.mu.Lock()
	d.dialed = append(d.dialed, key)
	d.mu.Unlock()
	if !d.connected[key] {
		return nil, errors.New("no tunnel")
	}
	var dialer net.Dialer
	return dialer.DialContext(ctx, "tcp", d.address)
}

func (d *fakeDialer) dials() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.dialed...)
}

// rawUpgrade sends an upgrade request on a raw connection to addr, and returns the
// response and the connection's reader.
func rawUpgrade(t *testing.T, addr, path, token string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_, err = io.WriteString(conn, "POST "+path+" HTTP/1.1\r\nHost: vw\r\nAuthorization: Bearer "+token+"\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return conn, br, resp
}
