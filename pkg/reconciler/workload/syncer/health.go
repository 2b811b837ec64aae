package syncer

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
)

// Health component names (the PRD's).
const (
	HealthKCPConnection       = "kcp-connection"
	HealthClusterConnection   = "cluster-connection"
	HealthResourceControllers = "resource-controllers"
)

// registerHealthChecks registers the syncer's components on the TMC health manager. All
// three are readiness checks: a syncer cut off from either side should stop being Ready,
// but restarting it would not help, so none of them fails liveness.
func (s *Syncer) registerHealthChecks() error {
	s.health = tmc.NewComponentHealthManager("syncer", tmc.WithHealthRegisterer(s.metrics.tmc.Registerer()))
	return errors.Join(
		s.health.RegisterComponent(HealthKCPConnection, s.checkKCPConnection, tmc.ReadinessOnly(), tmc.WithCheckTimeout(4*time.Second)),
		s.health.RegisterComponent(HealthClusterConnection, s.checkClusterConnection, tmc.ReadinessOnly(), tmc.WithCheckTimeout(4*time.Second)),
		s.health.RegisterComponent(HealthResourceControllers, s.checkResourceControllers, tmc.ReadinessOnly()),
	)
}

// checkKCPConnection reads the SyncTarget from the control plane.
func (s *Syncer) checkKCPConnection(ctx context.Context) error {
	if _, err := s.locationClient.WorkloadV1alpha1().SyncTargets().Get(ctx, s.cfg.SyncTargetName, metav1.GetOptions{}); err != nil {
		return fmt.Errorf("cannot read SyncTarget %s: %w", s.cfg.SyncTargetName, err)
	}
	return nil
}

// checkClusterConnection asks the physical cluster's apiserver whether it is ready.
func (s *Syncer) checkClusterConnection(ctx context.Context) error {
	body, err := s.downstreamKube.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("physical cluster not reachable: %w", err)
	}
	if string(body) != "ok" {
		return fmt.Errorf("physical cluster not ready: %s", body)
	}
	return nil
}

// checkResourceControllers is healthy once the controllers run and every informer synced.
func (s *Syncer) checkResourceControllers(context.Context) error {
	if !s.started() {
		return errors.New("controllers not started")
	}
	if ok, what := s.engine.allSynced(); !ok {
		return fmt.Errorf("waiting for caches to sync: %s", what)
	}
	return nil
}
