package syncer

import (
	"fmt"
	"maps"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// view is one of the views the handler serves below the SyncTarget's path.
type view string

const (
	// syncerView is /services/syncer/...: the objects placed on the target (label Sync).
	syncerView view = "syncer"
	// upsyncerView is /services/upsyncer/...: the objects the target's syncer copies up
	// from its physical cluster (label Upsync).
	upsyncerView view = "upsyncer"
)

// viewOf is the view a request path is for; a path of neither is the syncer view's 404.
func viewOf(path string) view {
	if strings.HasPrefix(path, workloadv1alpha1.UpsyncerVirtualWorkspacePrefix) {
		return upsyncerView
	}
	return syncerView
}

// parse splits a request path of the view.
func (v view) parse(path string) (workloadv1alpha1.SyncerVirtualWorkspacePath, bool) {
	if v == upsyncerView {
		return workloadv1alpha1.ParseUpsyncerVirtualWorkspacePath(path)
	}
	return workloadv1alpha1.ParseSyncerVirtualWorkspacePath(path)
}

var (
	persistentVolumesResource = schema.GroupResource{Resource: "persistentvolumes"}
	podsResource              = schema.GroupResource{Resource: "pods"}

	// upsyncResources are the types every upsyncer view serves, besides the SyncTarget's
	// own: the pods of synced workloads, the volumes bound to synced claims and the
	// endpoints of services that ask for them.
	upsyncResources = map[schema.GroupResource]bool{
		{Resource: "pods"}:      true,
		{Resource: "endpoints"}: true,
		{Group: "discovery.k8s.io", Resource: "endpointslices"}: true,
		persistentVolumesResource:                               true,
	}
)

// serveUpsyncer routes an admitted request of the upsyncer view: reads see only the
// objects labelled Upsync for this target (namespaces: those placed on it, read-only),
// and writes are served only for objects that carry that label before and after; every
// request it does not name is refused.
func (h *handler) serveUpsyncer(w http.ResponseWriter, r *http.Request, req request, tgt *target) {
	if req.Verb == verbDiscovery {
		h.serveDiscovery(w, r, req)
		return
	}
	if req.GR != namespacesResource && !upsyncResources[req.GR] && !tgt.resources[req.GR] {
		writeError(w, forbidden(req, fmt.Sprintf("SyncTarget %s does not upsync %s", tgt.name, req.GR)))
		return
	}
	if req.Cluster == wildcardCluster && req.Verb != verbList && req.Verb != verbWatch {
		writeError(w, forbidden(req, "only list and watch are served for /clusters/*"))
		return
	}
	if req.GR == namespacesResource {
		h.serveUpsyncerNamespaces(w, r, req, tgt)
		return
	}
	switch {
	case req.Verb == verbList || req.Verb == verbWatch:
		h.serveCollection(w, r, req, tgt, upsyncerView, workloadv1alpha1.ResourceStateUpsync)
	case req.Verb == verbGet && req.Subresource == "":
		h.serveUpsyncedGet(w, r, req, tgt)
	case req.Verb == verbCreate:
		h.serveUpsyncCreate(w, r, req, tgt)
	case r.Method == http.MethodPost && req.GR == podsResource && req.Name != "" && req.Subresource == "binding":
		h.serveUpsyncBinding(w, r, req, tgt)
	case (req.Verb == verbUpdate || req.Verb == verbPatch) && (req.Subresource == "" || req.Subresource == "status"):
		h.serveUpsyncWrite(w, r, req, tgt)
	case req.Verb == verbDelete && req.Subresource == "":
		h.serveUpsyncDelete(w, r, req, tgt)
	default:
		writeError(w, forbidden(req, fmt.Sprintf("the upsyncer view does not serve %s %s", r.Method, req.APIPath)))
	}
}

// serveUpsyncerNamespaces serves the namespaces placed on this target (label Sync),
// read-only: the upsyncer checks where its objects may go.
func (h *handler) serveUpsyncerNamespaces(w http.ResponseWriter, r *http.Request, req request, tgt *target) {
	switch {
	case req.Verb == verbList || req.Verb == verbWatch:
		h.serveCollection(w, r, req, tgt, upsyncerView, workloadv1alpha1.ResourceStateSync)
	case req.Verb == verbGet && req.Subresource == "":
		h.serveGet(w, r, req, tgt)
	default:
		writeError(w, forbidden(req, "namespaces are read-only in the upsyncer view"))
	}
}

// serveUpsyncedGet answers a get with the object only if it is upsynced by this target.
func (h *handler) serveUpsyncedGet(w http.ResponseWriter, r *http.Request, req request, tgt *target) {
	obj, err := h.upstream.object(r.Context(), http.MethodGet, req.Cluster, objectPath(req), "", nil)
	if err != nil {
		writeError(w, err)
		return
	}
	if !upsyncedHere(labelsOf(obj), tgt.key) {
		writeError(w, apierrors.NewNotFound(req.GR, req.Name))
		return
	}
	writeJSON(w, http.StatusOK, obj)
}

// upsyncedHere reports whether an object's labels mark it upsynced by the target stKey.
func upsyncedHere(objLabels map[string]string, stKey string) bool {
	return objLabels[workloadv1alpha1.ClusterResourceStateLabel(stKey)] == workloadv1alpha1.ResourceStateUpsync
}

// checkUpsyncLabels checks the object a write of the upsyncer of stKey would leave: it
// carries this target's state label Upsync, and the state labels of every other target
// are those of current (nil for a create: none), so that no syncer can place an object on
// another target.
func checkUpsyncLabels(current, result map[string]any, stKey string) error {
	label := workloadv1alpha1.ClusterResourceStateLabel(stKey)
	if !upsyncedHere(labelsOf(result), stKey) {
		return fmt.Errorf("the upsyncer view writes only objects labelled %s=%s, and a write may not remove or change that label",
			label, workloadv1alpha1.ResourceStateUpsync)
	}
	if !maps.Equal(otherStateLabels(labelsOf(current), stKey), otherStateLabels(labelsOf(result), stKey)) {
		return fmt.Errorf("the upsyncer of %s may not set, change or remove the state labels of other SyncTargets", label)
	}
	return nil
}

// otherStateLabels returns the state labels of targets other than stKey.
func otherStateLabels(objLabels map[string]string, stKey string) map[string]string {
	own := workloadv1alpha1.ClusterResourceStateLabel(stKey)
	out := map[string]string{}
	for k, v := range objLabels {
		if k != own && strings.HasPrefix(k, workloadv1alpha1.ClusterResourceStateLabelPrefix) {
			out[k] = v
		}
	}
	return out
}
