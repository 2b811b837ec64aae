package syncer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/cliutil"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
	tmcinformers "github.com/tmc-dev/tmc/sdk/client/informers/externalversions"
	workloadlisters "github.com/tmc-dev/tmc/sdk/client/listers/workload/v1alpha1"
)

// Syncer is one workload-syncer: it serves one SyncTarget.
type Syncer struct {
	cfg   *Config
	chain *transform.Chain

	locationWorkspace string
	stKey             string
	stUID             types.UID

	locationClient    tmcclient.Interface
	locationDynamic   dynamic.Interface
	syncTargetLister  workloadlisters.SyncTargetLister
	downstreamDynamic dynamic.Interface
	downstreamKube    kubernetes.Interface

	engine      *engine
	controllers *controllers
	namespaces  *namespaceManager
	reporter    *statusReporter
	metrics     *syncerMetrics
	health      *tmc.ComponentHealthManager
	recovery    *tmc.RecoveryManager
	errors      *errorLog
	isStarted   atomic.Bool
	reconcileCh chan struct{}
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
	s := &Syncer{cfg: cfg, chain: transform.DefaultChain(), errors: newErrorLog(), reconcileCh: make(chan struct{}, 1)}
	for _, o := range opts {
		o(s)
	}
	s.locationWorkspace = cfg.SyncTargetWorkspace.String()
	locationConfig := rest.CopyConfig(cfg.UpstreamConfig)
	if cfg.SyncTargetWorkspace.Empty() {
		s.locationWorkspace = hubWorkspace
	} else {
		u, err := logicalcluster.WorkspaceURL(locationConfig.Host, cfg.SyncTargetWorkspace)
		if err != nil {
			return nil, err
		}
		locationConfig.Host = u
	}
	s.stKey = workloadv1alpha1.ToSyncTargetKey(s.locationWorkspace, cfg.SyncTargetName)
	var err error
	if s.locationClient, err = tmcclient.NewForConfig(locationConfig); err != nil {
		return nil, fmt.Errorf("failed to create location workspace client: %w", err)
	}
	if s.locationDynamic, err = dynamic.NewForConfig(locationConfig); err != nil {
		return nil, fmt.Errorf("failed to create location workspace client: %w", err)
	}
	if s.downstreamDynamic, err = dynamic.NewForConfig(cfg.DownstreamConfig); err != nil {
		return nil, fmt.Errorf("failed to create downstream client: %w", err)
	}
	if s.downstreamKube, err = kubernetes.NewForConfig(cfg.DownstreamConfig); err != nil {
		return nil, fmt.Errorf("failed to create downstream client: %w", err)
	}
	s.metrics = newSyncerMetrics(cfg.SyncTargetName)
	s.recovery = tmc.NewRecoveryManager(tmc.RecoveryOptions{Component: "syncer", Registerer: s.metrics.tmc.Registerer()})
	if err := s.registerHealthChecks(); err != nil {
		return nil, err
	}
	s.engine = newEngine(s)
	s.controllers = newControllers(s)
	s.namespaces = newNamespaceManager(s)
	s.reporter = newStatusReporter(s)
	return s, nil
}

// SyncTargetKey returns the key of the served SyncTarget.
func (s *Syncer) SyncTargetKey() string { return s.stKey }

// MetricsHandler serves the syncer's Prometheus metrics.
func (s *Syncer) MetricsHandler() http.Handler { return s.metrics.tmc.Handler() }

// HealthHandler serves /healthz, /livez and /readyz.
func (s *Syncer) HealthHandler() http.Handler { return s.health.Handler() }

func (s *Syncer) started() bool { return s.isStarted.Load() }

// locator returns the namespace locator of upstream namespace ns in workspace ws.
func (s *Syncer) locator(ws, ns string) workloadv1alpha1.NamespaceLocator {
	return workloadv1alpha1.NewNamespaceLocator(s.locationWorkspace, s.cfg.SyncTargetName, s.stUID, ws, ns)
}

// Run runs the syncer until ctx ends. Metrics and health are served at once; the
// controllers start once the SyncTarget is found (and this replica leads, with leader
// election).
func (s *Syncer) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithValues("syncTarget", s.cfg.SyncTargetName, "syncTargetWorkspace", s.locationWorkspace, "syncTargetKey", s.stKey)
	ctx = klog.NewContext(ctx, logger)
	logger.Info("Starting workload-syncer")

	servers, err := s.serve(ctx)
	if err != nil {
		return err
	}
	defer servers.Shutdown()

	if err := s.waitForSyncTarget(ctx); err != nil {
		return err
	}
	if s.cfg.LeaderElection == nil {
		return s.runControllers(ctx)
	}
	return s.runWithLeaderElection(ctx)
}

func (s *Syncer) serve(ctx context.Context) (cliutil.Servers, error) {
	var servers cliutil.Servers
	mux := http.NewServeMux()
	mux.Handle("/metrics", s.MetricsHandler())
	if err := servers.Serve(ctx, s.cfg.MetricsBindAddress, mux, "metrics"); err != nil {
		return nil, err
	}
	if err := servers.Serve(ctx, s.cfg.HealthProbeBindAddress, s.HealthHandler(), "health probes"); err != nil {
		servers.Shutdown()
		return nil, err
	}
	return servers, nil
}

// waitForSyncTarget waits until the SyncTarget exists, checks the UID guard, and records
// its UID (part of every namespace locator).
func (s *Syncer) waitForSyncTarget(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	var st *workloadv1alpha1.SyncTarget
	err := wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := s.locationClient.WorkloadV1alpha1().SyncTargets().Get(ctx, s.cfg.SyncTargetName, metav1.GetOptions{})
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
		return fmt.Errorf("SyncTarget %s not available: %w", s.cfg.SyncTargetName, err)
	}
	if s.cfg.SyncTargetUID != "" && string(st.UID) != s.cfg.SyncTargetUID {
		return fmt.Errorf("SyncTarget %s has UID %s, but --sync-target-uid is %s: it was deleted and re-created; re-register the cluster", s.cfg.SyncTargetName, st.UID, s.cfg.SyncTargetUID)
	}
	s.stUID = st.UID
	return nil
}

func (s *Syncer) runWithLeaderElection(ctx context.Context) error {
	le := s.cfg.LeaderElection
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, le.Namespace, le.Name,
		s.downstreamKube.CoreV1(), s.downstreamKube.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: le.Identity})
	if err != nil {
		return fmt.Errorf("failed to create the leader-election lock: %w", err)
	}
	errCh := make(chan error, 1)
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   le.LeaseDuration,
		RenewDeadline:   le.RenewDeadline,
		RetryPeriod:     le.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            le.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) { errCh <- s.runControllers(ctx) },
			OnStoppedLeading: func() { klog.FromContext(ctx).Info("Lost leadership") },
		},
	})
	select {
	case err := <-errCh:
		return err
	default:
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("lost leadership")
	}
}

// runControllers starts informers, controllers and the status reporter.
func (s *Syncer) runControllers(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	factory := tmcinformers.NewSharedInformerFactoryWithOptions(s.locationClient, 0,
		tmcinformers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", s.cfg.SyncTargetName).String()
		}))
	stInformer := factory.Workload().V1alpha1().SyncTargets()
	s.syncTargetLister = stInformer.Lister()
	_, _ = stInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(interface{}) { s.triggerReconcile() },
		UpdateFunc: func(interface{}, interface{}) { s.triggerReconcile() },
	})
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), stInformer.Informer().HasSynced) {
		return ctx.Err()
	}
	s.engine.startNamespaceInformer(ctx)

	if err := s.reconcileEngine(ctx); err != nil {
		logger.Error(err, "Initial discovery failed; retrying")
	}
	go s.engineLoop(ctx)
	go s.namespaces.run(ctx)
	go s.reporter.run(ctx)
	s.isStarted.Store(true)
	logger.Info("Syncer started")
	s.controllers.run(ctx, s.cfg.Workers)
	s.engine.stopAll()
	factory.Shutdown()
	return nil
}

func (s *Syncer) triggerReconcile() {
	select {
	case s.reconcileCh <- struct{}{}:
	default:
	}
}

// engineLoop re-runs discovery and informer reconciliation when the SyncTarget changes and
// every discovery interval (to notice new downstream CRDs and RBAC changes).
func (s *Syncer) engineLoop(ctx context.Context) {
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
		case <-s.reconcileCh:
		}
		if err := s.reconcileEngine(ctx); err != nil {
			klog.FromContext(ctx).Error(err, "Failed to reconcile resources and workspaces")
		}
	}
}

func (s *Syncer) reconcileEngine(ctx context.Context) error {
	// Never let an unreachable side block the loop; informers started below live on ctx.
	discoveryCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := s.syncTargetLister.Get(s.cfg.SyncTargetName)
	if err != nil {
		return fmt.Errorf("failed to get SyncTarget from cache: %w", err)
	}
	if st.UID != s.stUID {
		return fmt.Errorf("SyncTarget %s was re-created (UID %s, expected %s); not syncing for it", st.Name, st.UID, s.stUID)
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
	var workspaces []string
	switch {
	case len(s.cfg.Workspaces) > 0:
		for _, p := range s.cfg.Workspaces {
			workspaces = append(workspaces, p.String())
		}
	case s.locationWorkspace == hubWorkspace:
		workspaces = []string{hubWorkspace}
	default:
		for _, w := range st.Status.Workspaces {
			workspaces = append(workspaces, w.Path)
		}
	}
	sort.Strings(workspaces)
	served := s.servedUpstream(discoveryCtx, s.engine.missingUpstream(workspaces, accepted))
	return s.engine.reconcile(ctx, accepted, states, workspaces, served)
}

// newEventRecorder records Events into an upstream workspace.
func newEventRecorder(ctx context.Context, kube kubernetes.Interface, syncTargetName string) (record.EventRecorder, func()) {
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "workload-syncer", Host: syncTargetName})
	return recorder, broadcaster.Shutdown
}
