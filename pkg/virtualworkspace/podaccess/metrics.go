package podaccess

import (
	"net/http"
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

// recordingWriter remembers the status code for the metrics; flushes and hijacks reach the
// underlying writer through Unwrap (http.ResponseController, as httputil.ReverseProxy uses).
type recordingWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (w *recordingWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
