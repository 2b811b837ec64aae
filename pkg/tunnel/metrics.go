package tunnel

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"
)

// ClientMetrics are the syncer's tunnel series, labelled by tunnel URL (one per shard).
type ClientMetrics struct {
	connected  *prometheus.GaugeVec
	reconnects *prometheus.CounterVec
}

// NewClientMetrics returns the client series, registered with reg (nil registers nothing;
// series already registered there are shared).
func NewClientMetrics(reg prometheus.Registerer) *ClientMetrics {
	m := &ClientMetrics{
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "syncer_tunnel_connected",
			Help: "1 while the syncer's tunnel to the virtual-workspace server is connected.",
		}, []string{"url"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncer_tunnel_reconnects_total",
			Help: "Connection attempts of the syncer's tunnel after the first one.",
		}, []string{"url"}),
	}
	m.connected = register(reg, m.connected)
	m.reconnects = register(reg, m.reconnects)
	return m
}

func (m *ClientMetrics) setConnected(url string, connected bool) {
	if m == nil {
		return
	}
	v := 0.0
	if connected {
		v = 1
	}
	m.connected.WithLabelValues(url).Set(v)
}

func (m *ClientMetrics) reconnect(url string) {
	if m != nil {
		m.reconnects.WithLabelValues(url).Inc()
	}
}

// register registers c with reg, or returns the collector already registered in its place.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		if existing, ok := already.ExistingCollector.(C); ok {
			return existing
		}
	}
	klog.Background().Error(err, "Failed to register a tunnel metric")
	return c
}
