package podaccess

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	vwsyncer "github.com/tmc-dev/tmc/pkg/virtualworkspace/syncer"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// Dialer opens streams over the syncers' reverse tunnels, by SyncTarget key; pkg/tunnel's
// Registry is one.
type Dialer interface {
	// DialContext opens a new stream over key's tunnel; an error when it has none.
	DialContext(ctx context.Context, key string) (net.Conn, error)
	// Connected reports whether key's syncer has a tunnel open.
	Connected(key string) bool
}

// Options configure the pod-access view's handler.
type Options struct {
	// Upstream is the server's privileged identity at the upstream's root, reaching every
	// workspace by name or path at <Host>/clusters/<workspace> (a front proxy): reviews are
	// created and pods read with it. Requests forwarded for callers go to the same Host with
	// its CA and none of its credentials. Required.
	Upstream *rest.Config
	// Tunnels reaches the syncers. Required.
	Tunnels Dialer
	// Metrics records requests; nil records nothing.
	Metrics *Metrics
	// AuthCacheTTL is how long positive authentication and authorisation answers are
	// reused; default 10s.
	AuthCacheTTL time.Duration
}

// handler serves the pod-access view.
type handler struct {
	upstream *vwsyncer.ClusterClient
	reviews  *vwsyncer.Reviewer
	tunnels  Dialer
	metrics  *Metrics
	// forward proxies callers' other requests to the upstream with their own credential.
	forward *httputil.ReverseProxy
}

// NewHandler returns the handler of /services/pods/...; every other path is a 404.
func NewHandler(opts Options) (http.Handler, error) {
	if opts.Upstream == nil {
		return nil, errors.New("no upstream config")
	}
	if opts.Tunnels == nil {
		return nil, errors.New("no tunnels")
	}
	if opts.AuthCacheTTL == 0 {
		opts.AuthCacheTTL = 10 * time.Second
	}
	upstream, err := vwsyncer.NewClusterClient(opts.Upstream)
	if err != nil {
		return nil, err
	}
	forward, err := newForwarder(opts.Upstream)
	if err != nil {
		return nil, err
	}
	return &handler{
		upstream: upstream,
		reviews:  vwsyncer.NewReviewer(upstream, opts.AuthCacheTTL),
		tunnels:  opts.Tunnels,
		metrics:  opts.Metrics,
		forward:  forward,
	}, nil
}

// request is a pod-access request, parsed.
type request struct {
	// Workspace is the logical-cluster name or path of the path's /clusters/<workspace>.
	Workspace string
	// APIPath is the rest of the path, e.g. /api/v1/namespaces/ns/pods/p/log.
	APIPath string
	// Namespace, Name and Subresource are set for a pod subresource served through a tunnel.
	Namespace, Name, Subresource string
}

// podSubresources are the pod subresources served through the tunnels, with the verb a
// caller needs on them.
var podSubresources = map[string]string{"log": "get", "exec": "create", "attach": "create", "portforward": "create"}

// parseRequest splits a path below PodAccessVirtualWorkspacePrefix; ok is false when it is
// not /clusters/<workspace>/..., names every workspace, or has a dot segment.
func parseRequest(path string) (request, bool) {
	tail, found := strings.CutPrefix(path, workloadv1alpha1.PodAccessVirtualWorkspacePrefix+"clusters/")
	if !found {
		return request{}, false
	}
	workspace, apiPath, _ := strings.Cut(tail, "/")
	if workspace == "" || workspace == "*" {
		return request{}, false
	}
	parts := strings.Split(apiPath, "/")
	for _, p := range parts {
		if p == "." || p == ".." {
			return request{}, false
		}
	}
	req := request{Workspace: workspace, APIPath: "/" + apiPath}
	// api / v1 / namespaces / <ns> / pods / <pod> / <subresource>
	if len(parts) == 7 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "namespaces" && parts[4] == "pods" &&
		parts[3] != "" && parts[5] != "" && podSubresources[parts[6]] != "" {
		req.Namespace, req.Name, req.Subresource = parts[3], parts[5], parts[6]
	}
	return req, true
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := vwsyncer.NewStatusRecorder(w)
	req, ok := parseRequest(r.URL.Path)
	subresourceLabel := "other"
	if req.Subresource != "" {
		subresourceLabel = req.Subresource
	}
	defer func() { h.metrics.request(subresourceLabel, rec.Code) }()
	if !ok {
		vwsyncer.WriteStatus(rec, apierrors.NewNotFound(schema.GroupResource{}, r.URL.Path))
		return
	}
	token := vwsyncer.BearerToken(r)
	if token == "" {
		vwsyncer.WriteStatus(rec, apierrors.NewUnauthorized("a bearer token is required"))
		return
	}
	ctx := klog.NewContext(r.Context(), klog.FromContext(r.Context()).WithValues("workspace", req.Workspace))
	r = r.WithContext(ctx)
	if req.Subresource == "" {
		h.forward.ServeHTTP(rec, withUpstreamPath(r, req))
		return
	}
	h.servePodSubresource(rec, r, req, token)
}

// withUpstreamPath returns r with its path below the view rewritten to the workspace's
// path (the forwarder prefixes the upstream's root).
func withUpstreamPath(r *http.Request, req request) *http.Request {
	out := r.Clone(r.Context())
	u := *r.URL
	u.Path, u.RawPath = "/clusters/"+req.Workspace+req.APIPath, ""
	out.URL = &u
	return out
}

// newForwarder returns the proxy of callers' requests to the upstream at cfg.Host: with
// cfg's CA and none of its credentials, the caller's headers (their Authorization
// included) passed on, responses (watches, upgrades) streamed back.
func newForwarder(cfg *rest.Config) (*httputil.ReverseProxy, error) {
	base, err := url.Parse(strings.TrimSuffix(cfg.Host, "/"))
	if err != nil {
		return nil, fmt.Errorf("failed to parse the upstream URL %q: %w", cfg.Host, err)
	}
	anonymous := rest.AnonymousClientConfig(cfg)
	transport, err := rest.TransportFor(anonymous)
	if err != nil {
		return nil, fmt.Errorf("failed to build the forwarding transport: %w", err)
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = base.Scheme, base.Host
			pr.Out.URL.Path, pr.Out.URL.RawPath = base.Path+pr.In.URL.Path, ""
			pr.Out.Host = ""
		},
		Transport:     transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			klog.FromContext(r.Context()).V(2).Info("Failed to forward a request to the workspace", "path", r.URL.Path, "err", err)
			vwsyncer.WriteStatus(w, apierrors.NewServiceUnavailable(fmt.Sprintf("failed to reach the workspace: %v", err)))
		},
	}, nil
}
