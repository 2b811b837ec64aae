package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
)

// B8 runs two SyncTargets on one physical cluster, one per way of reaching the workload
// workspaces; every workload object is labelled for both, so each syncer has the same work.
const (
	b8DirectTarget = "bench-direct"
	b8ViewTarget   = "bench-vw"
	b8DirectUser   = "syncer-bench-direct"
	b8ViewUser     = "syncer-bench-vw"
	// b8Namespace is the placed namespace of every workload workspace.
	b8Namespace = "b8"
)

// b8APIServerArgs make a workspace apiserver small enough for a hundred on one machine
// (measured in docs/benchmarks.md, B8): no priority and fairness (its controllers and
// flow-schema objects), no watch cache (a cacher per resource, each with its own etcd
// watch and buffers, whether or not anybody watches). Watches are then served straight
// from etcd, so apiserver_registered_watchers (a watch-cache metric) is absent and the
// syncer's watches are counted with apiserver_longrunning_requests. Every API group stays
// on: the apiserver's own admission informers need most of them to become ready.
var b8APIServerArgs = []string{
	"--enable-priority-and-fairness=false",
	"--watch-cache=false",
}

// b8APIServerEnv makes each workspace apiserver collect its Go heap at 25 % growth instead
// of 100 %, with a soft limit well above its live heap at rest. Measured (docs/benchmarks.md,
// B8): by default one idles at about 300 MiB RSS (about 90 MiB of it the binary's text,
// shared by all); GOMEMLIMIT=100MiB brings it to 200 MiB but holds the heap at the limit, so
// the garbage collector runs without pause and 16 idle apiservers saturate two cores.
var b8APIServerEnv = []string{"GOGC=25", "GOMEMLIMIT=200MiB"}

// b8MemoryReserve is the memory left to everything else (the syncers, the physical
// cluster, other people's builds): no batch of workspaces starts unless the machine has
// this much available beyond the batch's expected size.
const (
	// b8BatchBudget is the longest a batch of workspaces may take before no more start.
	b8BatchBudget         = 2 * time.Minute
	b8MemoryReserve       = 3 << 30
	b8WorkspaceAPIServerB = 200 << 20
)

// b8Target is one SyncTarget of B8 and what its syncer needs.
type b8Target struct {
	mode string // "direct" or "virtual-workspace"
	name string
	user string
	st   *workloadv1alpha1.SyncTarget
	key  string
	// downConfigMaps is the harness's watch on the downstream ConfigMaps it owns.
	downConfigMaps *tracker
}

// b8Env is B8's environment: a location workspace, W workload workspaces with one placed
// namespace each, the kwok physical cluster, and (for the second phase) the virtual-workspace
// server.
type b8Env struct {
	env     *localenv.Environment
	cluster *localenv.PhysicalCluster
	w       int
	// upstreamDyn[i] reaches workload workspace i+1 through the front proxy, as admin.
	upstreamDyn   []dynamic.Interface
	downstream    kubernetes.Interface
	downstreamDyn dynamic.Interface
	direct, view  *b8Target
	vw            *localenv.VirtualWorkspaces
	// startup is how long the W workspaces took to start, batch by batch.
	startup []time.Duration
	// stoppedBy says why fewer workspaces than asked for were started, or is empty.
	stoppedBy string
}

// startB8Env starts the servers: the location workspace and the physical cluster at once,
// then the W workload workspaces in batches of batch (started all at once on two cores,
// a hundred apiservers would not become ready within their start-up timeout).
func startB8Env(ctx context.Context, dir string, w, batch int, log progress) (*b8Env, error) {
	env, err := localenv.Start(ctx, localenv.Options{
		Workspaces:             []string{locationWS},
		PhysicalClusters:       []localenv.PhysicalClusterOptions{{Name: clusterName, Nodes: 1}},
		Users:                  []string{b8DirectUser, b8ViewUser},
		Dir:                    dir,
		NoWorkspaceControllers: true,
		WorkspaceAPIServerArgs: b8APIServerArgs,
		WorkspaceAPIServerEnv:  b8APIServerEnv,
	})
	if err != nil {
		return &b8Env{env: env}, err
	}
	e := &b8Env{env: env, cluster: env.Cluster(clusterName)}
	for from := 1; from <= w; from += batch {
		began := time.Now()
		to := min(from+batch-1, w)
		if need := int64(b8MemoryReserve + (to-from+1)*b8WorkspaceAPIServerB); memAvailableBytes() < need {
			e.stoppedBy = fmt.Sprintf("stopped at %d of %d workspaces: %s, batch %d–%d needs %s with the reserve",
				e.w, w, memAvailable(), from, to, mib(need))
			log.logf("B8: %s", e.stoppedBy)
			break
		}
		if err := e.addWorkspaces(ctx, from, to); err != nil {
			if ctx.Err() != nil || e.w == 0 {
				return e, err
			}
			// The machine is full: run with the workspaces that are up (the batch's
			// others idle unused).
			e.stoppedBy = fmt.Sprintf("stopped at %d of %d workspaces: batch %d–%d did not start (%v)", e.w, w, from, to, err)
			log.logf("B8: %s", e.stoppedBy)
			break
		}
		e.w = to
		took := time.Since(began)
		e.startup = append(e.startup, took)
		log.logf("B8: workspaces %d–%d of %d up in %s (%s)", from, to, w, took.Round(time.Millisecond), memAvailable())
		if took > b8BatchBudget && to < w {
			e.stoppedBy = fmt.Sprintf("stopped at %d of %d workspaces: batch %d–%d took %s (> %s): the machine is saturated", e.w, w, from, to, took.Round(time.Second), b8BatchBudget)
			log.logf("B8: %s", e.stoppedBy)
			break
		}
	}
	return e, nil
}

// addWorkspaces starts workload workspaces from..to (1-based) in parallel.
func (e *b8Env) addWorkspaces(ctx context.Context, from, to int) error {
	var wg sync.WaitGroup
	errs := make([]error, to-from+1)
	for i := from; i <= to; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i-from] = e.env.AddWorkspace(ctx, workloadWS(i))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// prepare creates the SyncTargets, grants both syncers (the direct one in every workload
// workspace, the other in the location workspace only, as `kubectl tmc workload sync`
// does with and without --direct-workspace-access), and the clients.
func (e *b8Env) prepare(ctx context.Context) error {
	loc := e.env.Workspace(locationWS)
	if err := localenv.InstallCRDs(ctx, loc.AdminConfig()); err != nil {
		return err
	}
	tc, err := tmcclient.NewForConfig(loc.AdminConfig())
	if err != nil {
		return fmt.Errorf("failed to create TMC client: %w", err)
	}
	workspaces := make([]string, 0, e.w)
	for i := 1; i <= e.w; i++ {
		workspaces = append(workspaces, workloadWS(i))
		_, dyn, err := clients(e.env.Workspace(workloadWS(i)).AdminConfig())
		if err != nil {
			return err
		}
		e.upstreamDyn = append(e.upstreamDyn, dyn)
	}
	if e.downstream, e.downstreamDyn, err = clients(e.cluster.AdminConfig()); err != nil {
		return err
	}
	e.direct = &b8Target{mode: "direct", name: b8DirectTarget, user: b8DirectUser}
	e.view = &b8Target{mode: "virtual-workspace", name: b8ViewTarget, user: b8ViewUser}
	for _, t := range []*b8Target{e.direct, e.view} {
		st, err := tc.WorkloadV1alpha1().SyncTargets().Create(ctx, &workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{Name: t.name}}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("failed to create SyncTarget %s: %w", t.name, err)
		}
		t.st, t.key = st, workloadv1alpha1.SyncTargetKeyOf(st, locationWS)
	}
	// No tmc-controller runs: the direct target's workspaces are set as the controller
	// would; the view target's syncer finds its workspaces through the view (placed
	// namespaces), whose URL is set when the server starts (startView).
	for _, ws := range workspaces {
		e.direct.st.Status.Workspaces = append(e.direct.st.Status.Workspaces, workloadv1alpha1.WorkspaceReference{Path: ws})
	}
	if e.direct.st, err = tc.WorkloadV1alpha1().SyncTargets().UpdateStatus(ctx, e.direct.st, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("failed to set the workspaces of %s: %w", b8DirectTarget, err)
	}
	if err := e.env.GrantSyncer(ctx, localenv.SyncerGrant{User: b8DirectUser, SyncTargetName: b8DirectTarget,
		LocationWorkspace: locationWS, WorkloadWorkspaces: workspaces, Cluster: clusterName}); err != nil {
		return err
	}
	return e.env.GrantSyncer(ctx, localenv.SyncerGrant{User: b8ViewUser, SyncTargetName: b8ViewTarget, LocationWorkspace: locationWS, Cluster: clusterName})
}

// startView starts the virtual-workspace server and publishes the view target's syncer view
// in its status, as the tmc-controller's --virtual-workspace-url does.
func (e *b8Env) startView(ctx context.Context, binary string) error {
	vw, err := e.env.StartVirtualWorkspaces(ctx, localenv.VirtualWorkspacesOptions{Binary: binary, Name: "tmc-virtual-workspaces"})
	if err != nil {
		return err
	}
	e.vw = vw
	tc, err := tmcclient.NewForConfig(e.env.Workspace(locationWS).AdminConfig())
	if err != nil {
		return fmt.Errorf("failed to create TMC client: %w", err)
	}
	st, err := tc.WorkloadV1alpha1().SyncTargets().Get(ctx, b8ViewTarget, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("failed to get SyncTarget %s: %w", b8ViewTarget, err)
	}
	url := workloadv1alpha1.SyncerVirtualWorkspaceURL(vw.URL, e.env.Workspace(locationWS).Name, st.Name, st.UID)
	st.Status.VirtualWorkspaces = []workloadv1alpha1.VirtualWorkspace{{SyncerURL: url}}
	if e.view.st, err = tc.WorkloadV1alpha1().SyncTargets().UpdateStatus(ctx, st, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("failed to set the syncer view of %s: %w", b8ViewTarget, err)
	}
	return nil
}

// labelsFor selects an upstream object for the given targets.
func labelsFor(targets ...*b8Target) map[string]string {
	out := map[string]string{}
	for _, t := range targets {
		out[workloadv1alpha1.ClusterResourceStateLabel(t.key)] = workloadv1alpha1.ResourceStateSync
	}
	return out
}

// populate creates, in every workload workspace, the placed namespace and perWorkspace
// ConfigMaps, all labelled for both targets.
func (e *b8Env) populate(ctx context.Context, perWorkspace int) error {
	labels := labelsFor(e.direct, e.view)
	err := runPool(ctx, syncerWorkers, e.w, func(ctx context.Context, i int) error {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: b8Namespace, Labels: labels}}
		kube, err := kubernetes.NewForConfig(e.env.Workspace(workloadWS(i + 1)).AdminConfig())
		if err != nil {
			return fmt.Errorf("failed to create client: %w", err)
		}
		if _, err := kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("failed to create namespace %s in %s: %w", b8Namespace, workloadWS(i+1), err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return runPool(ctx, syncerWorkers, e.w*perWorkspace, func(ctx context.Context, i int) error {
		ws, name := i/perWorkspace, b8Name("cm", i%perWorkspace)
		client := e.upstreamDyn[ws].Resource(configMapsGVR).Namespace(b8Namespace)
		return create(ctx, client, configMap(name, labels, nil, map[string]string{"key": name}))
	})
}

// createNamespace creates namespace ns with client, unless it exists.
func createNamespace(ctx context.Context, client kubernetes.Interface, ns string) error {
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create namespace %s: %w", ns, err)
	}
	return nil
}

func b8Name(prefix string, i int) string { return fmt.Sprintf("b8-%s-%05d", prefix, i) }

// downstreamNamespace is the downstream namespace of workload workspace i (1-based) for t.
func (e *b8Env) downstreamNamespace(t *b8Target, i int) (string, error) {
	return workloadv1alpha1.NewNamespaceLocator(e.env.Workspace(locationWS).Name, t.name, t.st.UID,
		e.env.Workspace(workloadWS(i)).Name, b8Namespace).DownstreamNamespaceName()
}

// workspaceFootprint is the RSS of the W workload apiservers and of etcd.
func (e *b8Env) workspaceFootprint() string {
	var rss []int64
	var total int64
	for i := 1; i <= e.w; i++ {
		ps := readProc(e.env.Workspace(workloadWS(i)).APIServer.Process.Pid())
		rss = append(rss, ps.rss)
		total += ps.rss
	}
	sort.Slice(rss, func(a, b int) bool { return rss[a] < rss[b] })
	etcd := readProc(e.env.Etcd.Process.Pid())
	return fmt.Sprintf("%s total, per apiserver median %s, max %s; etcd %s; machine %s",
		mib(total), mib(rss[len(rss)/2]), mib(rss[len(rss)-1]), mib(etcd.rss), memAvailable())
}

// startupSummary prints the batch start-up times.
func (e *b8Env) startupSummary(batch int) string {
	var total time.Duration
	var parts []string
	for _, d := range e.startup {
		total += d
		parts = append(parts, d.Round(100*time.Millisecond).String())
	}
	return fmt.Sprintf("%s in batches of %d (%s)", total.Round(100*time.Millisecond), batch, strings.Join(parts, ", "))
}

func (e *b8Env) stop() error {
	if e == nil || e.env == nil {
		return nil
	}
	return e.env.Stop()
}
