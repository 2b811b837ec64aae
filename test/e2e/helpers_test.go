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
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/tmc-dev/tmc/pkg/localenv"
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
		if list.Items[i].Name == hubCAConfigMap {
			continue // the syncer's copy of the hub CA, not a synced object
		}
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

// waitStable polls read until it returns the same value without error for stableFor, and
// returns that value.
func waitStable(t *testing.T, timeout, stableFor time.Duration, what string, read func(ctx context.Context) (string, error)) string {
	t.Helper()
	var (
		last  string
		since time.Time
	)
	localenv.Eventually(t, 500*time.Millisecond, timeout, what, func(ctx context.Context) (bool, string, error) {
		v, err := read(ctx)
		if err != nil {
			since = time.Time{}
			return false, err.Error(), nil
		}
		if since.IsZero() || v != last {
			last, since = v, time.Now()
		}
		return time.Since(since) >= stableFor, fmt.Sprintf("value %s, stable for %s", v, time.Since(since).Round(time.Millisecond)), nil
	})
	return last
}

// writeVerbs are the verbs of apiserver_request_total that change objects.
var writeVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "DELETE": true, "APPLY": true}

// writeCounts holds the write samples of apiserver_request_total for configmaps and
// namespaces, keyed by their full label set.
type writeCounts map[string]float64

// scrapeWrites reads an apiserver's own request counters.
func scrapeWrites(ctx context.Context, cfg *rest.Config) (writeCounts, error) {
	m, err := localenv.ScrapeAPIServerMetrics(ctx, cfg)
	if err != nil {
		return nil, err
	}
	samples := m.Samples("apiserver_request_total")
	if len(samples) == 0 {
		return nil, fmt.Errorf("%s/metrics has no apiserver_request_total samples", cfg.Host)
	}
	out := writeCounts{}
	for _, s := range samples {
		if !writeVerbs[s.Labels["verb"]] || (s.Labels["resource"] != "configmaps" && s.Labels["resource"] != "namespaces") {
			continue
		}
		out[localenv.FormatLabels(s.Labels)] += s.Value
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

// configMapUnchanged returns a check that the downstream ConfigMap pre (as created) is still
// there and was never written: same resourceVersion, data, labels and annotations.
func configMapUnchanged(c kubernetes.Interface, pre *corev1.ConfigMap) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		cm, err := c.CoreV1().ConfigMaps(pre.Namespace).Get(ctx, pre.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("the pre-existing downstream ConfigMap %s: %w", pre.Name, err)
		}
		switch {
		case cm.ResourceVersion != pre.ResourceVersion:
			return fmt.Errorf("the pre-existing downstream ConfigMap %s was written: resourceVersion %s → %s (labels %v, data %v)", pre.Name, pre.ResourceVersion, cm.ResourceVersion, cm.Labels, cm.Data)
		case fmt.Sprint(cm.Data) != fmt.Sprint(pre.Data):
			return fmt.Errorf("data of %s changed: %v → %v", pre.Name, pre.Data, cm.Data)
		case fmt.Sprint(cm.Labels) != fmt.Sprint(pre.Labels):
			return fmt.Errorf("labels of %s changed: %v → %v", pre.Name, pre.Labels, cm.Labels)
		case fmt.Sprint(cm.Annotations) != fmt.Sprint(pre.Annotations):
			return fmt.Errorf("annotations of %s changed: %v → %v", pre.Name, pre.Annotations, cm.Annotations)
		}
		return nil
	}
}
