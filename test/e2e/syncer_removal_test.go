package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// Metric names of the removal path (pkg/reconciler/workload/syncer/metrics.go).
const (
	metricStuckDeletions = "syncer_stuck_downstream_deletions"
	// stuckWindow is how long the request rate to the physical cluster is measured while
	// copies are stuck; stuckMaxRate the average it must stay below.
	stuckWindow  = 30 * time.Second
	stuckMaxRate = 1.0 // requests per second
)

// TestSyncerOrphanPolicy: an object annotated with the deletion policy Orphan and deleted
// upstream is fully deleted upstream, while its downstream copy keeps running without the
// ownership label in a downstream namespace that is kept and marked as holding orphans.
func TestSyncerOrphanPolicy(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	se := setupSyncerEnv(t)
	se.startSyncer(t, syncerOptions{})
	labels := se.syncLabels()
	up := se.upstreamKube(t, wsA)
	down := se.downstreamKube(t)
	finalizer := workloadv1alpha1.SyncerFinalizerName(se.stKey)

	se.createUpstreamNamespace(t, wsA, "keepme")
	db := deployment("db", 2, labels)
	db.Annotations = map[string]string{workloadv1alpha1.DeletionPolicyAnnotation: workloadv1alpha1.DeletionPolicyOrphan}
	if _, err := up.AppsV1().Deployments("keepme").Create(ctx, db, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A second object of the namespace stays synced (Delete policy).
	if _, err := up.CoreV1().ConfigMaps("keepme").Create(ctx, labelledConfigMap("settings", labels, map[string]string{"a": "1"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dns := se.downstreamNamespace(t, wsA, "keepme")
	se.waitDownstreamConfigMap(t, wsA, "keepme", "settings", 60*time.Second)
	eventually(t, 90*time.Second, "deployment keepme/db did not run downstream in "+dns, func(ctx context.Context) (bool, error) {
		d, err := down.AppsV1().Deployments(dns).Get(ctx, "db", metav1.GetOptions{})
		return err == nil && d.Labels[workloadv1alpha1.InternalDownstreamClusterLabel] == se.stKey && d.Status.ReadyReplicas == 2, nil
	})
	eventually(t, 30*time.Second, "upstream deployment keepme/db did not get the syncer finalizer", func(ctx context.Context) (bool, error) {
		d, err := up.AppsV1().Deployments("keepme").Get(ctx, "db", metav1.GetOptions{})
		return err == nil && containsString(d.Finalizers, finalizer), nil
	})
	copyBefore, err := down.AppsV1().Deployments(dns).Get(ctx, "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	t.Log("deleting the upstream deployment keepme/db (deletion policy Orphan)")
	if err := up.AppsV1().Deployments("keepme").Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the upstream deployment keepme/db was not fully deleted", func(ctx context.Context) (bool, error) {
		_, err := up.AppsV1().Deployments("keepme").Get(ctx, "db", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	ev := waitEvent(t, up, "keepme", "db", "Orphaned", 30*time.Second)
	t.Logf("Event: %s %s: %s", ev.Type, ev.Reason, ev.Message)
	if !strings.Contains(ev.Message, clusterName) {
		t.Errorf("the Orphaned Event must name the SyncTarget %s: %q", clusterName, ev.Message)
	}

	orphanRunning := func(ctx context.Context) error {
		d, err := down.AppsV1().Deployments(dns).Get(ctx, "db", metav1.GetOptions{})
		switch {
		case err != nil:
			return fmt.Errorf("the orphaned downstream deployment %s/db: %w", dns, err)
		case d.UID != copyBefore.UID:
			return fmt.Errorf("the downstream deployment was replaced (uid %s → %s)", copyBefore.UID, d.UID)
		case d.DeletionTimestamp != nil:
			return fmt.Errorf("the orphaned downstream deployment is being deleted")
		case d.Labels[workloadv1alpha1.InternalDownstreamClusterLabel] != "":
			return fmt.Errorf("the orphaned downstream deployment still carries the ownership label: %v", d.Labels)
		case d.Status.ReadyReplicas != 2:
			return fmt.Errorf("the orphaned downstream deployment has %d ready replicas, want 2", d.Status.ReadyReplicas)
		}
		ns, err := down.CoreV1().Namespaces().Get(ctx, dns, metav1.GetOptions{})
		switch {
		case err != nil:
			return fmt.Errorf("the downstream namespace %s: %w", dns, err)
		case ns.DeletionTimestamp != nil:
			return fmt.Errorf("the downstream namespace %s is being deleted", dns)
		case ns.Annotations[workloadv1alpha1.DownstreamOrphansAnnotation] == "":
			return fmt.Errorf("the downstream namespace %s is not marked with %s: %v", dns, workloadv1alpha1.DownstreamOrphansAnnotation, ns.Annotations)
		}
		return nil
	}
	eventually(t, 30*time.Second, "the orphan is not running unlabelled", func(ctx context.Context) (bool, error) {
		return orphanRunning(ctx) == nil, nil
	})
	// Longer than the namespace clean delay and several reconciles of the key.
	holdFor(t, 4*lifecycleCleanDelay, "the orphan must keep running", orphanRunning)
}

// TestSyncerStuckDownstreamDeletion (acceptance 9): downstream copies held in Terminating by
// a foreign finalizer get an Event upstream naming it within a minute, are counted in the
// stuck-deletions gauge, and cost the physical cluster less than one request per second on
// average (measured from its apiserver_request_total; a fixed 2 s poll of the five copies
// would make 2.5). Once the finalizer goes, the removal completes at once.
func TestSyncerStuckDownstreamDeletion(t *testing.T) {
	t.Parallel()
	const (
		objects       = 5
		holdFinalizer = "e2e.tmc.dev/hold"
	)
	ctx := t.Context()
	se := setupSyncerEnv(t)
	sp := se.startSyncer(t, syncerOptions{})
	labels := se.syncLabels()
	up := se.upstreamKube(t, wsA)
	down := se.downstreamKube(t)

	se.createUpstreamNamespace(t, wsA, "stuck")
	names := indexedNames("held", objects)
	for _, name := range names {
		if _, err := up.CoreV1().ConfigMaps("stuck").Create(ctx, labelledConfigMap(name, labels, map[string]string{"n": name}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	dns := se.downstreamNamespace(t, wsA, "stuck")
	for _, name := range names {
		se.waitDownstreamConfigMap(t, wsA, "stuck", name, 60*time.Second)
		setConfigMapFinalizers(t, down, dns, name, []string{holdFinalizer})
	}

	deleted := time.Now()
	for _, name := range names {
		if err := up.CoreV1().ConfigMaps("stuck").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range names {
		ev := waitEvent(t, up, "stuck", name, "DownstreamDeletionStuck", time.Minute-time.Since(deleted))
		if !strings.Contains(ev.Message, holdFinalizer) {
			t.Errorf("the Event on %s must name the finalizer %s: %q", name, holdFinalizer, ev.Message)
		}
	}
	t.Logf("all %d stuck copies reported %s after the upstream deletes", objects, time.Since(deleted).Round(time.Second))
	eventually(t, 30*time.Second, "the stuck deletions are not counted", func(ctx context.Context) (bool, error) {
		return metricValue(t, sp.MetricsURL, metricStuckDeletions, nil) == objects, nil
	})

	// The request rate to the physical cluster for configmaps while the copies stay stuck.
	physical := se.cluster.AdminConfig()
	before := configMapRequests(t, physical)
	select {
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	case <-time.After(stuckWindow):
	}
	after := configMapRequests(t, physical)
	requests := after.total - before.total
	t.Logf("configmap requests to the physical cluster in %s with %d stuck copies: %v\n%s", stuckWindow, objects, requests, before.diff(after))
	if limit := stuckMaxRate * stuckWindow.Seconds(); requests >= limit {
		t.Errorf("%v configmap requests in %s while %d copies are stuck, want fewer than %v (backoff, not a poll)", requests, stuckWindow, objects, limit)
	}
	for _, name := range names {
		u, err := up.CoreV1().ConfigMaps("stuck").Get(ctx, name, metav1.GetOptions{})
		if err != nil || u.DeletionTimestamp == nil || !containsString(u.Finalizers, workloadv1alpha1.SyncerFinalizerName(se.stKey)) {
			t.Fatalf("upstream %s must wait for its copy (terminating, finalizer kept): %+v %v", name, u, err)
		}
	}

	// The foreign finalizer goes: the downstream delete events complete the removals.
	for _, name := range names {
		setConfigMapFinalizers(t, down, dns, name, nil)
	}
	for _, name := range names {
		eventually(t, 30*time.Second, "upstream ConfigMap stuck/"+name+" was not released once its copy went", func(ctx context.Context) (bool, error) {
			_, err := up.CoreV1().ConfigMaps("stuck").Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
	}
	eventually(t, 30*time.Second, "the stuck-deletions gauge did not return to 0", func(ctx context.Context) (bool, error) {
		return metricValue(t, sp.MetricsURL, metricStuckDeletions, nil) == 0, nil
	})
}

func setConfigMapFinalizers(t *testing.T, c kubernetes.Interface, ns, name string, finalizers []string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := c.CoreV1().ConfigMaps(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cm.Finalizers = finalizers
		_, err = c.CoreV1().ConfigMaps(ns).Update(t.Context(), cm, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("failed to set the finalizers of downstream ConfigMap %s/%s: %v", ns, name, err)
	}
}

// requestCounts are an apiserver's apiserver_request_total samples for configmaps, every
// verb, keyed by label set.
type requestCounts struct {
	total  float64
	series map[string]float64
}

// configMapRequests reads an apiserver's own request counters for configmaps.
func configMapRequests(t *testing.T, cfg *rest.Config) requestCounts {
	t.Helper()
	m, err := localenv.ScrapeAPIServerMetrics(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	samples := m.Samples("apiserver_request_total")
	if len(samples) == 0 {
		t.Fatalf("%s/metrics has no apiserver_request_total samples", cfg.Host)
	}
	out := requestCounts{series: map[string]float64{}}
	for _, s := range samples {
		if s.Labels["resource"] != "configmaps" {
			continue
		}
		out.total += s.Value
		out.series[localenv.FormatLabels(s.Labels)] += s.Value
	}
	return out
}

// diff lists the series that changed between c and after.
func (c requestCounts) diff(after requestCounts) string {
	var lines []string
	for k, v := range after.series {
		if c.series[k] != v {
			lines = append(lines, fmt.Sprintf("  apiserver_request_total%s %v -> %v", k, c.series[k], v))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
