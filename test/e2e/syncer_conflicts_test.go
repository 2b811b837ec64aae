package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// TestSyncerLeavesUnownedObjectsAlone: a downstream object without the ownership label is
// never touched; the upstream object gets a ResourceConflict Event, the metrics count it,
// and the rest of the namespace keeps syncing.
func TestSyncerLeavesUnownedObjectsAlone(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	se := setupSyncerEnv(t)
	sp := se.startSyncer(t, syncerOptions{})
	labels := se.syncLabels()
	up := se.upstreamKube(t, wsA)
	down := se.downstreamKube(t)

	se.createUpstreamNamespace(t, wsA, "conflict")
	if _, err := up.CoreV1().ConfigMaps("conflict").Create(ctx, labelledConfigMap("first", labels, map[string]string{"n": "1"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	se.waitDownstreamConfigMap(t, wsA, "conflict", "first", 60*time.Second)
	dns := se.downstreamNamespace(t, wsA, "conflict")

	pre, err := down.CoreV1().ConfigMaps(dns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "pre", Labels: map[string]string{"team": "other"}},
		Data:       map[string]string{"owner": "someone-else"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.CoreV1().ConfigMaps("conflict").Create(ctx, labelledConfigMap("pre", labels, map[string]string{"owner": "tmc"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	untouched := configMapUnchanged(down, pre)

	ev := waitEvent(t, up, "conflict", "pre", "ResourceConflict", 30*time.Second)
	t.Logf("conflict Event: %s %s: %s", ev.Type, ev.Reason, ev.Message)
	if ev.Type != corev1.EventTypeWarning {
		t.Errorf("the ResourceConflict Event is of type %q, want %q", ev.Type, corev1.EventTypeWarning)
	}
	if ev.InvolvedObject.Kind != "ConfigMap" || ev.InvolvedObject.Namespace != "conflict" {
		t.Errorf("the ResourceConflict Event is on %s %s/%s, want ConfigMap conflict/pre", ev.InvolvedObject.Kind, ev.InvolvedObject.Namespace, ev.InvolvedObject.Name)
	}
	if err := untouched(ctx); err != nil {
		t.Fatal(err)
	}

	eventually(t, 30*time.Second, "the conflict is not counted in the metrics", func(ctx context.Context) (bool, error) {
		errs := metricValue(t, sp.MetricsURL, metricSyncerErrors, map[string]string{"type": "ResourceConflict"})
		conflicts := metricValue(t, sp.MetricsURL, metricResourceConflicts, nil)
		return errs > 0 && conflicts > 0, nil
	})
	t.Logf("metrics: %s{type=ResourceConflict}=%v %s=%v", metricSyncerErrors,
		metricValue(t, sp.MetricsURL, metricSyncerErrors, map[string]string{"type": "ResourceConflict"}),
		metricResourceConflicts, metricValue(t, sp.MetricsURL, metricResourceConflicts, nil))

	// Other objects of the namespace still sync while the conflict is retried.
	if _, err := up.CoreV1().ConfigMaps("conflict").Create(ctx, labelledConfigMap("after", labels, map[string]string{"n": "2"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	se.waitDownstreamConfigMap(t, wsA, "conflict", "after", 30*time.Second)

	holdFor(t, 10*time.Second, "the pre-existing downstream ConfigMap "+dns+"/pre must be left alone", untouched)
	t.Logf("metrics at the end: %s{type=ResourceConflict}=%v %s=%v", metricSyncerErrors,
		metricValue(t, sp.MetricsURL, metricSyncerErrors, map[string]string{"type": "ResourceConflict"}),
		metricResourceConflicts, metricValue(t, sp.MetricsURL, metricResourceConflicts, nil))
}

// TestSyncerRejectedObjectBacksOff: an object the downstream rejects (quota) gets an Event
// and is retried with backoff, not in a hot loop; other objects keep syncing; once the cause
// is gone the object syncs.
func TestSyncerRejectedObjectBacksOff(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	se := setupSyncerEnv(t)
	sp := se.startSyncer(t, syncerOptions{})
	labels := se.syncLabels()
	up := se.upstreamKube(t, wsA)
	down := se.downstreamKube(t)

	se.createUpstreamNamespace(t, wsA, "quota")
	if _, err := up.CoreV1().ConfigMaps("quota").Create(ctx, labelledConfigMap("first", labels, map[string]string{"n": "1"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	se.waitDownstreamConfigMap(t, wsA, "quota", "first", 60*time.Second)
	dns := se.downstreamNamespace(t, wsA, "quota")

	if _, err := down.CoreV1().ResourceQuotas(dns).Create(ctx, &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "one-service"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceServices: resource.MustParse("1")}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Until the quota controller has computed the usage, admission rejects with "status
	// unknown", which is not what this test is about.
	eventually(t, 60*time.Second, "the ResourceQuota status was not computed downstream", func(ctx context.Context) (bool, error) {
		q, err := down.CoreV1().ResourceQuotas(dns).Get(ctx, "one-service", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		_, hard := q.Status.Hard[corev1.ResourceServices]
		_, used := q.Status.Used[corev1.ResourceServices]
		return hard && used, nil
	})

	for _, name := range []string{"svc-a", "svc-b"} {
		if _, err := up.CoreV1().Services("quota").Create(ctx, labelledService(name, labels), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// Exactly one of them fits; the other gets a QuotaExceeded Event.
	var synced, rejected string
	var ev corev1.Event
	eventually(t, 60*time.Second, "neither a synced service and a QuotaExceeded Event on the other", func(ctx context.Context) (bool, error) {
		synced, rejected = "", ""
		for _, name := range []string{"svc-a", "svc-b"} {
			if _, err := down.CoreV1().Services(dns).Get(ctx, name, metav1.GetOptions{}); err == nil {
				if synced != "" {
					return false, fmt.Errorf("both services synced despite a quota of one service")
				}
				synced = name
				continue
			}
			events, err := eventsFor(ctx, up, "quota", name)
			if err != nil {
				return false, nil
			}
			for _, e := range events {
				if e.Reason == "QuotaExceeded" {
					rejected, ev = name, e
				}
			}
		}
		return synced != "" && rejected != "", nil
	})
	t.Logf("%s synced; %s rejected: %s %s: %s", synced, rejected, ev.Type, ev.Reason, ev.Message)
	if !strings.Contains(strings.ToLower(ev.Message), "quota") {
		t.Errorf("the QuotaExceeded Event does not mention the quota: %q", ev.Message)
	}
	if ev.Type != corev1.EventTypeWarning {
		t.Errorf("the QuotaExceeded Event is of type %q, want %q", ev.Type, corev1.EventTypeWarning)
	}

	// Backoff, not a hot loop: few retries in 10 s, while other objects keep syncing.
	quotaAttempts := map[string]string{"error_type": "QuotaExceeded"}
	first := metricValue(t, sp.MetricsURL, metricRecoveryAttempts, quotaAttempts)
	if first <= 0 {
		t.Fatalf("%s{error_type=QuotaExceeded} is %v after the rejection, want > 0", metricRecoveryAttempts, first)
	}
	windowStart := time.Now()
	if _, err := up.CoreV1().ConfigMaps("quota").Create(ctx, labelledConfigMap("during-backoff", labels, map[string]string{"n": "2"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	se.waitDownstreamConfigMap(t, wsA, "quota", "during-backoff", 15*time.Second)
	t.Logf("ConfigMap created during the backoff synced in %s", time.Since(windowStart).Round(time.Millisecond))
	holdFor(t, 10*time.Second-time.Since(windowStart), "the rejected service must stay rejected while the quota is in place", func(ctx context.Context) error {
		if _, err := down.CoreV1().Services(dns).Get(ctx, rejected, metav1.GetOptions{}); err == nil {
			return fmt.Errorf("%s appeared downstream despite the quota", rejected)
		}
		return nil
	})
	second := metricValue(t, sp.MetricsURL, metricRecoveryAttempts, quotaAttempts)
	window := time.Since(windowStart)
	t.Logf("%s{error_type=QuotaExceeded}: %v → %v in %s", metricRecoveryAttempts, first, second, window.Round(time.Millisecond))
	if second-first > 10 {
		t.Errorf("the rejected service was retried %v times in %s; a backoff allows at most 10", second-first, window.Round(time.Millisecond))
	}

	// Remove the cause: the rejected service syncs (the backoff caps at 30 s).
	if err := down.CoreV1().ResourceQuotas(dns).Delete(ctx, "one-service", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the rejected service "+rejected+" did not sync after the quota was deleted", func(ctx context.Context) (bool, error) {
		s, err := down.CoreV1().Services(dns).Get(ctx, rejected, metav1.GetOptions{})
		return err == nil && s.Labels[workloadv1alpha1.InternalDownstreamClusterLabel] == se.stKey, nil
	})
}
