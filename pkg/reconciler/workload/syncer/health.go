package syncer

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
)

// Health component names (the PRD's).
const (
	HealthKCPConnection       = "kcp-connection"
	HealthClusterConnection   = "cluster-connection"
	HealthResourceControllers = "resource-controllers"
)

// healthChecks are the syncer's readiness checks, each built from what it reads.
type healthChecks struct {
	syncTargetName string
	locationClient tmcclient.Interface
	downstreamREST rest.Interface
	started        func() bool
	// synced reports whether the syncer's own caches (downstream) have synced; an
	// unreadable workload workspace does not make the syncer unready.
	synced func() (bool, string)
}

// register registers the checks on a TMC health manager. All three are readiness checks: a
// syncer cut off from either side should stop being Ready, but restarting it would not
// help, so none of them fails liveness.
func (h healthChecks) register(metrics *tmc.TMCMetrics) (*tmc.ComponentHealthManager, error) {
	health := tmc.NewComponentHealthManager("syncer", tmc.WithHealthRegisterer(metrics.Registerer()))
	return health, errors.Join(
		health.RegisterComponent(HealthKCPConnection, h.checkKCPConnection, tmc.ReadinessOnly(), tmc.WithCheckTimeout(4*time.Second)),
		health.RegisterComponent(HealthClusterConnection, h.checkClusterConnection, tmc.ReadinessOnly(), tmc.WithCheckTimeout(4*time.Second)),
		health.RegisterComponent(HealthResourceControllers, h.checkResourceControllers, tmc.ReadinessOnly()),
	)
}

// checkKCPConnection reads the SyncTarget from the control plane.
func (h healthChecks) checkKCPConnection(ctx context.Context) error {
	if _, err := h.locationClient.WorkloadV1alpha1().SyncTargets().Get(ctx, h.syncTargetName, metav1.GetOptions{}); err != nil {
		return fmt.Errorf("cannot read SyncTarget %s: %w", h.syncTargetName, err)
	}
	return nil
}

// checkClusterConnection asks the physical cluster's apiserver whether it is ready.
func (h healthChecks) checkClusterConnection(ctx context.Context) error {
	body, err := h.downstreamREST.Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("physical cluster not reachable: %w", err)
	}
	if string(body) != "ok" {
		return fmt.Errorf("physical cluster not ready: %s", body)
	}
	return nil
}

// checkResourceControllers is healthy once the controllers run and the downstream
// informers synced.
func (h healthChecks) checkResourceControllers(context.Context) error {
	if !h.started() {
		return errors.New("controllers not started")
	}
	if ok, what := h.synced(); !ok {
		return fmt.Errorf("waiting for caches to sync: %s", what)
	}
	return nil
}
