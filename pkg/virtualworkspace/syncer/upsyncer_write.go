package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// serveUpsyncCreate serves the creation of an upsynced object: labelled Upsync for this
// target and no other target's state label; a namespaced one only in a namespace placed
// on this target (a syncer must not create objects where nothing is placed on it), a
// persistent volume without a namespace.
func (h *handler) serveUpsyncCreate(w http.ResponseWriter, r *http.Request, req request, tgt *target) {
	if req.Subresource != "" {
		writeError(w, forbidden(req, "the upsyncer view creates objects, not subresources"))
		return
	}
	clusterScoped := req.GR == persistentVolumesResource
	switch {
	case clusterScoped && req.Namespace != "":
		writeError(w, forbidden(req, fmt.Sprintf("%s is cluster-scoped", req.GR)))
		return
	case !clusterScoped && req.Namespace == "":
		writeError(w, forbidden(req, fmt.Sprintf("%s are created in a namespace placed on SyncTarget %s", req.GR, tgt.name)))
		return
	case !clusterScoped && !h.requirePlaced(w, r, req, tgt):
		return
	}
	body, err := readBody(r, req)
	if err != nil {
		writeError(w, err)
		return
	}
	obj := map[string]any{}
	if err := json.Unmarshal(body, &obj); err != nil {
		writeError(w, apierrors.NewBadRequest(fmt.Sprintf("the request body is not a JSON object: %v", err)))
		return
	}
	if err := checkUpsyncLabels(nil, obj, tgt.key); err != nil {
		writeError(w, forbidden(req, err.Error()))
		return
	}
	h.writeUpstream(w, r, req, mediaJSON, body)
}

// serveUpsyncBinding binds an upsynced pod to the node its downstream original was
// scheduled on (a pod's node is set only by a binding): only a pod upsynced by this target,
// and only to a node (the Binding names the pod itself, nothing else).
func (h *handler) serveUpsyncBinding(w http.ResponseWriter, r *http.Request, req request, tgt *target) {
	body, err := readBody(r, req)
	if err != nil {
		writeError(w, err)
		return
	}
	if _, err := h.upsyncedObject(r.Context(), req, tgt); err != nil {
		writeError(w, err)
		return
	}
	binding := struct {
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Target struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"target"`
	}{}
	if err := json.Unmarshal(body, &binding); err != nil {
		writeError(w, apierrors.NewBadRequest(fmt.Sprintf("the request body is not a Binding: %v", err)))
		return
	}
	if (binding.Metadata.Name != "" && binding.Metadata.Name != req.Name) || (binding.Metadata.Namespace != "" && binding.Metadata.Namespace != req.Namespace) ||
		(binding.Target.Kind != "" && binding.Target.Kind != "Node") || binding.Target.Name == "" {
		writeError(w, forbidden(req, "a binding through the upsyncer view names its own pod and a node"))
		return
	}
	h.writeUpstream(w, r, req, mediaJSON, body)
}

// serveUpsyncWrite serves an update or JSON merge patch of an upsynced object or of its
// status: the current object and the result must both be labelled Upsync for this target
// (checkUpsyncLabels), and the write is sent with the checked object's resourceVersion as
// precondition. Status goes straight to .status: an upsynced object has one source.
func (h *handler) serveUpsyncWrite(w http.ResponseWriter, r *http.Request, req request, tgt *target) {
	body, err := readBody(r, req)
	if err != nil {
		writeError(w, err)
		return
	}
	current, err := h.upsyncedObject(r.Context(), req, tgt)
	if err != nil {
		writeError(w, err)
		return
	}
	forwardBody, result, err := preconditionedWrite(req, current, body)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := checkUpsyncLabels(current, result, tgt.key); err != nil {
		writeError(w, forbidden(req, err.Error()))
		return
	}
	contentType := mediaJSON
	if req.Verb == verbPatch {
		contentType = string(types.MergePatchType)
	}
	h.writeUpstream(w, r, req, contentType, forwardBody)
}

// serveUpsyncDelete serves the deletion of an upsynced object, with the checked object's
// uid and resourceVersion as preconditions so that nothing relabelled meanwhile is deleted.
func (h *handler) serveUpsyncDelete(w http.ResponseWriter, r *http.Request, req request, tgt *target) {
	current, err := h.upsyncedObject(r.Context(), req, tgt)
	if err != nil {
		writeError(w, err)
		return
	}
	body, err := preconditionedDelete(r, req, current)
	if err != nil {
		writeError(w, err)
		return
	}
	h.writeUpstream(w, r, req, mediaJSON, body)
}

// upsyncedObject reads the object of req for a write: NotFound when it does not exist,
// Forbidden unless it is labelled Upsync for this target (an object labelled Sync, or
// another target's, is never written through the upsyncer view).
func (h *handler) upsyncedObject(ctx context.Context, req request, tgt *target) (map[string]any, error) {
	current, err := h.upstream.object(ctx, http.MethodGet, req.Cluster, objectPath(req), "", nil)
	if err != nil {
		return nil, err
	}
	if !upsyncedHere(labelsOf(current), tgt.key) {
		return nil, forbidden(req, "the upsyncer view writes only objects upsynced by this SyncTarget")
	}
	return current, nil
}

// preconditionedDelete returns the DeleteOptions of the request (its body, if any) with
// current's uid and resourceVersion as preconditions; a request naming others is a
// Conflict.
func preconditionedDelete(r *http.Request, req request, current map[string]any) ([]byte, error) {
	_, body, err := requestBody(r)
	if err != nil {
		return nil, err
	}
	opts := metav1.DeleteOptions{}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &opts); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("the request body is not DeleteOptions: %v", err))
		}
	}
	meta, _ := current["metadata"].(map[string]any)
	uid, _ := meta["uid"].(string)
	rv := resourceVersionOf(current)
	if p := opts.Preconditions; p != nil {
		if (p.UID != nil && string(*p.UID) != uid) || (p.ResourceVersion != nil && *p.ResourceVersion != rv) {
			return nil, apierrors.NewConflict(req.GR, req.Name, fmt.Errorf("the preconditions do not match the object (uid %s, resourceVersion %s)", uid, rv))
		}
	}
	preconditionUID := types.UID(uid)
	opts.Preconditions = &metav1.Preconditions{UID: &preconditionUID, ResourceVersion: &rv}
	opts.TypeMeta = metav1.TypeMeta{Kind: "DeleteOptions", APIVersion: metav1.SchemeGroupVersion.String()}
	out, err := json.Marshal(opts)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return out, nil
}

// writeUpstream sends the checked write to the upstream with the server's identity and
// passes the answer on.
func (h *handler) writeUpstream(w http.ResponseWriter, r *http.Request, req request, contentType string, body []byte) {
	code, respBody, err := h.upstream.do(r.Context(), r.Method, req.Cluster, req.APIPath, r.URL.Query(), contentType, body)
	if err != nil && code == 0 {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(respBody)
}
