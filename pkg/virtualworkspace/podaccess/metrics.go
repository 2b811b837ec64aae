package podaccess

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pod-access view's Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	requests *prometheus.CounterVec
}

// NewMetrics registers tmc_virtualworkspace_pod_requests_total{subresource,code} with reg:
// requests answered, by pod subresource (log, exec, attach, portforward; "other" for the
// requests forwarded to the workspace) and response code (101 for an upgrade).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tmc_virtualworkspace_pod_requests_total",
		Help: "Requests to the pod-access view by pod subresource and response code.",
	}, []string{"subresource", "code"})}
	if err := reg.Register(m.requests); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Metrics) request(subresource string, code int) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(subresource, strconv.Itoa(code)).Inc()
}
