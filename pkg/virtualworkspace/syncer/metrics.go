package syncer

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Metrics are the syncer and upsyncer views' Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	requests *prometheus.CounterVec
	watches  *prometheus.GaugeVec
}

// NewMetrics registers the metrics with reg:
//
//   - tmc_virtualworkspace_requests_total{view,verb,resource,code}: requests answered, by
//     view (syncer, upsyncer);
//   - tmc_virtualworkspace_open_watches{view,location,synctarget,resource}: watches being
//     served (one per type for a syncer in virtual-workspace mode).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tmc_virtualworkspace_requests_total",
			Help: "Requests to the syncer and upsyncer views by view, verb, resource and response code.",
		}, []string{"view", "verb", "resource", "code"}),
		watches: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tmc_virtualworkspace_open_watches",
			Help: "Watches the syncer and upsyncer views are serving, by view, location workspace, SyncTarget and resource.",
		}, []string{"view", "location", "synctarget", "resource"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.watches} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) request(vw view, v verb, resource string, code int) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(string(vw), string(v), resource, strconv.Itoa(code)).Inc()
}

// watchStarted counts an open watch; call the returned function when it ends.
func (m *Metrics) watchStarted(v view, tgt *target, gr schema.GroupResource) func() {
	if m == nil {
		return func() {}
	}
	g := m.watches.WithLabelValues(string(v), tgt.locationCluster, tgt.name, gr.String())
	g.Inc()
	return g.Dec
}
