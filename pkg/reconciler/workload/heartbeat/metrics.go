package heartbeat

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
)

// Metric names. Several controllers (one per location workspace) share one TMCMetrics;
// registration is idempotent, and the workspace label keeps their series apart.
const (
	SyncTargetReadyMetric      = "tmc_synctarget_ready"
	HeartbeatExpirationsMetric = "tmc_heartbeat_expirations_total"
)

// metrics records the controller's metrics; a nil *metrics records nothing.
type metrics struct {
	workspace   string
	ready       *prometheus.GaugeVec
	expirations prometheus.Counter
}

func newMetrics(m *tmc.TMCMetrics, workspace string) (*metrics, error) {
	if m == nil {
		return nil, nil
	}
	ready, err := m.RegisterGaugeVec(SyncTargetReadyMetric,
		"Whether the SyncTarget is Ready (1) or not (0), as computed by the heartbeat controller.",
		[]string{"workspace", "synctarget"})
	if err != nil {
		return nil, err
	}
	expirations, err := m.RegisterCounterVec(HeartbeatExpirationsMetric,
		"Number of times a SyncTarget's syncer heartbeat expired (HeartbeatHealthy turned False).",
		[]string{"workspace"})
	if err != nil {
		return nil, err
	}
	return &metrics{
		workspace: workspace,
		ready:     ready,
		// Created eagerly so that the series exists (at 0) before the first expiry.
		expirations: expirations.WithLabelValues(workspace),
	}, nil
}

func (m *metrics) setReady(syncTarget string, ready bool) {
	if m == nil {
		return
	}
	v := 0.0
	if ready {
		v = 1
	}
	m.ready.WithLabelValues(m.workspace, syncTarget).Set(v)
}

// forget drops the series of a deleted SyncTarget, so that it is not exported forever.
func (m *metrics) forget(syncTarget string) {
	if m == nil {
		return
	}
	m.ready.DeleteLabelValues(m.workspace, syncTarget)
}

func (m *metrics) expired() {
	if m == nil {
		return
	}
	m.expirations.Inc()
}
