package syncer

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// podSubresources are the only requests served through the tunnel.
var podSubresources = map[string]bool{"log": true, "exec": true, "attach": true, "portforward": true}

// podAccessHandler serves the pod requests the virtual-workspace server sends through the
// tunnel: log, exec, attach and portforward of upsynced pods, and nothing else. The server
// names the workspace (TunnelWorkspaceHeader) and the upstream namespace; the request is
// served only from the downstream namespace whose locator names that workspace, that
// namespace and this SyncTarget (not forged), for a pod carrying this target's Upsync
// label, and is then proxied, upgrades included, to the downstream apiserver with the
// syncer's downstream credential.
type podAccessHandler struct {
	stateLabel string
	// downstreamNamespaceOf maps (logical cluster, upstream namespace) to the downstream
	// namespace of this SyncTarget; false when there is none.
	downstreamNamespaceOf func(cluster, upstreamNamespace string) (string, bool)
	downstreamKube        kubernetes.Interface
	downstreamURL         *url.URL
	proxy                 *httputil.ReverseProxy
}

// podRequest is a checked request.
type podRequest struct {
	cluster, upstreamNamespace, downstreamNamespace, pod, subresource string
}

func newPodAccessHandler(stKey string, downstreamNamespaceOf func(cluster, upstreamNamespace string) (string, bool),
	downstreamKube kubernetes.Interface, downstreamConfig *rest.Config) (*podAccessHandler, error) {
	downstreamURL, _, err := rest.DefaultServerUrlFor(downstreamConfig)
	if err != nil {
		return nil, fmt.Errorf("failed to parse the downstream server URL: %w", err)
	}
	transport, err := downstreamHTTP1Transport(downstreamConfig)
	if err != nil {
		return nil, err
	}
	h := &podAccessHandler{
		stateLabel:            workloadv1alpha1.ClusterResourceStateLabel(stKey),
		downstreamNamespaceOf: downstreamNamespaceOf,
		downstreamKube:        downstreamKube,
		downstreamURL:         downstreamURL,
	}
	h.proxy = &httputil.ReverseProxy{
		Rewrite:       h.rewrite,
		Transport:     transport,
		FlushInterval: -1, // logs -f: every write goes through at once
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			klog.FromContext(req.Context()).Error(err, "Failed to reach the downstream apiserver for a pod request")
			writeStatus(w, http.StatusBadGateway, metav1.StatusReasonServiceUnavailable, "the physical cluster's apiserver cannot be reached: "+err.Error())
		},
	}
	return h, nil
}

// downstreamHTTP1Transport is the syncer's downstream credential on an HTTP/1.1 transport:
// SPDY and WebSocket upgrades cannot pass over HTTP/2.
func downstreamHTTP1Transport(cfg *rest.Config) (http.RoundTripper, error) {
	tlsConfig, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to build the downstream TLS config: %w", err)
	}
	if tlsConfig != nil {
		tlsConfig = tlsConfig.Clone()
		tlsConfig.NextProtos = []string{"http/1.1"}
	}
	base := &http.Transport{
		Proxy:               cfg.Proxy,
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: 10 * time.Second,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
		IdleConnTimeout:     90 * time.Second,
	}
	if base.Proxy == nil {
		base.Proxy = http.ProxyFromEnvironment
	}
	rt, err := rest.HTTPWrappersForConfig(cfg, base)
	if err != nil {
		return nil, fmt.Errorf("failed to build the downstream credential: %w", err)
	}
	return rt, nil
}

func (h *podAccessHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	logger := klog.FromContext(req.Context())
	pr, code, msg := h.check(req)
	if code != 0 {
		logger.V(2).Info("Refused a pod request through the tunnel", "path", req.URL.Path, "workspace", req.Header.Get(workloadv1alpha1.TunnelWorkspaceHeader), "code", code, "reason", msg)
		writeStatus(w, code, reasonForCode(code), msg)
		return
	}
	logger.V(2).Info("Serving a pod request through the tunnel", "workspace", pr.cluster, "upstreamNamespace", pr.upstreamNamespace,
		"downstreamNamespace", pr.downstreamNamespace, "pod", pr.pod, "subresource", pr.subresource, "method", req.Method)
	h.proxy.ServeHTTP(w, req.WithContext(withPodRequest(req.Context(), pr)))
}

// check returns the request to serve, or the HTTP code and message of its refusal.
func (h *podAccessHandler) check(req *http.Request) (podRequest, int, string) {
	var pr podRequest
	var ok bool
	pr.upstreamNamespace, pr.pod, pr.subresource, ok = parsePodSubresourcePath(req.URL.Path)
	if !ok {
		return pr, http.StatusNotFound, fmt.Sprintf("%s is not served through the tunnel: only pods/log, pods/exec, pods/attach and pods/portforward are", req.URL.Path)
	}
	if req.Method != http.MethodGet && req.Method != http.MethodPost {
		return pr, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on pods/%s", req.Method, pr.subresource)
	}
	if pr.cluster = req.Header.Get(workloadv1alpha1.TunnelWorkspaceHeader); pr.cluster == "" {
		return pr, http.StatusForbidden, "the request does not name its workspace (" + workloadv1alpha1.TunnelWorkspaceHeader + ")"
	}
	if pr.downstreamNamespace, ok = h.downstreamNamespaceOf(pr.cluster, pr.upstreamNamespace); !ok {
		return pr, http.StatusNotFound, fmt.Sprintf("namespace %s of workspace %s is not placed on this SyncTarget", pr.upstreamNamespace, pr.cluster)
	}
	pod, err := h.downstreamKube.CoreV1().Pods(pr.downstreamNamespace).Get(req.Context(), pr.pod, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return pr, http.StatusNotFound, fmt.Sprintf("pod %s not found in namespace %s of workspace %s", pr.pod, pr.upstreamNamespace, pr.cluster)
	case err != nil:
		return pr, http.StatusServiceUnavailable, fmt.Sprintf("failed to read pod %s on the physical cluster: %v", pr.pod, err)
	case pod.Labels[h.stateLabel] != workloadv1alpha1.ResourceStateUpsync:
		return pr, http.StatusForbidden, fmt.Sprintf("pod %s in namespace %s of workspace %s is not upsynced by this SyncTarget", pr.pod, pr.upstreamNamespace, pr.cluster)
	}
	return pr, 0, ""
}

// rewrite points a checked request at the downstream apiserver's same subresource in the
// downstream namespace, without the server's header or any credential it may carry.
func (h *podAccessHandler) rewrite(r *httputil.ProxyRequest) {
	pr, _ := podRequestFrom(r.In.Context())
	r.Out.URL.Scheme = h.downstreamURL.Scheme
	r.Out.URL.Host = h.downstreamURL.Host
	r.Out.URL.Path = strings.TrimSuffix(h.downstreamURL.Path, "/") +
		"/api/v1/namespaces/" + pr.downstreamNamespace + "/pods/" + pr.pod + "/" + pr.subresource
	r.Out.URL.RawPath = ""
	r.Out.Host = ""
	r.Out.Header.Del(workloadv1alpha1.TunnelWorkspaceHeader)
	r.Out.Header.Del("Authorization")
	for name := range r.Out.Header {
		if strings.HasPrefix(strings.ToLower(name), "impersonate-") {
			r.Out.Header.Del(name)
		}
	}
}

// parsePodSubresourcePath splits /api/v1/namespaces/<ns>/pods/<pod>/<subresource>, for
// the four served subresources only.
func parsePodSubresourcePath(path string) (namespace, pod, subresource string, ok bool) {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(parts) != 7 || parts[0] != "api" || parts[1] != "v1" || parts[2] != "namespaces" || parts[4] != "pods" {
		return "", "", "", false
	}
	if parts[3] == "" || parts[5] == "" || !podSubresources[parts[6]] {
		return "", "", "", false
	}
	return parts[3], parts[5], parts[6], true
}

func reasonForCode(code int) metav1.StatusReason {
	switch code {
	case http.StatusNotFound:
		return metav1.StatusReasonNotFound
	case http.StatusForbidden:
		return metav1.StatusReasonForbidden
	case http.StatusMethodNotAllowed:
		return metav1.StatusReasonMethodNotAllowed
	default:
		return metav1.StatusReasonServiceUnavailable
	}
}

// writeStatus answers with a Kubernetes Status, as an apiserver does.
func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	status := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: msg, Reason: reason, Code: int32(code),
	}
	body, _ := json.Marshal(status)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// downstreamNamespaceOf returns the downstream namespace of upstream namespace
// upstreamNamespace of the workspace whose logical cluster is cluster, only if it exists
// and is ours: its locator names this SyncTarget (name, UID, location cluster), that
// workspace and that namespace, and hashes to its name (locatorOf: not forged).
func (m *namespaceManager) downstreamNamespaceOf(cluster, upstreamNamespace string) (string, bool) {
	name, err := m.downstreamName(m.target.locator(cluster, upstreamNamespace))
	if err != nil {
		return "", false
	}
	loc, ok := m.locatorOf(name)
	if !ok || loc.ClusterName != cluster || loc.Namespace != upstreamNamespace {
		return "", false
	}
	return name, true
}

type podRequestKey struct{}

func withPodRequest(ctx context.Context, pr podRequest) context.Context {
	return context.WithValue(ctx, podRequestKey{}, pr)
}

func podRequestFrom(ctx context.Context) (podRequest, bool) {
	pr, ok := ctx.Value(podRequestKey{}).(podRequest)
	return pr, ok
}
