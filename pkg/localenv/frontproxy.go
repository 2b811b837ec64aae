package localenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
)

// FrontProxy serves many workspaces on one URL the way kcp's front proxy does: a request to
// /clusters/<path>/<rest> or /clusters/<logical-cluster name>/<rest> goes to <rest> on the
// workspace's apiserver; an unknown workspace answers 404. The caller's bearer token is passed through, so one credential (from the
// environment's shared token file) works in every workspace, with per-workspace RBAC.
// /clusters/*/<collection> lists and watches a resource across every workspace, as a kcp
// shard does (frontproxy_wildcard.go).
type FrontProxy struct {
	URL string

	mu sync.RWMutex
	// backends maps workspace paths and logical-cluster names to apiservers.
	backends map[string]*url.URL
	// names maps each path to its logical-cluster name.
	names map[string]string
	// etcdPrefixes maps each path to the etcd prefix its apiserver stores under.
	etcdPrefixes map[string]string
	// etcd is the environment's etcd, which the wildcard watch follows.
	etcd *Etcd
	// workspacesChanged is closed (and replaced) when a workspace is added or removed:
	// running wildcard watches end then, so that their clients watch again across the new
	// set of workspaces, as kcp's wildcard watch includes a workspace created after it
	// started.
	workspacesChanged chan struct{}

	server    *http.Server
	listener  net.Listener
	transport *http.Transport
	pki       *PKI
	tokens    *TokenFile
	logFile   *os.File
}

// StartFrontProxy starts the proxy on a free loopback port, for workspaces stored in etcd.
func StartFrontProxy(pki *PKI, tokens *TokenFile, etcd *Etcd, logDir string) (*FrontProxy, error) {
	return startNamedFrontProxy("front-proxy", pki, tokens, etcd, logDir)
}

// startNamedFrontProxy starts a front proxy logging to <name>.log.
func startNamedFrontProxy(name string, pki *PKI, tokens *TokenFile, etcd *Etcd, logDir string) (*FrontProxy, error) {
	serving, err := pki.ServingCert("front-proxy-serving")
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(serving.CertPEM, serving.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("failed to load front-proxy certificate: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("failed to listen: %w", err)
	}
	logFile, err := os.OpenFile(filepath.Join(logDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("failed to open front-proxy log: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pki.CAData)
	fp := &FrontProxy{
		URL:               "https://" + l.Addr().String(),
		backends:          map[string]*url.URL{},
		names:             map[string]string{},
		etcdPrefixes:      map[string]string{},
		etcd:              etcd,
		workspacesChanged: make(chan struct{}),
		listener:          l,
		transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: 100,
			ForceAttemptHTTP2:   true,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		},
		pki:     pki,
		tokens:  tokens,
		logFile: logFile,
	}
	fp.server = &http.Server{
		Handler:           fp,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ErrorLog:          log.New(logFile, name+": ", log.LstdFlags),
		ReadHeaderTimeout: 30 * time.Second,
	}
	go func() { _ = fp.server.ServeTLS(l, "", "") }()
	return fp, nil
}

// AddWorkspace routes workspace path, and its logical-cluster name, to the apiserver at
// backendURL, which stores its objects in etcd under etcdPrefix.
func (fp *FrontProxy) AddWorkspace(path logicalcluster.Path, name, backendURL, etcdPrefix string) error {
	if err := path.Validate(); err != nil {
		return err
	}
	if err := logicalcluster.NewPath(name).Validate(); err != nil || strings.Contains(name, logicalcluster.Separator) {
		return fmt.Errorf("invalid logical-cluster name %q", name)
	}
	u, err := url.Parse(backendURL)
	if err != nil {
		return fmt.Errorf("invalid backend URL %q: %w", backendURL, err)
	}
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if other, ok := fp.backends[name]; ok && fp.names[path.String()] != name {
		return fmt.Errorf("logical-cluster name %q of workspace %s is already served (%s)", name, path, other)
	}
	_, known := fp.names[path.String()]
	fp.backends[path.String()] = u
	fp.backends[name] = u
	fp.names[path.String()] = name
	fp.etcdPrefixes[path.String()] = etcdPrefix
	if !known {
		fp.changedLocked()
	}
	return nil
}

// RouteWorkspace routes workspace path and its logical-cluster name to the apiserver at
// backendURL, a workspace of another shard: this proxy's /clusters/* does not include it,
// as a kcp shard's wildcard serves only its own logical clusters.
func (fp *FrontProxy) RouteWorkspace(path logicalcluster.Path, name, backendURL string) error {
	u, err := url.Parse(backendURL)
	if err != nil {
		return fmt.Errorf("invalid backend URL %q: %w", backendURL, err)
	}
	fp.mu.Lock()
	defer fp.mu.Unlock()
	fp.backends[path.String()] = u
	fp.backends[name] = u
	return nil
}

// changedLocked ends the running wildcard watches; the caller holds fp.mu.
func (fp *FrontProxy) changedLocked() {
	close(fp.workspacesChanged)
	fp.workspacesChanged = make(chan struct{})
}

// workspacesChangedCh is closed when the set of workspaces changes next.
func (fp *FrontProxy) workspacesChangedCh() <-chan struct{} {
	fp.mu.RLock()
	defer fp.mu.RUnlock()
	return fp.workspacesChanged
}

// RemoveWorkspace stops routing path; requests to it answer 404 afterwards.
func (fp *FrontProxy) RemoveWorkspace(path logicalcluster.Path) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	delete(fp.backends, path.String())
	delete(fp.backends, fp.names[path.String()])
	delete(fp.names, path.String())
	delete(fp.etcdPrefixes, path.String())
	fp.changedLocked()
}

// Workspaces returns the routed workspace paths.
func (fp *FrontProxy) Workspaces() []string {
	fp.mu.RLock()
	defer fp.mu.RUnlock()
	out := make([]string, 0, len(fp.names))
	for p := range fp.names {
		out = append(out, p)
	}
	return out
}

// Config returns a rest config for user to workspace path through the proxy.
func (fp *FrontProxy) Config(path logicalcluster.Path, user string) *rest.Config {
	return &rest.Config{
		Host:            fp.URL + path.RequestPath(),
		BearerToken:     fp.tokens.Token(user),
		TLSClientConfig: rest.TLSClientConfig{CAData: fp.pki.CAData},
		QPS:             -1,
	}
}

// BaseConfig returns a rest config for user to the proxy's root, the "upstream" a syncer or
// controller is given; it adds /clusters/<path> itself per workspace.
func (fp *FrontProxy) BaseConfig(user string) *rest.Config {
	return &rest.Config{
		Host:            fp.URL,
		BearerToken:     fp.tokens.Token(user),
		TLSClientConfig: rest.TLSClientConfig{CAData: fp.pki.CAData},
		QPS:             -1,
	}
}

// ServeHTTP implements the routing.
func (fp *FrontProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, logicalcluster.ClustersPrefix) {
		writeStatus(w, http.StatusNotFound, "the front proxy only serves /clusters/<workspace>/...")
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, logicalcluster.ClustersPrefix)
	ws, tail, _ := strings.Cut(rest, "/")
	if ws == wildcardCluster {
		fp.serveWildcard(w, r, tail)
		return
	}
	fp.mu.RLock()
	backend, ok := fp.backends[ws]
	fp.mu.RUnlock()
	if !ok {
		writeStatus(w, http.StatusNotFound, fmt.Sprintf("workspace %q not found", ws))
		return
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = backend.Scheme
			pr.Out.URL.Host = backend.Host
			pr.Out.URL.Path = "/" + tail
			pr.Out.URL.RawPath = ""
			pr.Out.Host = backend.Host
		},
		Transport:     fp.transport,
		FlushInterval: -1,
		ErrorLog:      fp.server.ErrorLog,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			fp.server.ErrorLog.Printf("workspace %s: %s %s: %v", ws, r.Method, r.URL.Path, err)
			writeStatus(w, http.StatusBadGateway, fmt.Sprintf("workspace %q is unavailable: %v", ws, err))
		},
	}
	proxy.ServeHTTP(w, r)
}

func writeStatus(w http.ResponseWriter, code int, msg string) {
	reason := metav1.StatusReasonNotFound
	if code != http.StatusNotFound {
		reason = metav1.StatusReasonServiceUnavailable
	}
	st := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  msg,
		Reason:   reason,
		Code:     int32(code),
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(st)
}

// Close stops the proxy.
func (fp *FrontProxy) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := fp.server.Shutdown(ctx)
	if err != nil {
		err = fp.server.Close()
	}
	fp.transport.CloseIdleConnections()
	_ = fp.logFile.Close()
	return err
}
