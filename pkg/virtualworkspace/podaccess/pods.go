package podaccess

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"sort"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	vwsyncer "github.com/tmc-dev/tmc/pkg/virtualworkspace/syncer"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

var podsResource = corev1.Resource("pods")

// servePodSubresource admits a pod subresource request and sends it through the tunnel of
// the SyncTarget upsyncing the pod.
func (h *handler) servePodSubresource(w *vwsyncer.StatusRecorder, r *http.Request, req request, token string) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		vwsyncer.WriteStatus(w, apierrors.NewMethodNotSupported(podsResource, r.Method))
		return
	}
	if err := h.admit(r.Context(), req, token); err != nil {
		vwsyncer.WriteStatus(w, err)
		return
	}
	pod := &corev1.Pod{}
	if err := h.upstream.Get(r.Context(), req.Workspace, "/api/v1/namespaces/"+req.Namespace+"/pods/"+req.Name, pod); err != nil {
		if !apierrors.IsNotFound(err) {
			err = apierrors.NewInternalError(fmt.Errorf("failed to get the pod: %w", err))
		}
		vwsyncer.WriteStatus(w, err)
		return
	}
	key, err := h.tunnelKey(pod)
	if err != nil {
		vwsyncer.WriteStatus(w, err)
		return
	}
	workspace := logicalcluster.NameFrom(pod.Annotations)
	if workspace == "" {
		vwsyncer.WriteStatus(w, apierrors.NewInternalError(fmt.Errorf("pod %s/%s carries no %s annotation: its workspace is unknown", req.Namespace, req.Name, logicalcluster.AnnotationKey)))
		return
	}
	logger := klog.FromContext(r.Context()).WithValues("pod", klog.KRef(req.Namespace, req.Name), "subresource", req.Subresource, "syncTarget", key)
	logger.V(2).Info("Serving a pod subresource through the tunnel")
	h.throughTunnel(key, workspace, req, w).ServeHTTP(w, r.WithContext(klog.NewContext(r.Context(), logger)))
}

// admit authenticates token in the request's workspace and authorises its user for the
// subresource there; a refusal is a Kubernetes Status error.
func (h *handler) admit(ctx context.Context, req request, token string) error {
	user, err := h.reviews.Authenticate(ctx, req.Workspace, token)
	if err != nil && !apierrors.IsNotFound(err) {
		return apierrors.NewInternalError(err)
	}
	// An unknown workspace authenticates nobody, and says no more than that.
	if user == nil {
		return apierrors.NewUnauthorized("the token is not valid in the workspace")
	}
	verb := podSubresources[req.Subresource]
	allowed, reason, err := h.reviews.Authorize(ctx, req.Workspace, user, authorizationv1.ResourceAttributes{
		Verb: verb, Resource: "pods", Subresource: req.Subresource, Namespace: req.Namespace, Name: req.Name, Version: "v1",
	})
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	if !allowed {
		return apierrors.NewForbidden(corev1.Resource("pods/"+req.Subresource), req.Name,
			fmt.Errorf("user %q may not %s pods/%s in namespace %q of workspace %s: %s", user.Username, verb, req.Subresource, req.Namespace, req.Workspace, reason))
	}
	return nil
}

// tunnelKey returns the key of the first SyncTarget, in sorted order, that upsyncs pod and
// whose syncer has a tunnel open.
func (h *handler) tunnelKey(pod *corev1.Pod) (string, error) {
	var keys []string
	for label, value := range pod.Labels {
		if key, ok := workloadv1alpha1.SyncTargetKeyFromLabel(workloadv1alpha1.ClusterResourceStateLabelPrefix, label); ok && value == workloadv1alpha1.ResourceStateUpsync {
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return "", &apierrors.StatusError{ErrStatus: metav1.Status{
			Status: metav1.StatusFailure, Code: http.StatusNotFound, Reason: metav1.StatusReasonNotFound,
			Message: fmt.Sprintf("pod %s/%s is not upsynced by any SyncTarget", pod.Namespace, pod.Name),
			Details: &metav1.StatusDetails{Kind: "pods", Name: pod.Name},
		}}
	}
	sort.Strings(keys)
	for _, key := range keys {
		if h.tunnels.Connected(key) {
			return key, nil
		}
	}
	return "", apierrors.NewServiceUnavailable(fmt.Sprintf("pod %s/%s runs on SyncTarget %s, whose syncer has no tunnel open", pod.Namespace, pod.Name, strings.Join(keys, ", ")))
}

// throughTunnel returns the proxy of one request to key's syncer: a new stream of its
// tunnel, HTTP/1.1, the pod's path and the caller's query and upgrade headers, the
// workspace named in TunnelWorkspaceHeader, and no credential or cookie of the caller.
func (h *handler) throughTunnel(key, workspace string, req request, rec *vwsyncer.StatusRecorder) *httputil.ReverseProxy {
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return h.tunnels.DialContext(ctx, key)
		},
		// One stream per request: nothing idles on a tunnel that a reconnect replaces.
		DisableKeepAlives: true,
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "tunnel"
			pr.Out.URL.Path = "/api/v1/namespaces/" + req.Namespace + "/pods/" + req.Name + "/" + req.Subresource
			pr.Out.URL.RawPath = ""
			pr.Out.Host = "tunnel"
			for name := range pr.Out.Header {
				if strings.HasPrefix(http.CanonicalHeaderKey(name), "Impersonate-") {
					pr.Out.Header.Del(name)
				}
			}
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("Cookie")
			pr.Out.Header.Set(workloadv1alpha1.TunnelWorkspaceHeader, workspace)
		},
		Transport:     transport,
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			// An upgrade is written on the hijacked connection, past the recorder.
			if resp.StatusCode == http.StatusSwitchingProtocols {
				rec.Code = resp.StatusCode
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			klog.FromContext(r.Context()).V(2).Info("Failed to reach the pod through the tunnel", "err", err)
			vwsyncer.WriteStatus(w, apierrors.NewServiceUnavailable(fmt.Sprintf("failed to reach pod %s/%s through the tunnel of SyncTarget %s: %v", req.Namespace, req.Name, key, err)))
		},
	}
}
