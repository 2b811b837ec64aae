package localenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Metrics is one scrape of a Prometheus endpoint, by metric family name.
type Metrics map[string]*dto.MetricFamily

// Sample is one value of a scrape: a counter, gauge or untyped value, or a histogram's or
// summary's _count, _sum or _bucket.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// ParseMetrics parses the Prometheus text exposition format.
func ParseMetrics(r io.Reader) (Metrics, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("failed to parse metrics: %w", err)
	}
	return families, nil
}

// ScrapeMetrics fetches and parses url, the /metrics of a TMC binary.
func ScrapeMetrics(ctx context.Context, url string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("failed to create request for %s: %w", url, err)
	}
	// The text format, not OpenMetrics or protobuf.
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to scrape %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("failed to scrape %s: %s %s", url, resp.Status, body)
	}
	m, err := ParseMetrics(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("failed to scrape %s: %w", url, err)
	}
	return m, nil
}

// ScrapeAPIServerMetrics fetches and parses the /metrics of the apiserver behind cfg.
func ScrapeAPIServerMetrics(ctx context.Context, cfg *rest.Config) (Metrics, error) {
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create client for %s: %w", cfg.Host, err)
	}
	body, err := c.CoreV1().RESTClient().Get().AbsPath("/metrics").
		SetHeader("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain))).DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to scrape %s/metrics: %w", cfg.Host, err)
	}
	m, err := ParseMetrics(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("failed to scrape %s/metrics: %w", cfg.Host, err)
	}
	return m, nil
}

// Samples returns the samples of name: a counter, gauge or untyped family, or
// <family>_count, <family>_sum or <family>_bucket (label "le") of a histogram or summary.
func (m Metrics) Samples(name string) []Sample {
	if f, ok := m[name]; ok {
		var out []Sample
		for _, metric := range f.GetMetric() {
			if v, ok := scalarValue(f.GetType(), metric); ok {
				out = append(out, Sample{Labels: labelMap(metric), Value: v})
			}
		}
		return out
	}
	for _, suffix := range []string{"_count", "_sum", "_bucket"} {
		base, ok := strings.CutSuffix(name, suffix)
		if f, found := m[base]; ok && found {
			return distributionSamples(f, suffix)
		}
	}
	return nil
}

// Sum adds the values of the samples of name whose labels include every pair of match.
func (m Metrics) Sum(name string, match map[string]string) float64 {
	var total float64
	for _, s := range m.Samples(name) {
		if s.Matches(match) {
			total += s.Value
		}
	}
	return total
}

// Matches reports whether the sample has every label of match.
func (s Sample) Matches(match map[string]string) bool {
	for k, v := range match {
		if got, ok := s.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Series prints the samples of name, one "name{labels} value" line each, sorted, for
// failure messages.
func (m Metrics) Series(name string) string {
	var lines []string
	for _, s := range m.Samples(name) {
		lines = append(lines, "  "+name+FormatLabels(s.Labels)+" "+strconv.FormatFloat(s.Value, 'g', -1, 64))
	}
	if len(lines) == 0 {
		return "  (none)"
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// FormatLabels prints labels as {k="v",...} with sorted keys, or "" when there are none.
func FormatLabels(labels map[string]string) string {
	if len(labels) == 0 {
		return ""
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%q", k, labels[k]))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func scalarValue(t dto.MetricType, metric *dto.Metric) (float64, bool) {
	switch t {
	case dto.MetricType_COUNTER:
		return metric.GetCounter().GetValue(), true
	case dto.MetricType_GAUGE:
		return metric.GetGauge().GetValue(), true
	case dto.MetricType_UNTYPED:
		return metric.GetUntyped().GetValue(), true
	default:
		return 0, false
	}
}

func distributionSamples(f *dto.MetricFamily, suffix string) []Sample {
	var out []Sample
	for _, metric := range f.GetMetric() {
		labels := labelMap(metric)
		switch {
		case f.GetType() == dto.MetricType_HISTOGRAM && suffix == "_count":
			out = append(out, Sample{Labels: labels, Value: float64(metric.GetHistogram().GetSampleCount())})
		case f.GetType() == dto.MetricType_HISTOGRAM && suffix == "_sum":
			out = append(out, Sample{Labels: labels, Value: metric.GetHistogram().GetSampleSum()})
		case f.GetType() == dto.MetricType_HISTOGRAM && suffix == "_bucket":
			for _, b := range metric.GetHistogram().GetBucket() {
				withLE := labelMap(metric)
				withLE["le"] = strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)
				out = append(out, Sample{Labels: withLE, Value: float64(b.GetCumulativeCount())})
			}
		case f.GetType() == dto.MetricType_SUMMARY && suffix == "_count":
			out = append(out, Sample{Labels: labels, Value: float64(metric.GetSummary().GetSampleCount())})
		case f.GetType() == dto.MetricType_SUMMARY && suffix == "_sum":
			out = append(out, Sample{Labels: labels, Value: metric.GetSummary().GetSampleSum()})
		}
	}
	return out
}

func labelMap(metric *dto.Metric) map[string]string {
	out := make(map[string]string, len(metric.GetLabel()))
	for _, l := range metric.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}
