package syncer

import (
	"encoding/json"
	"fmt"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// serveMetadataWrite serves an update or JSON merge patch of an object (not its status):
// it computes the result against the current object, allows it only if it changes nothing
// but the metadata the syncer owns for this target (validateChange), and writes it with the
// checked object's resourceVersion as precondition. A write that takes this target out of
// the status summary has .status summarised again (summarizeAfterRelease).
func (h *handler) serveMetadataWrite(w http.ResponseWriter, r *http.Request, req request, tgt *target) {
	body, err := readBody(r, req)
	if err != nil {
		writeError(w, err)
		return
	}
	current, err := h.upstream.object(r.Context(), http.MethodGet, req.Cluster, objectPath(req), "", nil)
	if err != nil {
		writeError(w, err)
		return
	}
	if !writableHere(current, tgt.key) {
		writeError(w, apierrors.NewNotFound(req.GR, req.Name))
		return
	}
	forwardBody, err := checkedWrite(req, current, body, tgt.key)
	if err != nil {
		writeError(w, err)
		return
	}
	contentType := mediaJSON
	if req.Verb == verbPatch {
		contentType = string(types.MergePatchType)
	}
	code, respBody, err := h.upstream.do(r.Context(), r.Method, req.Cluster, req.APIPath, r.URL.Query(), contentType, forwardBody)
	if err != nil && code == 0 {
		writeError(w, err)
		return
	}
	if err == nil {
		respBody = h.summarizeAfterRelease(r.Context(), req, tgt, current, respBody)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(respBody)
}

// writableHere reports whether the syncer of stKey may write the object's metadata: it
// carries the target's state label (whatever its value) or the target's finalizer, which
// the syncer must be able to release after its label went.
func writableHere(obj map[string]any, stKey string) bool {
	if _, ok := labelsOf(obj)[workloadv1alpha1.ClusterResourceStateLabel(stKey)]; ok {
		return true
	}
	meta, _ := obj["metadata"].(map[string]any)
	finalizers, _ := stringList(meta["finalizers"])
	for _, f := range finalizers {
		if f == workloadv1alpha1.SyncerFinalizerName(stKey) {
			return true
		}
	}
	return false
}

// checkedWrite returns the body to send upstream for an update (body: the object) or a
// merge patch (body: the patch) of current: with current's resourceVersion as
// precondition, once the result is validated. A request naming another resourceVersion is
// a Conflict; a change beyond the syncer's metadata is Forbidden.
func checkedWrite(req request, current map[string]any, body []byte, stKey string) ([]byte, error) {
	forward, result, err := preconditionedWrite(req, current, body)
	if err != nil {
		return nil, err
	}
	if err := validateChange(current, result, stKey); err != nil {
		return nil, forbidden(req, err.Error())
	}
	return forward, nil
}

// preconditionedWrite returns, for an update (body: the object) or a merge patch (body:
// the patch) of current, the body to send upstream, with current's resourceVersion as
// precondition so that the object checked is the one written, and the object the write
// would leave. A request naming another resourceVersion is a Conflict.
func preconditionedWrite(req request, current map[string]any, body []byte) ([]byte, map[string]any, error) {
	request := map[string]any{}
	if err := json.Unmarshal(body, &request); err != nil {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("the request body is not a JSON object: %v", err))
	}
	// An update forwards the object as validated; a patch forwards the patch, which the
	// upstream applies to the same object (the resourceVersion precondition).
	var result map[string]any
	if req.Verb == verbPatch {
		currentJSON, err := json.Marshal(current)
		if err != nil {
			return nil, nil, apierrors.NewInternalError(err)
		}
		patched, err := jsonpatch.MergePatch(currentJSON, body)
		if err != nil {
			return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("invalid merge patch: %v", err))
		}
		if err := json.Unmarshal(patched, &result); err != nil {
			return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("invalid merge patch result: %v", err))
		}
	} else {
		result = withServerFields(request, current)
		request = result
	}
	currentRV := resourceVersionOf(current)
	if rv := resourceVersionOf(request); rv != "" && rv != currentRV {
		return nil, nil, apierrors.NewConflict(req.GR, req.Name, fmt.Errorf("the object has been modified (resourceVersion %s, not %s)", currentRV, rv))
	}
	setResourceVersion(request, currentRV)
	out, err := json.Marshal(request)
	if err != nil {
		return nil, nil, apierrors.NewInternalError(err)
	}
	return out, result, nil
}

// withServerFields returns the object an update would leave: fields an update does not
// change when it leaves them out (status, managedFields, apiVersion, kind) are current's.
func withServerFields(updated, current map[string]any) map[string]any {
	out := make(map[string]any, len(updated))
	for k, v := range updated {
		out[k] = v
	}
	for _, k := range []string{"apiVersion", "kind", "status"} {
		if _, ok := out[k]; !ok && current[k] != nil {
			out[k] = current[k]
		}
	}
	meta, _ := out["metadata"].(map[string]any)
	curMeta, _ := current["metadata"].(map[string]any)
	if meta != nil && curMeta != nil {
		if _, ok := meta["managedFields"]; !ok && curMeta["managedFields"] != nil {
			metaCopy := make(map[string]any, len(meta)+1)
			for k, v := range meta {
				metaCopy[k] = v
			}
			metaCopy["managedFields"] = curMeta["managedFields"]
			out["metadata"] = metaCopy
		}
	}
	return out
}

func resourceVersionOf(obj map[string]any) string {
	meta, _ := obj["metadata"].(map[string]any)
	rv, _ := meta["resourceVersion"].(string)
	return rv
}

func setResourceVersion(obj map[string]any, rv string) {
	meta, ok := obj["metadata"].(map[string]any)
	if !ok {
		meta = map[string]any{}
		obj["metadata"] = meta
	}
	meta["resourceVersion"] = rv
}

// readBody reads the body of a write as JSON; a patch must be a JSON merge patch (the only
// kind the syncer sends).
func readBody(r *http.Request, req request) ([]byte, error) {
	mediaType, body, err := requestBody(r)
	if err != nil {
		return nil, err
	}
	want := mediaJSON
	if req.Verb == verbPatch {
		want = string(types.MergePatchType)
	}
	if mediaType != want {
		return nil, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, r.Method, req.GR, req.Name,
			fmt.Sprintf("the syncer view accepts only %s for %s, not %q", want, req.Verb, mediaType), 0, false)
	}
	return body, nil
}
