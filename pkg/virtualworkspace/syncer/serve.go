package syncer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/klog/v2"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

var (
	namespacesResource = schema.GroupResource{Resource: "namespaces"}
	eventsResource     = schema.GroupResource{Resource: "events"}
)

// serveDiscovery forwards a discovery request of one workspace (both views).
func (h *handler) serveDiscovery(w http.ResponseWriter, r *http.Request, req request) {
	if req.Cluster == wildcardCluster {
		writeError(w, forbidden(req, "discovery is served for one workspace, not for /clusters/*"))
		return
	}
	h.forward(w, r, req, r.URL.Query())
}

// serve routes an admitted request; every request it does not name is refused.
func (h *handler) serve(w http.ResponseWriter, r *http.Request, req request, tgt *target) {
	if req.Verb == verbDiscovery {
		h.serveDiscovery(w, r, req)
		return
	}
	if req.GR == eventsResource && req.Version == "v1" {
		h.serveEvent(w, r, req, tgt)
		return
	}
	if isRootCACollection(req, r.URL.Query()) {
		if req.Verb == verbWatch {
			done := h.metrics.watchStarted(syncerView, tgt, req.GR)
			defer done()
		}
		h.forward(w, r, req, r.URL.Query())
		return
	}
	if req.GR != namespacesResource && !tgt.resources[req.GR] {
		writeError(w, forbidden(req, fmt.Sprintf("SyncTarget %s does not sync %s", tgt.name, req.GR)))
		return
	}
	if req.Cluster == wildcardCluster && req.Verb != verbList && req.Verb != verbWatch {
		writeError(w, forbidden(req, "only list and watch are served for /clusters/*"))
		return
	}
	switch {
	case req.Verb == verbList || req.Verb == verbWatch:
		h.serveCollection(w, r, req, tgt, syncerView, workloadv1alpha1.ResourceStateSync)
	case req.Verb == verbGet && req.Subresource == "":
		h.serveGet(w, r, req, tgt)
	case (req.Verb == verbUpdate || req.Verb == verbPatch) && req.Subresource == "":
		h.serveMetadataWrite(w, r, req, tgt)
	case (req.Verb == verbUpdate || req.Verb == verbPatch) && req.Subresource == "status":
		h.serveStatusWrite(w, r, req, tgt)
	default:
		writeError(w, forbidden(req, fmt.Sprintf("the syncer view does not serve %s %s", r.Method, req.APIPath)))
	}
}

// serveCollection forwards a list or watch of view v with the label selector ANDed with
// this target's state label = state.
func (h *handler) serveCollection(w http.ResponseWriter, r *http.Request, req request, tgt *target, v view, state string) {
	query, err := andStateSelector(r.URL.Query(), tgt.key, state)
	if err != nil {
		writeError(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	if req.Verb == verbWatch {
		done := h.metrics.watchStarted(v, tgt, req.GR)
		defer done()
	}
	h.forward(w, r, req, query)
}

// serveGet answers a get with the object only if it is placed on this target.
func (h *handler) serveGet(w http.ResponseWriter, r *http.Request, req request, tgt *target) {
	obj, err := h.visibleObject(r.Context(), req, tgt)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, obj)
}

// visibleObject reads the object of req; NotFound unless it is labelled Sync for tgt.
func (h *handler) visibleObject(ctx context.Context, req request, tgt *target) (map[string]any, error) {
	obj, err := h.upstream.object(ctx, http.MethodGet, req.Cluster, objectPath(req), "", nil)
	if err != nil {
		return nil, err
	}
	if !syncedHere(labelsOf(obj), tgt.key) {
		return nil, apierrors.NewNotFound(req.GR, req.Name)
	}
	return obj, nil
}

// objectPath is the API path of the object of req, without its subresource.
func objectPath(req request) string {
	p := "/api/" + req.Version
	if req.GR.Group != "" {
		p = "/apis/" + req.GR.Group + "/" + req.Version
	}
	if req.Namespace != "" {
		p += "/namespaces/" + req.Namespace
	}
	return p + "/" + req.GR.Resource + "/" + req.Name
}

// forward proxies the request to the upstream with the server's identity and query,
// streaming the answer (watches).
func (h *handler) forward(w http.ResponseWriter, r *http.Request, req request, query url.Values) {
	target := h.upstream.url(req.Cluster, req.APIPath, query)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = target
			pr.Out.Host = target.Host
			// The caller's credentials stay here: the upstream sees the server's identity
			// only, and no impersonation asked for by the caller.
			pr.Out.Header.Del("Authorization")
			for k := range pr.Out.Header {
				if strings.HasPrefix(k, "Impersonate-") {
					pr.Out.Header.Del(k)
				}
			}
		},
		Transport:     h.upstream.http.Transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, r.Context().Err()) {
				return
			}
			klog.FromContext(r.Context()).Error(err, "Failed to forward to the upstream")
			writeError(w, apierrors.NewServiceUnavailable(fmt.Sprintf("the upstream is unavailable: %v", err)))
		},
	}
	proxy.ServeHTTP(w, r)
}

func labelsOf(obj map[string]any) map[string]string {
	meta, _ := obj["metadata"].(map[string]any)
	m, _ := stringMap(meta["labels"])
	return m
}
