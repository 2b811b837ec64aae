package localenv

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const exposition = `# HELP syncer_resources_synced_total Objects synced.
# TYPE syncer_resources_synced_total counter
syncer_resources_synced_total{cluster="east",direction="down",gvk="configmaps/v1",workspace="root:org:team-a"} 3
syncer_resources_synced_total{cluster="east",direction="down",gvk="deployments.apps/v1",workspace="root:org:team-a"} 1
syncer_resources_synced_total{cluster="east",direction="up",gvk="deployments.apps/v1",workspace="root:org:team-a"} 2
# HELP workqueue_depth Depth.
# TYPE workqueue_depth gauge
workqueue_depth{name="spec"} 4
workqueue_depth{name="status"} 0
# HELP syncer_sync_duration_seconds Duration.
# TYPE syncer_sync_duration_seconds histogram
syncer_sync_duration_seconds_bucket{le="0.1"} 5
syncer_sync_duration_seconds_bucket{le="+Inf"} 7
syncer_sync_duration_seconds_sum 1.5
syncer_sync_duration_seconds_count 7
# HELP odd A label value with escapes.
# TYPE odd untyped
odd{msg="a \"quoted\" \\ value\nnext"} 1e3
`

func TestMetricsSamplesAndSums(t *testing.T) {
	m, err := ParseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		match map[string]string
		want  float64
	}{
		{"syncer_resources_synced_total", nil, 6},
		{"syncer_resources_synced_total", map[string]string{"direction": "down"}, 4},
		{"syncer_resources_synced_total", map[string]string{"direction": "down", "gvk": "configmaps/v1", "cluster": "east"}, 3},
		{"syncer_resources_synced_total", map[string]string{"workspace": "root:org:team-b"}, 0},
		{"syncer_resources_synced_total", map[string]string{"nolabel": ""}, 0},
		{"workqueue_depth", map[string]string{"name": "spec"}, 4},
		{"syncer_sync_duration_seconds_count", nil, 7},
		{"syncer_sync_duration_seconds_sum", nil, 1.5},
		{"syncer_sync_duration_seconds_bucket", map[string]string{"le": "0.1"}, 5},
		{"syncer_sync_duration_seconds", nil, 0},
		{"odd", map[string]string{"msg": "a \"quoted\" \\ value\nnext"}, 1000},
		{"missing_total", nil, 0},
	} {
		if got := m.Sum(tc.name, tc.match); got != tc.want {
			t.Errorf("Sum(%s, %v) = %v, want %v", tc.name, tc.match, got, tc.want)
		}
	}
	if got := m.Series("workqueue_depth"); got != "  workqueue_depth{name=\"spec\"} 4\n  workqueue_depth{name=\"status\"} 0" {
		t.Errorf("Series = %q", got)
	}
	if got := m.Series("missing_total"); got != "  (none)" {
		t.Errorf("Series of a missing metric = %q", got)
	}
}

func TestParseMetricsRejectsGarbage(t *testing.T) {
	if _, err := ParseMetrics(strings.NewReader("metric{label=\"unterminated} 1\n")); err == nil {
		t.Error("expected an error for a malformed line")
	}
}

func TestScrapeMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(exposition))
	}))
	defer srv.Close()
	m, err := ScrapeMetrics(context.Background(), srv.URL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Sum("workqueue_depth", nil); got != 4 {
		t.Errorf("workqueue_depth = %v, want 4", got)
	}
	if _, err := ScrapeMetrics(context.Background(), srv.URL+"/nope"); err == nil {
		t.Error("expected an error for a 404")
	}
}

func TestPollReportsTheLastStatus(t *testing.T) {
	n := 0
	err := Poll(context.Background(), time.Millisecond, 50*time.Millisecond, func(context.Context) (bool, string, error) {
		n++
		return false, "seen " + strings.Repeat("x", n%2), nil
	})
	if err == nil || !strings.Contains(err.Error(), "last status: seen") {
		t.Fatalf("Poll = %v, want a timeout naming the last status", err)
	}
	stop := errors.New("stop")
	if err := Poll(context.Background(), time.Millisecond, time.Second, func(context.Context) (bool, string, error) {
		return false, "", stop
	}); !errors.Is(err, stop) {
		t.Errorf("Poll = %v, want the condition's error", err)
	}
	if err := Poll(context.Background(), time.Millisecond, time.Second, func(context.Context) (bool, string, error) {
		return true, "", nil
	}); err != nil {
		t.Errorf("Poll = %v, want nil", err)
	}
}
