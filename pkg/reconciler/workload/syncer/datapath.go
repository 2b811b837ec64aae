package syncer

import (
	"github.com/tmc-dev/tmc/pkg/reconciler/queue"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// dataPath is the syncer's data path, wired for one run.
type dataPath struct {
	engine     *engine
	spec       *specController
	status     *statusController
	namespaces *namespaceManager
	breaker    *deletionBreaker
	// typeReleases releases the types that were synced and are no longer.
	typeReleases *typeReleaser
	// rejections forwards the pod-creation failures of StatefulSets and Jobs.
	rejections *podRejections
	// hubCA publishes the hub's CA downstream as kcp-root-ca.crt.
	hubCA *hubCAPublisher
	// upsync mirrors Pods, derived Endpoints, bound PersistentVolumes and objects labelled
	// Upsync downstream up to their workspaces (upsync.go); upsyncSources are their
	// downstream informers, upsyncCopies the upstream caches of the copies.
	upsync        *upsyncController
	upsyncSources *upsyncSources
	upsyncCopies  *upsyncUpstream
}

// dataPathOption changes how newDataPath wires the data path.
type dataPathOption func(*dataPathOptions)

type dataPathOptions struct {
	budget deletionBudget
	views  *syncerViews
}

// withSyncerViews reaches the workload workspaces through the virtual-workspace server's
// syncer views: the engine's upstream informers are views of their wildcard caches, a
// workspace's name is its identity, and the server summarises status across targets.
func withSyncerViews(views *syncerViews) dataPathOption {
	return func(o *dataPathOptions) { o.views = views }
}

// withDeletionBudget makes the removals and the namespace cleanup ask budget instead of
// the mass-deletion breaker (tests).
func withDeletionBudget(budget deletionBudget) dataPathOption {
	return func(o *dataPathOptions) { o.budget = budget }
}

// newDataPath wires the engine and the controllers: the engine's informer events queue
// keys on the controllers (the closures only break the construction cycle); each
// controller reads the engine's caches through the funcs it is given.
func newDataPath(target syncTarget, chain *transform.Chain, cfg *Config, downstreamDynamic dynamic.Interface, downstreamKube kubernetes.Interface,
	metrics *syncerMetrics, errs *errorLog, recovery tmc.RecoveryOptions, opts ...dataPathOption) *dataPath {
	d := &dataPath{}
	o := dataPathOptions{}
	for _, opt := range opts {
		opt(&o)
	}
	configFor := directConfig(cfg.UpstreamConfig)
	if o.views != nil {
		configFor = o.views.config
	}
	latency := newLatencyTracker()
	d.engine = newEngine(target.key, downstreamDynamic, downstreamKube, newUpstreamWorkspaceFunc(configFor, target.name), cfg.ResyncPeriod, engineEvents{
		specChanged:    func(key specKey) { d.spec.enqueue(key) },
		statusChanged:  func(key statusKey) { d.status.enqueue(key) },
		namespaceAdded: func(downstreamNamespace string) { d.namespaces.consider(downstreamNamespace) },
		upstreamNamespaceChanged: func(ws, upstreamNamespace string) {
			d.namespaces.upstreamNamespaceChanged(ws, upstreamNamespace)
		},
		locatorOf: func(downstreamNamespace string) (workloadv1alpha1.NamespaceLocator, bool) {
			return d.namespaces.locatorOf(downstreamNamespace)
		},
		rootCAChanged:  func(ws, upstreamNamespace string) { d.hubCA.upstreamChanged(ws, upstreamNamespace) },
		hubCANamespace: func(downstreamNamespace string) { d.hubCA.namespaceAdded(downstreamNamespace) },
	}, metrics)
	d.engine.resolveClusterName = clusterNameResolver(cfg.UpstreamConfig)
	if o.views != nil {
		// A view's workspaces are logical clusters: their names are their identities.
		o.views.specChanged = d.engine.events.specChanged
		o.views.namespaceChanged = d.engine.events.upstreamNamespaceChanged
		o.views.rootCAChanged = d.engine.events.rootCAChanged
		d.engine.views, d.engine.resolveClusterName = o.views, nil
	}
	deletionBudgetConfig := DefaultDeletionBudget()
	if cfg.DeletionBudget != nil {
		deletionBudgetConfig = *cfg.DeletionBudget
	}
	d.typeReleases = newTypeReleaser(target, d.engine, metrics, errs, recovery)
	d.engine.typeReleases = d.typeReleases
	d.breaker = newDeletionBreaker(deletionBudgetConfig, target, d.engine.syncedObjectCount, metrics)
	budget := o.budget
	if budget == nil {
		budget = d.breaker
	}
	d.namespaces = &namespaceManager{
		target:               target,
		namespaceLister:      d.engine.namespaces,
		downstreamNamespaces: downstreamKube.CoreV1().Namespaces(),
		caches:               d.engine,
		// TODO(issue 11): the SyncTarget's deletionTimestamp, once the removal path reads it.
		targetDeleting: func() bool { return false },
		cleanDelay:     cfg.DownstreamNamespaceCleanDelay,
		budget:         budget,
		metrics:        metrics,
		forged:         newForgedLocators(target, metrics),
	}
	// Cleanup failures are not sync failures: they are retried, but neither counted nor
	// reported as failing objects.
	d.namespaces.queue = queue.New(d.namespaces.reconcile, queue.Options[string]{
		Name: "namespace-cleanup", Component: "syncer", MetricsProvider: metrics.tmc.WorkqueueMetricsProvider(), Recovery: recovery,
	})
	d.hubCA = newHubCAPublisher(target, d.engine, d.namespaces, downstreamKube, cfg.ResyncPeriod, metrics, recovery)
	remover := &downstreamRemover{target: target, downstreamClient: downstreamDynamic, downstreamNamespaces: downstreamKube.CoreV1().Namespaces(),
		considerNamespace: d.namespaces.consider, upstreamNamespace: d.engine.upstreamNamespace, budget: budget,
		lost: newLostObjects(target.name, metrics, errs), stuck: newStuckDeletions(metrics), metrics: metrics}
	d.spec = &specController{
		target:           target,
		chain:            chain,
		resource:         d.engine.resource,
		upstream:         d.engine.upstream,
		clusterName:      d.engine.clusterName,
		downstream:       d.engine.downstream,
		downstreamClient: downstreamDynamic,
		namespaces:       d.namespaces,
		remover:          remover,
		metrics:          metrics,
		latency:          latency,

		// The SyncTarget's conflict policy is set by runControllers, from its cache.
		downstreamNamespaces: d.engine.namespaces,
	}
	d.spec.queue = newSyncerQueue("spec", d.spec.reconcile, metrics, errs, recovery)
	d.status = &statusController{
		target:      target,
		resource:    d.engine.resource,
		downstream:  d.engine.downstream,
		upstream:    d.engine.upstream,
		locatorOf:   d.namespaces.locatorOf,
		workspaceOf: d.engine.workspaceOf,
		metrics:     metrics,
		latency:     latency,
		// One StatusOwnedUpstream Event per object and process.
		statusOwners:     newStatusOwnerReports(),
		serverSummarises: o.views != nil,
	}
	d.status.queue = newSyncerQueue("status", d.status.reconcile, metrics, errs, recovery)
	d.rejections = newPodRejections(target, downstreamKube, rejectionLookups{
		locatorOf: d.namespaces.locatorOf, downstream: d.engine.downstream, downstreamClient: downstreamDynamic, upstream: d.engine.upstream,
		workspaceOf: d.engine.workspaceOf,
	}, metrics, recovery)
	d.wireUpsync(target, cfg, o.views, downstreamDynamic, metrics, errs, recovery)
	return d
}

// wireUpsync builds the upsync controller, its downstream sources and upstream caches.
func (d *dataPath) wireUpsync(target syncTarget, cfg *Config, views *syncerViews, downstreamDynamic dynamic.Interface, metrics *syncerMetrics, errs *errorLog, recovery tmc.RecoveryOptions) {
	d.upsyncSources = newUpsyncSources(target.key, downstreamDynamic, cfg.ResyncPeriod)
	d.upsyncCopies = newUpsyncUpstream(target.key, cfg.UpstreamConfig, cfg.ResyncPeriod)
	if views != nil {
		d.upsyncCopies.shardOf = views.shardURL
	}
	d.upsync = &upsyncController{
		target:           target,
		rules:            upsyncRules{stKey: target.key, locatorOf: d.namespaces.locatorOf, downstream: d.engine.downstream},
		source:           d.upsyncSources.source,
		copies:           d.upsyncCopies.copies,
		client:           d.upsyncCopies.client,
		workspaceOf:      d.engine.workspaceOf,
		clusterName:      d.engine.clusterName,
		downstreamName:   d.namespaces.downstreamName,
		namespacesSynced: func() bool { return d.engine.namespacesSynced() },
		targetDeleting:   func() bool { return false },
		metrics:          metrics,
		origins:          map[upsyncKey]upsyncOrigin{},
	}
	d.upsync.queue = newSyncerQueue("upsync", d.upsync.reconcile, metrics, errs, recovery)
	d.upsyncSources.changed = d.upsync.enqueue
	d.upsyncCopies.changed = d.upsync.upstreamChanged
	// A synced Service that changes (its UpsyncDerivedResourcesAnnotation) reconsiders its
	// Endpoints and EndpointSlices; set before any informer runs.
	statusChanged := d.engine.events.statusChanged
	d.engine.events.statusChanged = func(key statusKey) {
		statusChanged(key)
		if key.gvr == servicesGVR {
			d.upsync.serviceChanged(key.downstreamNamespace, key.name)
		}
	}
}
