package dev

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
)

// componentReadyTimeout bounds the wait for a syncer's or the controller's /readyz.
const componentReadyTimeout = 2 * time.Minute

// startSyncer runs the workload-syncer of cluster as its token user and waits until it is
// ready.
func (s *server) startSyncer(ctx context.Context, cluster string) error {
	return s.record(s.env.StartSyncer(ctx, localenv.SyncerOptions{
		Binary:              filepath.Join(s.opts.binDir, "workload-syncer"),
		User:                syncerUser(cluster),
		Cluster:             cluster,
		SyncTargetWorkspace: locationWorkspace,
		SyncTargetName:      cluster,
		SyncTargetUID:       s.uids[cluster],
		HeartbeatInterval:   10 * time.Second,
		Verbosity:           2,
		ReadyTimeout:        componentReadyTimeout,
	}))
}

// startVirtualWorkspaces runs the virtual-workspace server and waits until it is ready.
func (s *server) startVirtualWorkspaces(ctx context.Context) (string, error) {
	vw, err := s.env.StartVirtualWorkspaces(ctx, localenv.VirtualWorkspacesOptions{
		Binary:       filepath.Join(s.opts.binDir, "tmc-virtual-workspaces"),
		Verbosity:    2,
		ReadyTimeout: componentReadyTimeout,
	})
	if err != nil {
		return "", err
	}
	return vw.URL, s.record(vw.Component, nil)
}

// startController runs the tmc-controller as the shard admin, finding the workload
// workspaces itself and publishing the syncer views of the server at virtualWorkspaceURL,
// and waits until it is ready.
func (s *server) startController(ctx context.Context, virtualWorkspaceURL string) error {
	return s.record(s.env.StartController(ctx, localenv.ControllerOptions{
		Binary:             filepath.Join(s.opts.binDir, "tmc-controller"),
		LocationWorkspaces: []string{locationWorkspace},
		Verbosity:          2,
		ExtraArgs:          []string{"--virtual-workspace-url=" + virtualWorkspaceURL},
		ReadyTimeout:       componentReadyTimeout,
	}))
}

// waitForSyncerViews waits until every SyncTarget lists its syncer view, so that the
// syncers start through it.
func (s *server) waitForSyncerViews(ctx context.Context, names []string) error {
	tc, err := tmcclient.NewForConfig(s.env.Workspace(locationWorkspace).AdminConfig())
	if err != nil {
		return fmt.Errorf("failed to create client: %w", err)
	}
	return localenv.Poll(ctx, 200*time.Millisecond, time.Minute, func(ctx context.Context) (bool, string, error) {
		for _, n := range names {
			st, err := tc.WorkloadV1alpha1().SyncTargets().Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			if len(st.Status.VirtualWorkspaces) == 0 {
				return false, "SyncTarget " + n + " lists no syncer view yet", nil
			}
		}
		return true, "", nil
	})
}

// record keeps the /metrics URL of a started component for state.json.
func (s *server) record(c *localenv.Component, err error) error {
	if err != nil {
		return err
	}
	s.urls[c.Name] = c.MetricsURL
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
	err = localenv.Poll(ctx, 500*time.Millisecond, 5*time.Minute, func(ctx context.Context) (bool, string, error) {
		ns, err := upstream.CoreV1().Namespaces().Get(ctx, demoNamespace, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		for _, n := range names {
			if ns.Labels[workloadv1alpha1.ClusterResourceStateLabel(workloadv1alpha1.ToSyncTargetKey(s.env.Workspace(locationWorkspace).Name, n))] == workloadv1alpha1.ResourceStateSync {
				s.st.Demo.SyncTarget = n
				return true, "", nil
			}
		}
		return false, "not placed yet", nil
	})
	if err != nil {
		return fmt.Errorf("namespace %s was not placed on a SyncTarget (see the tmc-controller log): %w", demoNamespace, err)
	}
	locator := workloadv1alpha1.NewNamespaceLocator(s.env.Workspace(locationWorkspace).Name, s.st.Demo.SyncTarget, types.UID(s.uids[s.st.Demo.SyncTarget]),
		s.env.Workspace(workloadWorkspace).Name, demoNamespace)
	if s.st.Demo.DownstreamNamespace, err = locator.DownstreamNamespaceName(); err != nil {
		return err
	}

	s.step("Waiting for Deployment %s/%s to report %d ready replicas upstream (placed on %s)", demoNamespace, demoDeployment, demoReplicas, s.st.Demo.SyncTarget)
	last := int32(-1)
	err = localenv.Poll(ctx, 500*time.Millisecond, 5*time.Minute, func(ctx context.Context) (bool, string, error) {
		d, err := upstream.AppsV1().Deployments(demoNamespace).Get(ctx, demoDeployment, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		if d.Status.ReadyReplicas != last {
			last = d.Status.ReadyReplicas
			s.step("Deployment %s/%s: %d/%d ready upstream (placed on %s)", demoNamespace, demoDeployment, last, demoReplicas, s.st.Demo.SyncTarget)
		}
		return d.Status.ReadyReplicas == demoReplicas, fmt.Sprintf("%d/%d ready", d.Status.ReadyReplicas, demoReplicas), nil
	})
	if err != nil {
		return fmt.Errorf("the Deployment %s/%s did not become ready upstream (see the workload-syncer-%s log): %w", demoNamespace, demoDeployment, s.st.Demo.SyncTarget, err)
	}
	return nil
}
