package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/virtualworkspace/summarize"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// statusAttempts bounds the retries of a status write on conflicts with other writers.
const statusAttempts = 5

// serveStatusWrite serves an update or merge patch of the status subresource as kcp's
// SyncerResourceTransformer did: the request's .status becomes this target's status
// annotation, and .status the summary (pkg/virtualworkspace/summarize) of every target
// whose state label is Sync and that reported a status. The request's resourceVersion is
// not a precondition: the targets write separate annotations, and the summary is computed
// from the object as read.
func (h *handler) serveStatusWrite(w http.ResponseWriter, r *http.Request, req request, tgt *target) {
	body, err := readBody(r, req)
	if err != nil {
		writeError(w, err)
		return
	}
	var obj map[string]any
	for attempt := 1; ; attempt++ {
		obj, err = h.writeStatusOnce(r.Context(), req, tgt, body)
		if !apierrors.IsConflict(err) || attempt == statusAttempts {
			break
		}
		klog.FromContext(r.Context()).V(4).Info("Status write conflicted, retrying with a fresh read", "attempt", attempt)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, obj)
}

// writeStatusOnce reads the object, stores this target's status in its annotation and
// writes the summary to .status, each only when it changes; it returns the final object.
func (h *handler) writeStatusOnce(ctx context.Context, req request, tgt *target, body []byte) (map[string]any, error) {
	current, err := h.visibleObject(ctx, req, tgt)
	if err != nil {
		return nil, err
	}
	annotation := workloadv1alpha1.StatusAnnotation(tgt.key)
	previous, _ := annotationsOf(current)[annotation]
	status, err := requestedStatus(req, body, previous)
	if err != nil {
		return nil, err
	}
	obj, err := h.writeStatusAnnotation(ctx, req, current, annotation, previous, status)
	if err != nil {
		return nil, err
	}
	return h.writeSummary(ctx, req, obj)
}

// writeSummary writes the summary of obj's per-target statuses (summaryOf) to .status
// when it differs from obj's; it returns the final object.
func (h *handler) writeSummary(ctx context.Context, req request, obj map[string]any) (map[string]any, error) {
	summary, ok, err := summaryOf(req, obj)
	if err != nil || !ok {
		return obj, err
	}
	if reflect.DeepEqual(obj["status"], summary) || (summary == nil && obj["status"] == nil) {
		return obj, nil
	}
	updated := make(map[string]any, len(obj))
	for k, v := range obj {
		updated[k] = v
	}
	if summary == nil {
		delete(updated, "status")
	} else {
		updated["status"] = summary
	}
	b, err := json.Marshal(updated)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return h.upstream.object(ctx, http.MethodPut, req.Cluster, objectPath(req)+"/status", "application/json", b)
}

// requestedStatus returns the .status the request asks for: an update's .status, or a
// merge patch applied to this target's previous status (the annotation's value). nil
// means no status (cleared).
func requestedStatus(req request, body []byte, previous string) (any, error) {
	if req.Verb == verbPatch {
		base := []byte(`{}`)
		if previous != "" {
			base = []byte(`{"status":` + previous + `}`)
		}
		patched, err := jsonpatch.MergePatch(base, body)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid merge patch: %v", err))
		}
		body = patched
	}
	obj := map[string]any{}
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the request body is not a JSON object: %v", err))
	}
	if m, isMap := obj["status"].(map[string]any); isMap && len(m) == 0 {
		return nil, nil
	}
	return obj["status"], nil
}

// writeStatusAnnotation sets (or, for no status, removes) this target's status annotation
// with current's resourceVersion as precondition; it returns the object as written.
func (h *handler) writeStatusAnnotation(ctx context.Context, req request, current map[string]any, annotation, previous string, status any) (map[string]any, error) {
	var value any
	if status != nil {
		b, err := json.Marshal(status)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("failed to encode the status: %v", err))
		}
		if string(b) == previous {
			return current, nil
		}
		value = string(b)
	} else if previous == "" {
		if _, had := annotationsOf(current)[annotation]; !had {
			return current, nil
		}
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": resourceVersionOf(current),
		"annotations":     map[string]any{annotation: value},
	}})
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return h.upstream.object(ctx, http.MethodPatch, req.Cluster, objectPath(req), string(types.MergePatchType), patch)
}

// summaryOf returns the .status of obj summarised over every target in state Sync with a
// status annotation; nil with ok when there is none (no copy reports a status).
func summaryOf(req request, obj map[string]any) (any, bool, error) {
	annotations := annotationsOf(obj)
	var statuses []summarize.TargetStatus
	for label, value := range labelsOf(obj) {
		key, isState := workloadv1alpha1.SyncTargetKeyFromLabel(workloadv1alpha1.ClusterResourceStateLabelPrefix, label)
		if !isState || value != workloadv1alpha1.ResourceStateSync {
			continue
		}
		raw, reported := annotations[workloadv1alpha1.StatusAnnotation(key)]
		if !reported {
			continue
		}
		status := map[string]any{}
		if err := json.Unmarshal([]byte(raw), &status); err != nil {
			// Another target's annotation is unreadable: leave .status as it is.
			return nil, false, nil
		}
		statuses = append(statuses, summarize.TargetStatus{Key: key, Status: status})
	}
	if len(statuses) == 0 {
		return nil, true, nil
	}
	sort.Slice(statuses, func(i, j int) bool { return statuses[i].Key < statuses[j].Key })
	summary, ok := summarize.Summarize(req.GR, statuses)
	if !ok {
		return nil, false, nil
	}
	// The summary compares with .status as read: both as JSON decodes them.
	b, err := json.Marshal(summary)
	if err != nil {
		return nil, false, fmt.Errorf("failed to encode the summarised status: %w", err)
	}
	var normalised any
	if err := json.Unmarshal(b, &normalised); err != nil {
		return nil, false, fmt.Errorf("failed to decode the summarised status: %w", err)
	}
	return normalised, true, nil
}

func annotationsOf(obj map[string]any) map[string]string {
	meta, _ := obj["metadata"].(map[string]any)
	m, _ := stringMap(meta["annotations"])
	return m
}

// summarizeAfterRelease keeps .status right when a metadata write takes this target out of
// the summary (its state label or its status annotation removed, as the syncer's release
// does): .status described a copy that is gone, and no further status write comes from
// the targets that remain while their copies do not change. When another target still
// reports a status, .status becomes the summary of those left (one target: its status
// exactly); with none left, the releasing syncer clears .status itself. It returns the
// answer to send: the final object, or respBody when it wrote nothing. A failure is
// logged, not returned: the release itself succeeded.
func (h *handler) summarizeAfterRelease(ctx context.Context, req request, tgt *target, current map[string]any, respBody []byte) []byte {
	if !reportsStatus(current, tgt.key) {
		return respBody
	}
	obj := map[string]any{}
	if err := json.Unmarshal(respBody, &obj); err != nil || reportsStatus(obj, tgt.key) || !otherReports(obj, tgt.key) {
		return respBody
	}
	logger := klog.FromContext(ctx)
	for attempt := 1; ; attempt++ {
		final, err := h.writeSummary(ctx, req, obj)
		if err == nil {
			if b, err := json.Marshal(final); err == nil {
				return b
			}
			return respBody
		}
		if !apierrors.IsConflict(err) || attempt == statusAttempts {
			logger.Error(err, "Failed to summarise the status of the targets left after a release")
			return respBody
		}
		if obj, err = h.upstream.object(ctx, http.MethodGet, req.Cluster, objectPath(req), "", nil); err != nil {
			logger.Error(err, "Failed to read the object to summarise the status of the targets left after a release")
			return respBody
		}
	}
}

// reportsStatus reports whether target stKey counts in obj's summary: state label Sync and
// a status annotation.
func reportsStatus(obj map[string]any, stKey string) bool {
	_, reported := annotationsOf(obj)[workloadv1alpha1.StatusAnnotation(stKey)]
	return reported && labelsOf(obj)[workloadv1alpha1.ClusterResourceStateLabel(stKey)] == workloadv1alpha1.ResourceStateSync
}

// otherReports reports whether a target other than stKey counts in obj's summary.
func otherReports(obj map[string]any, stKey string) bool {
	for label := range labelsOf(obj) {
		key, isState := workloadv1alpha1.SyncTargetKeyFromLabel(workloadv1alpha1.ClusterResourceStateLabelPrefix, label)
		if isState && key != stKey && reportsStatus(obj, key) {
			return true
		}
	}
	return false
}
