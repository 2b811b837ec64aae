package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// namespaceCacheTTL is how long a namespace found placed on a target is trusted for Events.
const namespaceCacheTTL = 5 * time.Second

// serveEvent serves the creation, patch or update of a core/v1 Event in a namespace of one
// workspace: the namespace must be placed on this target and the Event must be about an
// object of that namespace. The body is forwarded as sent (the event recorder's strategic
// merge patches included).
func (h *handler) serveEvent(w http.ResponseWriter, r *http.Request, req request, tgt *target) {
	if req.Cluster == wildcardCluster || req.Namespace == "" || req.Subresource != "" ||
		(req.Verb != verbCreate && req.Verb != verbPatch && req.Verb != verbUpdate) {
		writeError(w, forbidden(req, "the syncer view serves only the creation, patch and update of Events in a namespace of one workspace"))
		return
	}
	if !h.requirePlaced(w, r, req, tgt) {
		return
	}
	contentType, body, err := requestBody(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := h.checkEventNamespace(r.Context(), req, body); err != nil {
		writeError(w, err)
		return
	}
	code, respBody, err := h.upstream.do(r.Context(), r.Method, req.Cluster, req.APIPath, r.URL.Query(), contentType, body)
	if err != nil && code == 0 {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(respBody)
}

// checkEventNamespace refuses an Event about an object outside the request's namespace:
// the body's involvedObject, and for a patch or update the existing Event's.
func (h *handler) checkEventNamespace(ctx context.Context, req request, body []byte) error {
	event := map[string]any{}
	if err := json.Unmarshal(body, &event); err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("the request body is not a JSON object: %v", err))
	}
	involved, present := event["involvedObject"].(map[string]any)
	if req.Verb != verbPatch || present {
		if ns, _ := involved["namespace"].(string); ns != req.Namespace {
			return forbidden(req, fmt.Sprintf("an Event in namespace %s must be about an object of that namespace, not of %q", req.Namespace, ns))
		}
	}
	if req.Verb == verbCreate {
		return nil
	}
	existing, err := h.upstream.object(ctx, http.MethodGet, req.Cluster, objectPath(req), "", nil)
	if err != nil {
		return err
	}
	existingInvolved, _ := existing["involvedObject"].(map[string]any)
	if ns, _ := existingInvolved["namespace"].(string); ns != req.Namespace {
		return forbidden(req, fmt.Sprintf("Event %s is not about an object of namespace %s", req.Name, req.Namespace))
	}
	return nil
}

// namespacePlaced reports whether namespace ns of cluster is labelled Sync for tgt; a
// positive answer is cached briefly.
func (h *handler) namespacePlaced(ctx context.Context, cluster, ns string, tgt *target) (bool, error) {
	cacheKey := tgt.key + "/" + cluster + "/" + ns
	if _, ok := h.namespaces.Get(cacheKey); ok {
		return true, nil
	}
	obj, err := h.upstream.object(ctx, http.MethodGet, cluster, "/api/v1/namespaces/"+ns, "", nil)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !syncedHere(labelsOf(obj), tgt.key) {
		return false, nil
	}
	h.namespaces.Add(cacheKey, true, namespaceCacheTTL)
	return true, nil
}

// requirePlaced reports whether req's namespace is placed on tgt; otherwise it has answered
// Forbidden (or the lookup's error).
func (h *handler) requirePlaced(w http.ResponseWriter, r *http.Request, req request, tgt *target) bool {
	placed, err := h.namespacePlaced(r.Context(), req.Cluster, req.Namespace, tgt)
	if err != nil {
		writeError(w, err)
		return false
	}
	if !placed {
		writeError(w, forbidden(req, fmt.Sprintf("namespace %s is not placed on SyncTarget %s", req.Namespace, tgt.name)))
		return false
	}
	return true
}
