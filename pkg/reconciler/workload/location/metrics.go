package location

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
)

// Metric names. Several controllers (one per location workspace) share one TMCMetrics;
// registration is idempotent, and the workspace label keeps their series apart.
const (
	InstancesMetric          = "tmc_location_instances"
	AvailableInstancesMetric = "tmc_location_available_instances"
)

// metrics records the controller's metrics; a nil *metrics records nothing.
type metrics struct {
	workspace string
	instances *prometheus.GaugeVec
	available *prometheus.GaugeVec
}

func newMetrics(m *tmc.TMCMetrics, workspace string) (*metrics, error) {
	if m == nil {
		return nil, nil
	}
	labels := []string{"workspace", "location"}
	instances, err := m.RegisterGaugeVec(InstancesMetric,
		"Number of SyncTargets the Location's instanceSelector selects.", labels)
	if err != nil {
		return nil, err
	}
	available, err := m.RegisterGaugeVec(AvailableInstancesMetric,
		"Number of the Location's SyncTargets that are Ready, schedulable and not evicting.", labels)
	if err != nil {
		return nil, err
	}
	return &metrics{workspace: workspace, instances: instances, available: available}, nil
}

func (m *metrics) set(location string, instances, available int32) {
	if m == nil {
		return
	}
	m.instances.WithLabelValues(m.workspace, location).Set(float64(instances))
	m.available.WithLabelValues(m.workspace, location).Set(float64(available))
}

// forget drops the series of a deleted Location.
func (m *metrics) forget(location string) {
	if m == nil {
		return
	}
	m.instances.DeleteLabelValues(m.workspace, location)
	m.available.DeleteLabelValues(m.workspace, location)
}
