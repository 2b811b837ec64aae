package syncer

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

var (
	podsGVR              = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	servicesGVR          = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	endpointsGVR         = schema.GroupVersionResource{Version: "v1", Resource: "endpoints"}
	endpointSlicesGVR    = schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}
	persistentVolumesGVR = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumes"}
)

// serviceNameLabel names an EndpointSlice's Service.
const serviceNameLabel = "kubernetes.io/service-name"

// upsyncSource is one downstream type whose objects are upsynced, and its cache.
type upsyncSource struct {
	gvr       schema.GroupVersionResource
	hasStatus bool
	// selector selects the candidates server-side; the rules of wants decide.
	selector string
	// derivedFrom is "endpoints" or "endpointslices" for the objects a Service derives.
	derivedFrom string
	lister      cache.GenericLister
	synced      func() bool
}

// clusterScoped reports whether the type's copies are cluster-scoped (PersistentVolumes).
func (s upsyncSource) clusterScoped() bool { return s.gvr == persistentVolumesGVR }

// fixedUpsyncSources are the types upsynced whatever the SyncTarget accepts: Pods from
// labelled pod templates; the Endpoints and EndpointSlices of Services asking for them,
// which carry their Service's labels (the ownership label among them); PersistentVolumes
// bound to a claim of ours.
func fixedUpsyncSources(stKey string) []upsyncSource {
	upsync := workloadv1alpha1.ClusterResourceStateLabel(stKey) + "=" + workloadv1alpha1.ResourceStateUpsync
	owned := workloadv1alpha1.InternalDownstreamClusterLabel + "=" + stKey
	return []upsyncSource{
		{gvr: podsGVR, hasStatus: true, selector: upsync},
		{gvr: endpointsGVR, selector: owned, derivedFrom: "endpoints"},
		{gvr: endpointSlicesGVR, selector: owned, derivedFrom: "endpointslices"},
		{gvr: persistentVolumesGVR, hasStatus: true},
	}
}

// upsyncSources runs one downstream informer per upsynced type: the fixed ones and every
// type the SyncTarget accepts (for objects a user or operator labelled Upsync).
type upsyncSources struct {
	stKey             string
	downstreamDynamic dynamic.Interface
	resync            time.Duration
	// changed receives the key of every downstream event.
	changed func(upsyncKey)

	mu      sync.RWMutex
	sources map[schema.GroupVersionResource]upsyncSource
	stops   map[schema.GroupVersionResource]*informerHandle
}

func newUpsyncSources(stKey string, downstreamDynamic dynamic.Interface, resync time.Duration) *upsyncSources {
	return &upsyncSources{stKey: stKey, downstreamDynamic: downstreamDynamic, resync: resync,
		sources: map[schema.GroupVersionResource]upsyncSource{}, stops: map[schema.GroupVersionResource]*informerHandle{}}
}

// wanted returns the upsynced types for the accepted ones.
func (s *upsyncSources) wanted(accepted []resourceInfo) map[schema.GroupVersionResource]upsyncSource {
	want := map[schema.GroupVersionResource]upsyncSource{}
	for _, src := range fixedUpsyncSources(s.stKey) {
		want[src.gvr] = src
	}
	labelled := workloadv1alpha1.ClusterResourceStateLabel(s.stKey) + "=" + workloadv1alpha1.ResourceStateUpsync
	for _, r := range accepted {
		if _, ok := want[r.gvr]; !ok {
			want[r.gvr] = upsyncSource{gvr: r.gvr, hasStatus: r.hasStatus, selector: labelled}
		}
	}
	return want
}

// reconcile runs exactly the informers of the upsynced types for the accepted ones.
func (s *upsyncSources) reconcile(ctx context.Context, accepted []resourceInfo) error {
	logger := klog.FromContext(ctx)
	want := s.wanted(accepted)
	s.mu.Lock()
	defer s.mu.Unlock()
	for gvr, h := range s.stops {
		if _, ok := want[gvr]; !ok {
			logger.Info("Stopping downstream upsync informer", "resource", gvr.String())
			h.stop()
			delete(s.stops, gvr)
			delete(s.sources, gvr)
		}
	}
	for gvr, src := range want {
		if _, ok := s.stops[gvr]; ok {
			continue
		}
		handler := objectHandler(func(downstreamObj *unstructured.Unstructured, _ bool) {
			s.changed(upsyncKey{gvr: gvr, downstreamNamespace: downstreamObj.GetNamespace(), name: downstreamObj.GetName()})
		})
		h, err := startInformer(ctx, s.downstreamDynamic, gvr, src.selector, "", s.resync, handler)
		if err != nil {
			return err
		}
		src.lister, src.synced = h.lister, h.hasSynced
		s.sources[gvr], s.stops[gvr] = src, h
		logger.Info("Started downstream upsync informer", "resource", gvr.String())
	}
	return nil
}

// source returns the upsynced type gvr and its cache.
func (s *upsyncSources) source(gvr schema.GroupVersionResource) (upsyncSource, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	src, ok := s.sources[gvr]
	return src, ok
}

// types returns the upsynced types, sorted.
func (s *upsyncSources) types() []schema.GroupVersionResource {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]schema.GroupVersionResource, 0, len(s.sources))
	for gvr := range s.sources {
		out = append(out, gvr)
	}
	slices.SortFunc(out, func(a, b schema.GroupVersionResource) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// stopAll stops every informer and waits for them to end.
func (s *upsyncSources) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for gvr, h := range s.stops {
		h.stop()
		<-h.done
		delete(s.stops, gvr)
		delete(s.sources, gvr)
	}
}

// upsyncRules decide which downstream objects go up, and to which upstream namespace.
type upsyncRules struct {
	stKey string
	// locatorOf is the namespace manager's non-forged lookup: only namespaces of ours.
	locatorOf func(downstreamNamespace string) (workloadv1alpha1.NamespaceLocator, bool)
	// downstream is the engine's cache of synced objects (the Services of Endpoints).
	downstream func(schema.GroupVersionResource) (downstreamView, bool)
}

// locatorFor returns the locator of the namespace a downstream object is upsynced from
// when it is to be upsynced: in a namespace of ours (a PersistentVolume: its claim's), and
// for its type's rule.
func (r upsyncRules) locatorFor(src upsyncSource, downstreamObj *unstructured.Unstructured) (workloadv1alpha1.NamespaceLocator, bool) {
	if downstreamObj.GetDeletionTimestamp() != nil {
		return workloadv1alpha1.NamespaceLocator{}, false
	}
	downstreamNamespace := downstreamObj.GetNamespace()
	if src.clusterScoped() {
		downstreamNamespace, _, _ = unstructured.NestedString(downstreamObj.Object, "spec", "claimRef", "namespace")
		if downstreamNamespace == "" {
			return workloadv1alpha1.NamespaceLocator{}, false
		}
	}
	locator, ok := r.locatorOf(downstreamNamespace)
	if !ok {
		return workloadv1alpha1.NamespaceLocator{}, false
	}
	_, synced := downstreamObj.GetLabels()[workloadv1alpha1.InternalDownstreamClusterLabel]
	switch {
	case src.clusterScoped():
		// A volume synced down from the workspace is the workspace's own: mirroring it would
		// write over its upstream original.
		return locator, !synced
	case src.derivedFrom != "":
		return locator, r.serviceAsks(src, downstreamObj)
	}
	// Objects the syncer synced down are the workspace's own, never mirrored.
	if synced {
		return workloadv1alpha1.NamespaceLocator{}, false
	}
	return locator, downstreamObj.GetLabels()[workloadv1alpha1.ClusterResourceStateLabel(r.stKey)] == workloadv1alpha1.ResourceStateUpsync
}

// serviceAsks reports whether the synced Service an Endpoints or EndpointSlice derives from
// asks for its type in UpsyncDerivedResourcesAnnotation (kept on the downstream copy).
func (r upsyncRules) serviceAsks(src upsyncSource, downstreamObj *unstructured.Unstructured) bool {
	serviceName := downstreamObj.GetName()
	if src.gvr == endpointSlicesGVR {
		serviceName = downstreamObj.GetLabels()[serviceNameLabel]
	}
	services, ok := r.downstream(servicesGVR)
	if !ok || serviceName == "" {
		return false
	}
	obj, err := services.lister.ByNamespace(downstreamObj.GetNamespace()).Get(serviceName)
	if err != nil {
		// Not found, or not readable now: not asked for (yet); the next event retries.
		return false
	}
	service, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return false
	}
	for _, derived := range strings.Split(service.GetAnnotations()[workloadv1alpha1.UpsyncDerivedResourcesAnnotation], ",") {
		if strings.TrimSpace(derived) == src.derivedFrom {
			return true
		}
	}
	return false
}
