package e2e

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// ownershipSelector selects the downstream objects this SyncTarget owns.
func (se *syncerEnv) ownershipSelector() string {
	return workloadv1alpha1.InternalDownstreamClusterLabel + "=" + se.stKey
}

func indexedNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}

// createConfigMaps creates one ConfigMap per name with workers goroutines. Each carries its
// own name in its data, so that a mix-up shows.
func createConfigMaps(ctx context.Context, c kubernetes.Interface, ns string, names []string, labels map[string]string, workers int) error {
	work := make(chan string)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				cm := &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: name, Labels: maps.Clone(labels)},
					Data:       map[string]string{"name": name, "value": "initial", "payload": strings.Repeat(name, 8)},
				}
				if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("failed to create upstream ConfigMap %s/%s: %w", ns, name, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, name := range names {
		work <- name
	}
	close(work)
	wg.Wait()
	return firstErr
}

func updateConfigMap(ctx context.Context, c kubernetes.Interface, ns, name string, mutate func(*corev1.ConfigMap)) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := c.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		mutate(cm)
		_, err = c.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("failed to update upstream ConfigMap %s/%s: %w", ns, name, err)
	}
	return nil
}

// downstreamConfigMaps lists the ConfigMaps of a downstream namespace by name.
func downstreamConfigMaps(ctx context.Context, c kubernetes.Interface, ns, selector string) (map[string]*corev1.ConfigMap, error) {
	list, err := c.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	out := make(map[string]*corev1.ConfigMap, len(list.Items))
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out, nil
}

// downstreamResourceVersions returns the resourceVersion of every selected ConfigMap in ns
// and that of ns itself.
func downstreamResourceVersions(t *testing.T, c kubernetes.Interface, ns, selector string) (map[string]string, string) {
	t.Helper()
	cms, err := downstreamConfigMaps(t.Context(), c, ns, selector)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string, len(cms))
	for name, cm := range cms {
		out[name] = cm.ResourceVersion
	}
	nsObj, err := c.CoreV1().Namespaces().Get(t.Context(), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out, nsObj.ResourceVersion
}

// compareData reports whether every name has a downstream ConfigMap with the upstream data.
func compareData(upstream map[string]map[string]string, downstream map[string]*corev1.ConfigMap, names []string) (bool, string, error) {
	var missing, wrong []string
	for _, name := range names {
		cm, ok := downstream[name]
		switch {
		case !ok:
			missing = append(missing, name)
		case !maps.Equal(cm.Data, upstream[name]):
			wrong = append(wrong, fmt.Sprintf("%s (downstream %v, upstream %v)", name, cm.Data, upstream[name]))
		}
	}
	if len(missing) == 0 && len(wrong) == 0 {
		return true, "", nil
	}
	if len(missing) > 10 {
		missing = append(missing[:10], "...")
	}
	if len(wrong) > 5 {
		wrong = append(wrong[:5], "...")
	}
	return false, fmt.Sprintf("%d of %d downstream; missing %v; wrong data %v", len(downstream), len(names), missing, wrong), nil
}

// pollUntil polls cond every interval until it holds or timeout passes; the failure message
// carries the last status cond reported.
func pollUntil(t *testing.T, interval, timeout time.Duration, what string, cond func(ctx context.Context) (bool, string, error)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(t.Context(), interval, timeout, true, func(ctx context.Context) (bool, error) {
		ok, status, err := cond(ctx)
		last = status
		return ok, err
	})
	if err != nil {
		t.Fatalf("timed out after %s waiting for %s: %v; last status: %s", timeout, what, err, last)
	}
}

// waitStable polls read until it returns the same value without error for stableFor, and
// returns that value.
func waitStable(t *testing.T, timeout, stableFor time.Duration, what string, read func(ctx context.Context) (string, error)) string {
	t.Helper()
	var (
		last, status string
		since        time.Time
	)
	err := wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		v, err := read(ctx)
		if err != nil {
			status, since = err.Error(), time.Time{}
			return false, nil
		}
		if since.IsZero() || v != last {
			last, since = v, time.Now()
		}
		status = fmt.Sprintf("value %s, stable for %s", v, time.Since(since).Round(time.Millisecond))
		return time.Since(since) >= stableFor, nil
	})
	if err != nil {
		t.Fatalf("timed out after %s waiting for %s: %v; last status: %s", timeout, what, err, status)
	}
	return last
}

// writeVerbs are the verbs of apiserver_request_total that change objects.
var writeVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "DELETE": true, "APPLY": true}

// writeCounts holds the write samples of apiserver_request_total for configmaps and
// namespaces, keyed by their full label set.
type writeCounts map[string]float64

// scrapeWrites reads an apiserver's own request counters.
func scrapeWrites(ctx context.Context, cfg *rest.Config) (writeCounts, error) {
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	body, err := c.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to scrape %s/metrics: %w", cfg.Host, err)
	}
	out := writeCounts{}
	found := false
	for _, line := range strings.Split(string(body), "\n") {
		name, labels, value, ok := parseSample(line)
		if !ok || name != "apiserver_request_total" {
			continue
		}
		found = true
		if !writeVerbs[labels["verb"]] || (labels["resource"] != "configmaps" && labels["resource"] != "namespaces") {
			continue
		}
		out[formatLabels(labels)] += value
	}
	if !found {
		return nil, fmt.Errorf("%s/metrics has no apiserver_request_total samples", cfg.Host)
	}
	return out, nil
}

func (w writeCounts) total(resource string) float64 {
	var sum float64
	for k, v := range w {
		if strings.Contains(k, fmt.Sprintf("resource=%q", resource)) {
			sum += v
		}
	}
	return sum
}

func (w writeCounts) String() string {
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %v\n", k, w[k])
	}
	return b.String()
}

// diff lists the series of resource that differ between w and after.
func (w writeCounts) diff(after writeCounts, resource string) string {
	keys := map[string]bool{}
	for k := range w {
		keys[k] = true
	}
	for k := range after {
		keys[k] = true
	}
	var lines []string
	for k := range keys {
		if strings.Contains(k, fmt.Sprintf("resource=%q", resource)) && w[k] != after[k] {
			lines = append(lines, fmt.Sprintf("  apiserver_request_total%s %v -> %v", k, w[k], after[k]))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// parseSample parses one line of the Prometheus text format: name{labels} value.
func parseSample(line string) (string, map[string]string, float64, bool) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return "", nil, 0, false
	}
	labels := map[string]string{}
	name, rest := line, ""
	if i := strings.IndexAny(line, "{ "); i >= 0 {
		name, rest = line[:i], line[i:]
	}
	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, ", ")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, "=\"")
			if eq < 0 {
				return "", nil, 0, false
			}
			key := rest[:eq]
			rest = rest[eq+2:]
			var val strings.Builder
			closed := false
			for i := 0; i < len(rest); i++ {
				switch ch := rest[i]; {
				case ch == '\\' && i+1 < len(rest):
					i++
					val.WriteByte(rest[i])
				case ch == '"':
					rest, closed = rest[i+1:], true
				default:
					val.WriteByte(ch)
				}
				if closed {
					break
				}
			}
			if !closed {
				return "", nil, 0, false
			}
			labels[key] = val.String()
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return "", nil, 0, false
	}
	var value float64
	if _, err := fmt.Sscan(fields[0], &value); err != nil {
		return "", nil, 0, false
	}
	return name, labels, value, true
}

func formatLabels(labels map[string]string) string {
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

// grepLines returns the sample lines of metric in a scrape.
func grepLines(body, metric string) string {
	var out []string
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, metric) {
			out = append(out, "  "+line)
		}
	}
	if len(out) == 0 {
		return "  (none)"
	}
	return strings.Join(out, "\n")
}
