package e2e

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
)

const (
	locationWS  = "root:org:locations"
	wsA         = "root:org:team-a"
	wsB         = "root:org:team-b"
	clusterName = "east"
	syncerUser  = "syncer-east"
)

// syncerEnv is a real environment (a location workspace, two workload workspaces and one
// kwok physical cluster) with a SyncTarget placed on both workload workspaces and RBAC for
// the syncer's user on every side.
type syncerEnv struct {
	env     *localenv.Environment
	cluster *localenv.PhysicalCluster
	st      *workloadv1alpha1.SyncTarget
	stKey   string
}

// setupSyncerEnv starts a syncerEnv; tweaks adjust the environment's options before it starts.
func setupSyncerEnv(t *testing.T, tweaks ...func(*localenv.Options)) *syncerEnv {
	t.Helper()
	return setupSyncerEnvFor(t, nil, tweaks...)
}

// setupSyncerEnvFor is setupSyncerEnv for a syncer registered for resources (nil: the
// default set): its RBAC on both sides covers them, as `workload sync --resources` grants.
func setupSyncerEnvFor(t *testing.T, resources []workloadv1alpha1.ResourceToSync, tweaks ...func(*localenv.Options)) *syncerEnv {
	t.Helper()
	ctx := t.Context()
	opts := localenv.Options{
		Workspaces:       []string{locationWS, wsA, wsB},
		PhysicalClusters: []localenv.PhysicalClusterOptions{{Name: clusterName, Nodes: 2}},
		Users:            []string{syncerUser},
	}
	for _, tweak := range tweaks {
		tweak(&opts)
	}
	env := localenv.StartForTest(t, opts)
	se := &syncerEnv{env: env, cluster: env.Cluster(clusterName)}
	loc := env.Workspace(locationWS).AdminConfig()
	if err := localenv.InstallCRDs(ctx, loc); err != nil {
		t.Fatal(err)
	}
	tc := tmcClient(t, loc)
	st, err := tc.WorkloadV1alpha1().SyncTargets().Create(ctx, &workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{Name: clusterName}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st.Status.Workspaces = []workloadv1alpha1.WorkspaceReference{{Path: wsA}, {Path: wsB}}
	if st, err = tc.WorkloadV1alpha1().SyncTargets().UpdateStatus(ctx, st, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	se.st = st
	se.stKey = workloadv1alpha1.ToSyncTargetKey(env.Workspace(locationWS).Name, clusterName)

	// Exactly the RBAC and admission policy `kubectl tmc workload sync` generates, on both
	// sides, for the syncer's user.
	if err := env.GrantSyncer(ctx, localenv.SyncerGrant{
		User:               syncerUser,
		SyncTargetName:     clusterName,
		LocationWorkspace:  locationWS,
		WorkloadWorkspaces: []string{wsA, wsB},
		Cluster:            clusterName,
		Resources:          resources,
	}); err != nil {
		t.Fatal(err)
	}
	return se
}

// syncerProcess is a running workload-syncer binary.
type syncerProcess struct {
	*localenv.Component
}

// syncerOptions tunes how the syncer is started.
type syncerOptions struct {
	// upstream and downstream override the configs the syncer is given (e.g. through a
	// fault proxy).
	upstream, downstream *rest.Config
	args                 []string
}

// startSyncer runs the workload-syncer binary as the syncer user and waits until it is
// ready.
func (se *syncerEnv) startSyncer(t *testing.T, opts syncerOptions) *syncerProcess {
	t.Helper()
	c, err := se.env.StartSyncer(t.Context(), localenv.SyncerOptions{
		Binary:                        filepath.Join(binDir, "workload-syncer"),
		User:                          syncerUser,
		Cluster:                       clusterName,
		Upstream:                      opts.upstream,
		Downstream:                    opts.downstream,
		SyncTargetWorkspace:           locationWS,
		SyncTargetName:                clusterName,
		SyncTargetUID:                 string(se.st.UID),
		HeartbeatInterval:             2 * time.Second,
		DownstreamNamespaceCleanDelay: 3 * time.Second,
		QPS:                           -1,
		Verbosity:                     2,
		ExtraArgs:                     opts.args,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &syncerProcess{Component: c}
}

// restart stops the syncer (SIGTERM) and starts it again with the same arguments.
func (sp *syncerProcess) restart(t *testing.T) {
	t.Helper()
	if err := sp.RestartAndWait(t.Context(), 10*time.Second, 0); err != nil {
		t.Fatal(err)
	}
}

// httpGet returns the status code and body of url; on error the code is 0 and the body
// the error.
func httpGet(ctx context.Context, url string) (int, string) {
	code, body, err := localenv.HTTPGet(ctx, url)
	if err != nil {
		return 0, err.Error()
	}
	return code, body
}

// scrape parses the metrics at url.
func scrape(t *testing.T, ctx context.Context, url string) localenv.Metrics {
	t.Helper()
	m, err := localenv.ScrapeMetrics(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// metricValue sums the samples of metric whose labels contain every given pair.
func metricValue(t *testing.T, url, metric string, labels map[string]string) float64 {
	t.Helper()
	return scrape(t, t.Context(), url).Sum(metric, labels)
}

func (se *syncerEnv) downstreamNamespace(t *testing.T, ws, ns string) string {
	t.Helper()
	name, err := workloadv1alpha1.NewNamespaceLocator(se.env.Workspace(locationWS).Name, clusterName, se.st.UID, se.env.Workspace(ws).Name, ns).DownstreamNamespaceName()
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// syncLabels returns the labels that select an object for this SyncTarget.
func (se *syncerEnv) syncLabels() map[string]string {
	return map[string]string{workloadv1alpha1.ClusterResourceStateLabel(se.stKey): workloadv1alpha1.ResourceStateSync}
}

func (se *syncerEnv) upstreamKube(t *testing.T, ws string) kubernetes.Interface {
	return kubeClient(t, se.env.Workspace(ws).AdminConfig())
}

func (se *syncerEnv) downstreamKube(t *testing.T) kubernetes.Interface {
	return kubeClient(t, se.cluster.AdminConfig())
}

func (se *syncerEnv) createUpstreamNamespace(t *testing.T, ws, ns string) {
	t.Helper()
	if _, err := se.upstreamKube(t, ws).CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func kubeClient(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tmcClient(t *testing.T, cfg *rest.Config) tmcclient.Interface {
	t.Helper()
	c, err := tmcclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// eventually polls cond every 200ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	localenv.Eventually(t, 200*time.Millisecond, timeout, what, func(ctx context.Context) (bool, string, error) {
		ok, err := cond(ctx)
		return ok, "", err
	})
}
