package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
)

const (
	locationWS    = "root:bench:locations"
	clusterName   = "bench"
	syncerUser    = "syncer-bench"
	workloadCount = 5
)

// workloadWS returns the path of workload workspace i (1-based).
func workloadWS(i int) string { return fmt.Sprintf("root:bench:ws-%d", i) }

// benchEnv is the environment every scenario runs in: a location workspace, five workload
// workspaces placed on one SyncTarget (status.workspaces set directly: no tmc-controller
// runs) and one kwok physical cluster, with the syncer's RBAC on every side.
type benchEnv struct {
	env     *localenv.Environment
	cluster *localenv.PhysicalCluster
	st      *workloadv1alpha1.SyncTarget
	stKey   string

	// upstream[i] and upstreamDyn[i] reach workload workspace i+1 through the front proxy,
	// as a user would; downstream* reach the physical cluster directly, as admin.
	upstream      []kubernetes.Interface
	upstreamDyn   []dynamic.Interface
	downstream    kubernetes.Interface
	downstreamDyn dynamic.Interface
}

// startEnv starts the servers and prepares the SyncTarget and RBAC.
func startEnv(ctx context.Context, dir string) (*benchEnv, error) {
	workspaces := []string{locationWS}
	for i := 1; i <= workloadCount; i++ {
		workspaces = append(workspaces, workloadWS(i))
	}
	env, err := localenv.Start(ctx, localenv.Options{
		Workspaces:       workspaces,
		PhysicalClusters: []localenv.PhysicalClusterOptions{{Name: clusterName, Nodes: 1}},
		Users:            []string{syncerUser},
		Dir:              dir,
		// kcp runs a namespace and a garbage-collector controller per workspace; nothing
		// measured here needs them, and on two cores six idle controller-managers are noise.
		NoWorkspaceControllers: true,
	})
	if err != nil {
		return nil, err
	}
	be := &benchEnv{env: env, cluster: env.Cluster(clusterName)}
	if err := be.prepare(ctx); err != nil {
		return be, err
	}
	return be, nil
}

func (be *benchEnv) prepare(ctx context.Context) error {
	loc := be.env.Workspace(locationWS).AdminConfig()
	if err := localenv.InstallCRDs(ctx, loc); err != nil {
		return err
	}
	tc, err := tmcclient.NewForConfig(loc)
	if err != nil {
		return fmt.Errorf("failed to create TMC client: %w", err)
	}
	st, err := tc.WorkloadV1alpha1().SyncTargets().Create(ctx, &workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{Name: clusterName}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("failed to create SyncTarget: %w", err)
	}
	for i := 1; i <= workloadCount; i++ {
		st.Status.Workspaces = append(st.Status.Workspaces, workloadv1alpha1.WorkspaceReference{Path: workloadWS(i)})
	}
	if be.st, err = tc.WorkloadV1alpha1().SyncTargets().UpdateStatus(ctx, st, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("failed to set SyncTarget workspaces: %w", err)
	}
	be.stKey = workloadv1alpha1.SyncTargetKeyOf(be.st, locationWS)

	for i := 1; i <= workloadCount; i++ {
		kube, dyn, err := clients(be.env.Workspace(workloadWS(i)).AdminConfig())
		if err != nil {
			return err
		}
		be.upstream = append(be.upstream, kube)
		be.upstreamDyn = append(be.upstreamDyn, dyn)
	}
	if be.downstream, be.downstreamDyn, err = clients(be.cluster.AdminConfig()); err != nil {
		return err
	}
	// Exactly the RBAC and admission policy `kubectl tmc workload sync` generates.
	workspaces := make([]string, 0, workloadCount)
	for i := 1; i <= workloadCount; i++ {
		workspaces = append(workspaces, workloadWS(i))
	}
	return be.env.GrantSyncer(ctx, localenv.SyncerGrant{
		User:               syncerUser,
		SyncTargetName:     clusterName,
		LocationWorkspace:  locationWS,
		WorkloadWorkspaces: workspaces,
		Cluster:            clusterName,
	})
}

// clients returns a typed and a dynamic client for cfg. The environment's configs already
// disable client-side rate limiting (QPS -1), like the syncer's --qps=-1.
func clients(cfg *rest.Config) (kubernetes.Interface, dynamic.Interface, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to create client for %s: %w", cfg.Host, err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to create dynamic client for %s: %w", cfg.Host, err)
	}
	return kube, dyn, nil
}

// syncLabels select an upstream object for the SyncTarget.
func (be *benchEnv) syncLabels() map[string]string {
	return map[string]string{workloadv1alpha1.ClusterResourceStateLabel(be.stKey): workloadv1alpha1.ResourceStateSync}
}

// downstreamNamespace returns the physical-cluster namespace of upstream namespace ns in
// workload workspace i (1-based).
func (be *benchEnv) downstreamNamespace(i int, ns string) (string, error) {
	return workloadv1alpha1.NewNamespaceLocator(be.env.Workspace(locationWS).Name, clusterName, be.st.UID, be.env.Workspace(workloadWS(i)).Name, ns).DownstreamNamespaceName()
}

// createUpstreamNamespace creates namespace ns in workload workspace i (1-based).
func (be *benchEnv) createUpstreamNamespace(ctx context.Context, i int, ns string) error {
	_, err := be.upstream[i-1].CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create namespace %s in %s: %w", ns, workloadWS(i), err)
	}
	return nil
}

// stop stops every server and the syncer.
func (be *benchEnv) stop() error {
	if be == nil || be.env == nil {
		return nil
	}
	return be.env.Stop()
}

// useBenchBinaryDir points the environment at hard links (copies where linking fails) of the
// shared test binaries, unless TMC_BIN_DIR is set. Other people's `make test-e2e` fails if a
// process started from the shared cache directory is still running when it ends
// (hack/check-no-leftover-processes.sh); the servers of a benchmark running at the same time
// must not count as their leftovers.
func useBenchBinaryDir() error {
	if os.Getenv("TMC_BIN_DIR") != "" {
		return nil
	}
	src, err := localenv.BinDir()
	if err != nil {
		return err
	}
	if _, err := localenv.FindBinaries(); err != nil {
		return err
	}
	dst := filepath.Join(filepath.Dir(filepath.Dir(src)), "bench-bin", filepath.Base(src))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("failed to create %s: %w", dst, err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("failed to read %s: %w", src, err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		from, to := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		fi, err := os.Stat(from)
		if err != nil {
			return err
		}
		if ti, err := os.Stat(to); err == nil && os.SameFile(fi, ti) {
			continue
		} else if err == nil && ti.Size() == fi.Size() && !ti.ModTime().Before(fi.ModTime()) {
			continue
		}
		_ = os.Remove(to)
		if err := os.Link(from, to); err != nil {
			if err := copyFile(from, to, fi.Mode()); err != nil {
				return err
			}
		}
	}
	return os.Setenv("TMC_BIN_DIR", dst)
}

func copyFile(from, to string, mode os.FileMode) (err error) {
	in, err := os.Open(from)
	if err != nil {
		return fmt.Errorf("failed to open %s: %w", from, err)
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(to+".tmp", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("failed to create %s: %w", to, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return fmt.Errorf("failed to copy %s: %w", from, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("failed to write %s: %w", to, err)
	}
	return errors.Join(os.Rename(to+".tmp", to))
}
