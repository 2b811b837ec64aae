package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// Options configure the syncer view's handler.
type Options struct {
	// Upstream is a privileged identity at the upstream's root: workspaces are served at
	// <Host>/clusters/<name>, every workspace at <Host>/clusters/*. Required.
	Upstream *rest.Config
	// Authentication reaches the location workspaces, at <Host>/clusters/<location-cluster>:
	// TokenReviews and SubjectAccessReviews go there, and SyncTargets are read there (so on
	// a shard whose Upstream does not hold the location workspace, point it at the front
	// proxy); default Upstream.
	Authentication *rest.Config
	// Metrics records requests and open watches; nil records nothing.
	Metrics *Metrics
	// AuthCacheTTL is how long positive authentication and authorisation answers are
	// reused; default 10s.
	AuthCacheTTL time.Duration
	// SyncTargetCacheTTL is how long a SyncTarget read is reused; default 5s.
	SyncTargetCacheTTL time.Duration
	// Tunnel serves <syncer view>/tunnel (TunnelSubpath) once the request is admitted as any
	// syncer-view request, with the SyncTarget's key; it owns the connection until it
	// returns. Nil answers 404 there.
	Tunnel func(w http.ResponseWriter, r *http.Request, key string)
}

// handler serves the syncer view.
type handler struct {
	upstream *clusterClient
	// location reaches the location workspaces (Options.Authentication).
	location   *clusterClient
	reviews    *reviewer
	metrics    *Metrics
	tunnel     func(w http.ResponseWriter, r *http.Request, key string)
	targetTTL  time.Duration
	targets    *cache.LRUExpireCache
	namespaces *cache.LRUExpireCache
}

// NewHandler returns the handler of the syncer view (/services/syncer/...) and the
// upsyncer view (/services/upsyncer/...); every other path is a 404.
func NewHandler(opts Options) (http.Handler, error) {
	if opts.Upstream == nil {
		return nil, errors.New("no upstream config")
	}
	if opts.Authentication == nil {
		opts.Authentication = opts.Upstream
	}
	if opts.AuthCacheTTL == 0 {
		opts.AuthCacheTTL = 10 * time.Second
	}
	if opts.SyncTargetCacheTTL == 0 {
		opts.SyncTargetCacheTTL = 5 * time.Second
	}
	upstream, err := newClusterClient(opts.Upstream)
	if err != nil {
		return nil, err
	}
	authn, err := newClusterClient(opts.Authentication)
	if err != nil {
		return nil, err
	}
	return &handler{
		upstream:   upstream,
		location:   authn,
		reviews:    newReviewer(authn, opts.AuthCacheTTL),
		metrics:    opts.Metrics,
		tunnel:     opts.Tunnel,
		targetTTL:  opts.SyncTargetCacheTTL,
		targets:    cache.NewLRUExpireCache(authCacheSize),
		namespaces: cache.NewLRUExpireCache(authCacheSize),
	}, nil
}

// target is the SyncTarget a request is for.
type target struct {
	locationCluster, name string
	key                   string
	resources             map[schema.GroupResource]bool
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v := viewOf(r.URL.Path)
	rec := NewStatusRecorder(w)
	req, tgt, ok := h.admit(rec, r, v)
	defer func() { h.metrics.request(v, req.Verb, resourceLabel(req, tgt), rec.Code) }()
	if !ok {
		return
	}
	if req.Verb == verbTunnel {
		// The tunnel takes the connection over (a hijack): hand it the writer itself.
		rec.Code = http.StatusSwitchingProtocols
		h.tunnel(w, r.WithContext(klog.NewContext(r.Context(), klog.FromContext(r.Context()).WithValues("syncTarget", tgt.name))), tgt.key)
		return
	}
	ctx := klog.NewContext(r.Context(), klog.FromContext(r.Context()).WithValues("view", string(v), "syncTarget", tgt.name, "cluster", req.Cluster, "verb", req.Verb, "resource", req.GR.String()))
	if v == upsyncerView {
		h.serveUpsyncer(rec, r.WithContext(ctx), req, tgt)
		return
	}
	h.serve(rec, r.WithContext(ctx), req, tgt)
}

// admit authenticates and authorises a request of view v and finds its SyncTarget; it has
// answered the request when ok is false.
func (h *handler) admit(w http.ResponseWriter, r *http.Request, v view) (request, *target, bool) {
	path, ok := v.parse(r.URL.Path)
	if !ok {
		writeError(w, apierrors.NewNotFound(schema.GroupResource{}, r.URL.Path))
		return request{Verb: verbUnsupported}, nil, false
	}
	req, parsed := parseRequest(r.Method, path.Rest, r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1")
	if !parsed {
		req.Verb = verbUnsupported
	}
	if path.Rest == workloadv1alpha1.TunnelSubpath && v == syncerView {
		if h.tunnel == nil {
			writeError(w, apierrors.NewNotFound(schema.GroupResource{}, r.URL.Path))
			return request{Verb: verbUnsupported}, nil, false
		}
		req, parsed = request{Verb: verbTunnel}, true
	}
	token := bearerToken(r)
	if token == "" {
		writeError(w, apierrors.NewUnauthorized("a bearer token is required"))
		return req, nil, false
	}
	user, err := h.reviews.authenticate(r.Context(), path.LocationCluster, token)
	if err != nil && !apierrors.IsNotFound(err) {
		writeError(w, apierrors.NewInternalError(err))
		return req, nil, false
	}
	// An unknown location workspace authenticates nobody, and says no more than that.
	if user == nil {
		writeError(w, apierrors.NewUnauthorized("the token is not valid in the location workspace"))
		return req, nil, false
	}
	allowed, reason, err := h.reviews.authorize(r.Context(), path.LocationCluster, path.SyncTargetName, user)
	if err != nil {
		writeError(w, apierrors.NewInternalError(err))
		return req, nil, false
	}
	if !allowed {
		writeError(w, apierrors.NewForbidden(workloadv1alpha1.Resource("synctargets"), path.SyncTargetName,
			fmt.Errorf("user %q may not %s this SyncTarget: %s", user.Username, SyncVerb, reason)))
		return req, nil, false
	}
	tgt, err := h.target(r.Context(), path)
	if err != nil {
		writeError(w, err)
		return req, nil, false
	}
	if !parsed {
		writeError(w, forbidden(req, "the "+string(v)+" view serves only /clusters/<cluster>/..."))
		return req, nil, false
	}
	return req, tgt, true
}

// target returns the SyncTarget of path: a Forbidden error when it does not exist with that
// uid. Not NotFound: to a syncer, a 404 on a list or get means its objects are gone, and a
// view that does not exist (its SyncTarget deleted or re-created) must never read as that.
func (h *handler) target(ctx context.Context, path workloadv1alpha1.SyncerVirtualWorkspacePath) (*target, error) {
	cacheKey := path.LocationCluster + "/" + path.SyncTargetName + "/" + string(path.SyncTargetUID)
	if t, ok := h.targets.Get(cacheKey); ok {
		return t.(*target), nil
	}
	obj, err := h.location.object(ctx, http.MethodGet, path.LocationCluster, "/apis/workload.kcp.io/v1alpha1/synctargets/"+path.SyncTargetName, "", nil)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, apierrors.NewInternalError(fmt.Errorf("failed to get the SyncTarget: %w", err))
	}
	notFound := apierrors.NewForbidden(workloadv1alpha1.Resource("synctargets"), path.SyncTargetName,
		fmt.Errorf("no SyncTarget %s with uid %s in %s: it was deleted or re-created; register the cluster again", path.SyncTargetName, path.SyncTargetUID, path.LocationCluster))
	if err != nil {
		return nil, notFound
	}
	st := &workloadv1alpha1.SyncTarget{}
	if err := fromMap(obj, st); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if st.UID != path.SyncTargetUID {
		return nil, notFound
	}
	resources := st.Spec.Resources
	if len(resources) == 0 {
		resources = workloadv1alpha1.DefaultResources()
	}
	t := &target{
		locationCluster: path.LocationCluster,
		name:            st.Name,
		key:             workloadv1alpha1.SyncTargetKeyOf(st, path.LocationCluster),
		resources:       map[schema.GroupResource]bool{},
	}
	for _, res := range resources {
		t.resources[schema.GroupResource{Group: res.Group, Resource: res.Resource}] = true
	}
	h.targets.Add(cacheKey, t, h.targetTTL)
	return t, nil
}

// resourceLabel is the resource of req as the metrics name it: one the target may reach,
// or "other", so that no request path grows the metric's label set.
func resourceLabel(req request, tgt *target) string {
	switch {
	case req.Verb == verbDiscovery || req.Verb == verbTunnel:
		return ""
	case tgt != nil && (tgt.resources[req.GR] || upsyncResources[req.GR] || req.GR == namespacesResource || req.GR == eventsResource):
		return req.GR.String()
	}
	return "other"
}

func fromMap(obj map[string]any, into any) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("failed to encode %T: %w", into, err)
	}
	if err := json.Unmarshal(b, into); err != nil {
		return fmt.Errorf("failed to decode %T: %w", into, err)
	}
	return nil
}

// forbidden is the 403 of a request the syncer view does not serve.
func forbidden(req request, msg string) error {
	return apierrors.NewForbidden(req.GR, req.Name, errors.New(msg))
}

// writeError answers with err as a Kubernetes Status.
func writeError(w http.ResponseWriter, err error) {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		status = apierrors.NewInternalError(err)
	}
	st := status.Status()
	st.Kind, st.APIVersion = "Status", "v1"
	writeJSON(w, int(st.Code), st)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
