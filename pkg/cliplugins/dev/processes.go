package dev

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
)

// startSyncer runs the workload-syncer of cluster as its token user and waits until it is
// ready.
func (s *server) startSyncer(ctx context.Context, cluster string) error {
	user := syncerUser(cluster)
	dir := filepath.Join(s.opts.envDir(), "syncer-"+cluster)
	upstream, err := localenv.WriteKubeconfig(s.env.UpstreamConfig(user), "upstream", filepath.Join(dir, "upstream.kubeconfig"))
	if err != nil {
		return err
	}
	downstream, err := localenv.WriteKubeconfig(s.env.Cluster(cluster).Config(user), "downstream", filepath.Join(dir, "downstream.kubeconfig"))
	if err != nil {
		return err
	}
	return s.startProcess(ctx, "workload-syncer-"+cluster, []string{
		"--upstream-kubeconfig=" + upstream,
		"--downstream-kubeconfig=" + downstream,
		"--sync-target-workspace=" + locationWorkspace,
		"--sync-target-name=" + cluster,
		"--sync-target-uid=" + s.uids[cluster],
		"--heartbeat-interval=10s",
		"-v=2",
	})
}

// startController runs the tmc-controller and waits until it is ready.
func (s *server) startController(ctx context.Context) error {
	upstream, err := localenv.WriteKubeconfig(s.env.UpstreamConfig(controllerUser), "upstream", filepath.Join(s.opts.envDir(), "controller", "upstream.kubeconfig"))
	if err != nil {
		return err
	}
	return s.startProcess(ctx, "tmc-controller", []string{
		"--upstream-kubeconfig=" + upstream,
		"--location-workspaces=" + locationWorkspace,
		"--workspaces=" + workloadWorkspace,
		"-v=2",
	})
}

// startProcess starts one of the TMC binaries (named by the prefix of name) with free
// metrics and health ports, tracks it with the environment and waits for /readyz.
func (s *server) startProcess(ctx context.Context, name string, args []string) error {
	bin := "tmc-controller"
	if name != bin {
		bin = "workload-syncer"
	}
	metricsPort, err := localenv.FreePort()
	if err != nil {
		return err
	}
	healthPort, err := localenv.FreePort()
	if err != nil {
		return err
	}
	args = append(args,
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", healthPort))
	p := localenv.NewProcess(name, filepath.Join(s.opts.binDir, bin), args, s.env.LogDir)
	if err := p.Start(); err != nil {
		return err
	}
	s.env.Track(p)
	s.urls[name] = fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz", healthPort)
	client := &http.Client{Timeout: 2 * time.Second}
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if !p.Running() {
			return false, fmt.Errorf("%s exited (%w); see %s", name, p.ExitError(), p.LogPath)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, readyz, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("%s did not become ready (see %s): %w", name, p.LogPath, err)
	}
	return nil
}

// createDemo creates the Placement and the sample app, then waits until the namespace is
// placed and the Deployment reports every replica ready upstream.
func (s *server) createDemo(ctx context.Context, names []string) error {
	cfg := s.env.Workspace(workloadWorkspace).AdminConfig()
	tc, err := tmcclient.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("failed to create client: %w", err)
	}
	upstream, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("failed to create client: %w", err)
	}
	if _, err := tc.SchedulingV1alpha1().Placements().Create(ctx, demoPlacement(), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("failed to create Placement %s: %w", placementName, err)
	}
	if err := newSampleApp().create(ctx, upstream); err != nil {
		return err
	}
	s.st.Demo = &demoApp{Namespace: demoNamespace, Deployment: demoDeployment}

	s.step("Waiting for Placement %q to place namespace %s", placementName, demoNamespace)
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		ns, err := upstream.CoreV1().Namespaces().Get(ctx, demoNamespace, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, n := range names {
			if ns.Labels[workloadv1alpha1.ClusterResourceStateLabel(workloadv1alpha1.ToSyncTargetKey(locationWorkspace, n))] == workloadv1alpha1.ResourceStateSync {
				s.st.Demo.SyncTarget = n
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("namespace %s was not placed on a SyncTarget (see the tmc-controller log): %w", demoNamespace, err)
	}
	locator := workloadv1alpha1.NewNamespaceLocator(locationWorkspace, s.st.Demo.SyncTarget, types.UID(s.uids[s.st.Demo.SyncTarget]), workloadWorkspace, demoNamespace)
	if s.st.Demo.DownstreamNamespace, err = locator.DownstreamNamespaceName(); err != nil {
		return err
	}

	s.step("Waiting for Deployment %s/%s to report %d ready replicas upstream (placed on %s)", demoNamespace, demoDeployment, demoReplicas, s.st.Demo.SyncTarget)
	last := int32(-1)
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		d, err := upstream.AppsV1().Deployments(demoNamespace).Get(ctx, demoDeployment, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		if d.Status.ReadyReplicas != last {
			last = d.Status.ReadyReplicas
			s.step("Deployment %s/%s: %d/%d ready upstream (placed on %s)", demoNamespace, demoDeployment, last, demoReplicas, s.st.Demo.SyncTarget)
		}
		return d.Status.ReadyReplicas == demoReplicas, nil
	})
	if err != nil {
		return fmt.Errorf("the Deployment %s/%s did not become ready upstream (see the workload-syncer-%s log): %w", demoNamespace, demoDeployment, s.st.Demo.SyncTarget, err)
	}
	return nil
}
