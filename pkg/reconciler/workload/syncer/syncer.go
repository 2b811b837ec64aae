package syncer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/cliplugins/workload/sync/syncerrbac"
	"github.com/tmc-dev/tmc/pkg/cliutil"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
	tmcinformers "github.com/tmc-dev/tmc/sdk/client/informers/externalversions"
	workloadlisters "github.com/tmc-dev/tmc/sdk/client/listers/workload/v1alpha1"
)

// Syncer is one workload-syncer: it serves one SyncTarget. New builds the clients, metrics
// and health checks; Run reads the SyncTarget and then wires the data path (engine, spec,
// status, namespaces, status reporter), each piece given exactly what it uses.
type Syncer struct {
	cfg    *Config
	chain  *transform.Chain
	target syncTarget

	locationClient    tmcclient.Interface
	locationDynamic   dynamic.Interface
	locationKube      kubernetes.Interface
	downstreamDynamic dynamic.Interface
	downstreamKube    kubernetes.Interface

	metrics   *syncerMetrics
	health    *tmc.ComponentHealthManager
	errors    *errorLog
	isStarted atomic.Bool
	// engine is set by runControllers before isStarted; health checks read it after.
	engine *engine
	// mode is this run's upstream mode; views are its syncer views (virtual-workspace
	// mode only). Both are set by runControllers.
	mode  UpstreamMode
	views *syncerViews
}

// Option customises a Syncer.
type Option func(*Syncer)

// WithTransformations extends the default transformation and filter chain.
func WithTransformations(chain *transform.Chain) Option {
	return func(s *Syncer) { s.chain = chain }
}

// New validates cfg and builds a Syncer; Run starts it.
func New(cfg *Config, opts ...Option) (*Syncer, error) {
	switch {
	case cfg == nil || cfg.UpstreamConfig == nil:
		return nil, errors.New("an upstream config is required")
	case cfg.DownstreamConfig == nil:
		return nil, errors.New("a downstream config is required")
	case cfg.SyncTargetName == "":
		return nil, errors.New("a SyncTarget name is required")
	case cfg.Workers < 1:
		return nil, errors.New("at least one worker is required")
	case cfg.HeartbeatInterval <= 0:
		return nil, errors.New("the heartbeat interval must be positive")
	}
	s := &Syncer{cfg: cfg, chain: transform.DefaultChain(), errors: newErrorLog()}
	for _, o := range opts {
		o(s)
	}
	s.target = syncTarget{workspace: cfg.SyncTargetWorkspace.String(), name: cfg.SyncTargetName}
	if cfg.SyncTargetWorkspace.Empty() {
		s.target.workspace = hubWorkspace
	}
	// The key is known once the SyncTarget is read (waitForSyncTarget).
	locationConfig, err := upstreamConfig(cfg.UpstreamConfig, s.target.workspace)
	if err != nil {
		return nil, err
	}
	if s.locationClient, err = tmcclient.NewForConfig(locationConfig); err != nil {
		return nil, fmt.Errorf("failed to create location workspace client: %w", err)
	}
	if s.locationDynamic, err = dynamic.NewForConfig(locationConfig); err != nil {
		return nil, fmt.Errorf("failed to create location workspace client: %w", err)
	}
	if s.locationKube, err = kubernetes.NewForConfig(locationConfig); err != nil {
		return nil, fmt.Errorf("failed to create location workspace client: %w", err)
	}
	if s.downstreamDynamic, err = dynamic.NewForConfig(cfg.DownstreamConfig); err != nil {
		return nil, fmt.Errorf("failed to create downstream client: %w", err)
	}
	if s.downstreamKube, err = kubernetes.NewForConfig(cfg.DownstreamConfig); err != nil {
		return nil, fmt.Errorf("failed to create downstream client: %w", err)
	}
	s.metrics = newSyncerMetrics(cfg.SyncTargetName)
	checks := healthChecks{
		syncTargetName: cfg.SyncTargetName,
		locationClient: s.locationClient,
		downstreamREST: s.downstreamKube.Discovery().RESTClient(),
		started:        s.isStarted.Load,
		synced:         func() (bool, string) { return s.engine.downstreamSynced() },
	}
	if s.health, err = checks.register(s.metrics.tmc); err != nil {
		return nil, err
	}
	return s, nil
}

// SyncTargetKey returns the key of the served SyncTarget, once Run has read it.
func (s *Syncer) SyncTargetKey() string { return s.target.key }

// MetricsHandler serves the syncer's Prometheus metrics.
func (s *Syncer) MetricsHandler() http.Handler { return s.metrics.tmc.Handler() }

// HealthHandler serves /healthz, /livez and /readyz.
func (s *Syncer) HealthHandler() http.Handler { return s.health.Handler() }

// Run runs the syncer until ctx ends. Metrics and health are served at once; the
// controllers start once the SyncTarget is found (and this replica leads, with leader
// election).
func (s *Syncer) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithValues("syncTarget", s.target.name, "syncTargetWorkspace", s.target.workspace)
	ctx = klog.NewContext(ctx, logger)
	logger.Info("Starting workload-syncer")

	var leaderElection *cliutil.LeaderElection
	if le := s.cfg.LeaderElection; le != nil {
		leaderElection = &cliutil.LeaderElection{Client: s.downstreamKube, Namespace: le.Namespace, Name: le.Name, Identity: le.Identity,
			LeaseDuration: le.LeaseDuration, RenewDeadline: le.RenewDeadline, RetryPeriod: le.RetryPeriod}
	}
	return cliutil.RunComponent(ctx, cliutil.Component{
		Name:               "workload-syncer",
		MetricsBindAddress: s.cfg.MetricsBindAddress,
		Metrics:            s.MetricsHandler(),
		HealthBindAddress:  s.cfg.HealthProbeBindAddress,
		Health:             s.HealthHandler(),
		Prepare:            s.waitForSyncTarget,
		Run:                s.runControllers,
		LeaderElection:     leaderElection,
	})
}

// waitForSyncTarget waits until the SyncTarget exists, checks the UID guard, and records
// its UID (part of every namespace locator).
func (s *Syncer) waitForSyncTarget(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	var st *workloadv1alpha1.SyncTarget
	err := wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := s.locationClient.WorkloadV1alpha1().SyncTargets().Get(ctx, s.target.name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				logger.Info("Waiting for the SyncTarget to be created")
			} else {
				logger.Info("Cannot read the SyncTarget yet", "err", err)
			}
			return false, nil
		}
		st = got
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("SyncTarget %s not available: %w", s.target.name, err)
	}
	if s.cfg.SyncTargetUID != "" && string(st.UID) != s.cfg.SyncTargetUID {
		return fmt.Errorf("SyncTarget %s has UID %s, but --sync-target-uid is %s: it was deleted and re-created; re-register the cluster", s.target.name, st.UID, s.cfg.SyncTargetUID)
	}
	s.target.uid = st.UID
	// kcp keys a SyncTarget by the logical-cluster name of its workspace, recorded on the
	// object; a plain hub records none and its workspace is hubWorkspace.
	s.target.cluster = workloadv1alpha1.SyncTargetCluster(st, s.target.workspace)
	s.target.key = workloadv1alpha1.ToSyncTargetKey(s.target.cluster, s.target.name)
	logger.Info("Serving SyncTarget", "uid", st.UID, "logicalCluster", s.target.cluster, "syncTargetKey", s.target.key)
	return nil
}

// runControllers wires the data path and runs it with the status reporter until ctx ends.
func (s *Syncer) runControllers(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	factory := tmcinformers.NewSharedInformerFactoryWithOptions(s.locationClient, 0,
		tmcinformers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", s.target.name).String()
		}))
	stInformer := factory.Workload().V1alpha1().SyncTargets()
	syncTargetLister := stInformer.Lister()
	changed := make(chan struct{}, 1)
	trigger := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	_, _ = stInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { trigger() },
		UpdateFunc: func(any, any) { trigger() },
	})
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), stInformer.Informer().HasSynced) {
		return ctx.Err()
	}

	viewOpts := s.chooseUpstreamMode(ctx, syncTargetLister)
	d := newDataPath(s.target, s.chain, s.cfg, s.downstreamDynamic, s.downstreamKube, s.metrics, s.errors, tmc.RecoveryOptions{Registerer: s.metrics.tmc.Registerer()}, viewOpts...)
	s.engine = d.engine
	d.spec.remover.targetDeleting = syncTargetDeleting(syncTargetLister, s.target.name)
	d.spec.targetConflictPolicy = syncTargetConflictPolicy(syncTargetLister, s.target.name)
	if err := requeueOnTargetDeletion(stInformer.Informer(), d.engine.upstreamKeys, d.spec.enqueue); err != nil {
		return err
	}
	d.upsync.targetDeleting = d.spec.remover.targetDeleting
	if err := requeueOnTargetDeletion(stInformer.Informer(), d.upsync.keys, d.upsync.enqueue); err != nil {
		return err
	}
	d.spec.tenancy = syncTargetTenancy(syncTargetLister, s.target.name)
	if err := requeueOnTenancyChange(stInformer.Informer(), d.engine.upstreamKeys, d.spec.enqueue); err != nil {
		return err
	}
	locationRecorder := s.locationRecorder(ctx)
	d.namespaces.forged.recorder, d.namespaces.forged.logger = locationRecorder, logger
	d.engine.startNamespaceInformer(ctx)
	d.breaker.syncTarget = func() *workloadv1alpha1.SyncTarget {
		st, err := syncTargetLister.Get(s.target.name)
		if err != nil {
			return nil
		}
		return st
	}
	recorder := locationRecorder
	d.breaker.recorder = recorder
	d.typeReleases.recorder = recorder
	// The types the previous run synced: those no longer wanted are released, also when
	// they were removed while the syncer was down.
	if st, err := syncTargetLister.Get(s.target.name); err == nil {
		d.typeReleases.resume(st.Status.SyncedResources)
	}
	policyName := s.cfg.AdmissionPolicyName
	if policyName == "" {
		policyName = syncerrbac.ClusterObjectName(s.target.workspace, s.target.name)
	}
	downstreamMetadata, err := metadata.NewForConfig(s.cfg.DownstreamConfig)
	if err != nil {
		return fmt.Errorf("failed to create the downstream metadata client: %w", err)
	}
	claims := newDownstreamClaims(downstreamMetadata, s.cfg.ResyncPeriod, d.namespaces.locatorOf, d.engine.workspaceOf)
	d.namespaces.podSecurity = func() *workloadv1alpha1.PodSecurity {
		if st := d.breaker.syncTarget(); st != nil {
			return st.Spec.PodSecurity
		}
		return nil
	}
	reporter := &statusReporter{
		target:           s.target,
		interval:         s.cfg.HeartbeatInterval,
		podName:          s.cfg.PodName,
		syncTargetLister: syncTargetLister,
		syncTargets:      s.locationDynamic.Resource(workloadv1alpha1.SchemeGroupVersion.WithResource("synctargets")),
		downstreamNodes:  s.downstreamKube.CoreV1().Nodes(),
		caches:           d.engine,
		started:          s.isStarted.Load,
		errors:           s.errors,
		metrics:          s.metrics,
		startTime:        metav1.NewTime(time.Now().Truncate(time.Second)),
		breaker:          d.breaker,
		workspaceHealth:  newWorkspaceHealthChecker(s.target).reportClaims(claims, syncTargetLister),
		confinement:      newConfinementChecker(s.target, policyName, s.downstreamKube, s.metrics, recorder).everyNthHeartbeat(s.cfg.HeartbeatInterval, confinementRecheckHeartbeats),
	}
	tunnels, err := s.newTunnels(d.namespaces)
	if err != nil {
		return err
	}
	if tunnels != nil {
		defer tunnels.stop()
	}
	var modeChanged atomic.Bool
	discover := func(ctx context.Context) error {
		if st, err := syncTargetLister.Get(s.target.name); err == nil && tunnels != nil {
			tunnels.set(ctx, viewURLs(st))
		}
		// A change of spec.podSecurity reaches the existing namespaces here.
		if err := d.namespaces.ensurePodSecurityAll(ctx); err != nil {
			logger.Error(err, "Failed to update the pod security labels of downstream namespaces")
		}
		err := s.reconcileEngine(ctx, d.engine, syncTargetLister)
		if errors.Is(err, errUpstreamModeChanged) {
			modeChanged.Store(true)
			cancel()
			return err
		}
		if st, getErr := syncTargetLister.Get(s.target.name); getErr == nil {
			err = errors.Join(err, d.reconcileUpsync(ctx, st))
		}
		return err
	}
	if err := discover(ctx); err != nil {
		logger.Error(err, "Initial discovery failed; retrying")
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.engineLoop(ctx, changed, discover) })
	wg.Go(func() { claims.run(ctx) })
	wg.Go(func() { reporter.run(ctx) })
	wg.Go(func() { d.namespaces.queue.Run(ctx, 1) })
	wg.Go(func() { d.hubCA.run(ctx) })
	wg.Go(func() { d.typeReleases.queue.Run(ctx, 1) })
	wg.Go(func() { d.status.queue.Run(ctx, s.cfg.Workers) })
	wg.Go(func() { d.rejections.run(ctx) })
	wg.Go(func() { d.upsync.queue.Run(ctx, s.cfg.Workers) })
	s.isStarted.Store(true)
	logger.Info("Syncer started")
	d.spec.queue.Run(ctx, s.cfg.Workers)
	cancel()
	wg.Wait()
	d.engine.stopAll()
	d.upsyncSources.stopAll()
	d.upsyncCopies.stopAll()
	if modeChanged.Load() {
		return errUpstreamModeChanged
	}
	return nil
}

// chooseUpstreamMode sets this run's upstream mode from the SyncTarget and returns the
// data-path options it needs (the syncer views in virtual-workspace mode).
func (s *Syncer) chooseUpstreamMode(ctx context.Context, syncTargetLister workloadlisters.SyncTargetLister) []dataPathOption {
	st, _ := syncTargetLister.Get(s.target.name)
	s.mode = resolveUpstreamMode(s.cfg, s.target, st)
	klog.FromContext(ctx).Info("Reaching the workload workspaces", "upstreamMode", s.mode)
	if s.mode != UpstreamModeVirtualWorkspace {
		return nil
	}
	s.views = newSyncerViews(s.cfg.UpstreamConfig, s.target.key, s.cfg.ResyncPeriod)
	return []dataPathOption{withSyncerViews(s.views)}
}

// engineLoop re-runs discovery and informer reconciliation when the SyncTarget changes and
// every discovery interval (to notice new downstream CRDs and RBAC changes).
func (s *Syncer) engineLoop(ctx context.Context, changed <-chan struct{}, discover func(context.Context) error) {
	interval := s.cfg.DiscoveryInterval
	if interval <= 0 {
		interval = 30 * time.Second
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-changed:
		}
		if err := discover(ctx); err != nil {
			klog.FromContext(ctx).Error(err, "Failed to reconcile resources and workspaces")
		}
	}
}

// reconcileEngine discovers the accepted resource types downstream and the placed
// workspaces, and brings the engine's informers in line with them.
func (s *Syncer) reconcileEngine(ctx context.Context, e *engine, syncTargetLister workloadlisters.SyncTargetLister) error {
	// Never let an unreachable side block the loop; informers started below live on ctx.
	discoveryCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := syncTargetLister.Get(s.target.name)
	if err != nil {
		return fmt.Errorf("failed to get SyncTarget from cache: %w", err)
	}
	if st.UID != s.target.uid {
		return fmt.Errorf("SyncTarget %s was re-created (UID %s, expected %s); not syncing for it", st.Name, st.UID, s.target.uid)
	}
	if s.cfg.UpstreamMode == UpstreamModeAuto || s.cfg.UpstreamMode == "" {
		if mode := resolveUpstreamMode(s.cfg, s.target, st); mode != s.mode {
			return errUpstreamModeChanged
		}
	}
	requested := s.cfg.Resources
	if len(requested) == 0 {
		requested = st.Spec.Resources
	}
	if len(requested) == 0 {
		requested = workloadv1alpha1.DefaultResources()
	}
	accepted, states, err := discoverResources(discoveryCtx, s.downstreamKube.Discovery(), s.downstreamKube, requested)
	if err != nil {
		return err
	}
	workspaces := s.workspaces(st)
	configFor := directConfig(s.cfg.UpstreamConfig)
	if s.views != nil {
		if err := s.views.setURLs(ctx, viewURLs(st)); err != nil {
			return err
		}
		workspaces, _ = s.views.workspaces()
		configFor = s.views.config
	}
	served := servedUpstream(discoveryCtx, configFor, e.missingUpstream(workspaces, accepted))
	return e.reconcile(ctx, accepted, states, workspaces, served)
}

// workspaces returns the workload workspaces to sync from, sorted: the static list, the
// hub itself, or the SyncTarget's status.workspaces.
func (s *Syncer) workspaces(st *workloadv1alpha1.SyncTarget) []string {
	var workspaces []string
	switch {
	case len(s.cfg.Workspaces) > 0:
		for _, p := range s.cfg.Workspaces {
			workspaces = append(workspaces, p.String())
		}
	case s.target.workspace == hubWorkspace:
		workspaces = []string{hubWorkspace}
	default:
		for _, w := range st.Status.Workspaces {
			workspaces = append(workspaces, w.Path)
		}
	}
	sort.Strings(workspaces)
	return workspaces
}

// locationRecorder records Events on the SyncTarget, in the location workspace, until ctx
// ends.
func (s *Syncer) locationRecorder(ctx context.Context) record.EventRecorder {
	recorder, _ := tmc.NewEventRecorder(ctx, s.locationKube.CoreV1().Events(""), scheme.Scheme, corev1.EventSource{Component: "workload-syncer", Host: s.target.name})
	return recorder
}
