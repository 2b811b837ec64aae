package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// TestSyncerRestartIssuesNoWrites restarts a syncer that has 500 objects in sync and checks,
// from both apiservers' own request counters, that the restart writes nothing to the synced
// objects or their namespaces, and that nothing changes downstream.
func TestSyncerRestartIssuesNoWrites(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	se := setupSyncerEnv(t)
	sp := se.startSyncer(t, syncerOptions{})

	const n, ns = 500, "bulk"
	se.createUpstreamNamespace(t, wsA, ns)
	up := se.upstreamKube(t, wsA)
	down := se.downstreamKube(t)
	dns := se.downstreamNamespace(t, wsA, ns)
	names := indexedNames("cm", n)
	began := time.Now()
	if err := createConfigMaps(ctx, up, ns, names, se.syncLabels(), 8); err != nil {
		t.Fatal(err)
	}
	t.Logf("created %d ConfigMaps upstream in %s", n, time.Since(began).Round(time.Millisecond))

	finalizer := workloadv1alpha1.SyncerFinalizerName(se.stKey)
	localenv.Eventually(t, time.Second, 3*time.Minute, fmt.Sprintf("%d ConfigMaps synced down with the syncer finalizer upstream", n), func(ctx context.Context) (bool, string, error) {
		got, err := down.CoreV1().ConfigMaps(dns).List(ctx, metav1.ListOptions{LabelSelector: se.ownershipSelector()})
		if err != nil {
			return false, err.Error(), nil
		}
		if len(got.Items) < n {
			return false, fmt.Sprintf("%d/%d downstream", len(got.Items), n), nil
		}
		ups, err := up.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: se.syncSelector()})
		if err != nil {
			return false, err.Error(), nil
		}
		without := 0
		for _, cm := range ups.Items {
			if !containsString(cm.Finalizers, finalizer) {
				without++
			}
		}
		return without == 0, fmt.Sprintf("%d downstream, %d upstream without finalizer", len(got.Items), without), nil
	})
	t.Logf("all %d ConfigMaps in sync %s after the first create", n, time.Since(began).Round(time.Millisecond))

	upstreamAS := se.env.Workspace(wsA).APIServer.AdminConfig()
	downstreamAS := se.cluster.APIServer.AdminConfig()
	// Let the initial sync settle: the write counters of both apiservers must stand still
	// before the baseline is taken.
	waitStable(t, 90*time.Second, 5*time.Second, "apiserver write counters to settle after the initial sync", func(ctx context.Context) (string, error) {
		u, err := scrapeWrites(ctx, upstreamAS)
		if err != nil {
			return "", err
		}
		d, err := scrapeWrites(ctx, downstreamAS)
		if err != nil {
			return "", err
		}
		return u.String() + "|" + d.String(), nil
	})
	rvBefore, nsRVBefore := downstreamResourceVersions(t, down, dns, se.ownershipSelector())
	if len(rvBefore) != n {
		t.Fatalf("expected %d synced ConfigMaps downstream, found %d", n, len(rvBefore))
	}
	upBefore, err := scrapeWrites(ctx, upstreamAS)
	if err != nil {
		t.Fatal(err)
	}
	downBefore, err := scrapeWrites(ctx, downstreamAS)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("baseline writes: workspace apiserver configmaps=%v namespaces=%v; physical cluster apiserver configmaps=%v namespaces=%v",
		upBefore.total("configmaps"), upBefore.total("namespaces"), downBefore.total("configmaps"), downBefore.total("namespaces"))
	t.Logf("baseline write series of apiserver_request_total, workspace apiserver:\n%sphysical cluster apiserver:\n%s", upBefore, downBefore)

	restartBegan := time.Now()
	sp.restart(t)
	t.Logf("syncer restarted and ready in %s", time.Since(restartBegan).Round(time.Millisecond))

	// The restarted syncer re-processes every object; each one must end as a skipped write.
	skipped := waitStable(t, 3*time.Minute, 6*time.Second, fmt.Sprintf("syncer_skipped_writes_total{direction=\"down\"} to reach %d and stop growing", n), func(ctx context.Context) (string, error) {
		m, err := sp.Metrics(ctx)
		if err != nil {
			return "", err
		}
		v := m.Sum("syncer_skipped_writes_total", map[string]string{"direction": "down"})
		if v < n {
			return "", fmt.Errorf("only %v skipped writes so far", v)
		}
		return fmt.Sprint(v), nil
	})
	t.Logf("restarted syncer processed everything %s after the restart: syncer_skipped_writes_total{direction=\"down\"}=%s, its own write counters: downstream=%v upstream=%v",
		time.Since(restartBegan).Round(time.Millisecond), skipped,
		metricValue(t, sp.MetricsURL, "syncer_downstream_writes_total", nil), metricValue(t, sp.MetricsURL, "syncer_upstream_writes_total", nil))

	upAfter, err := scrapeWrites(ctx, upstreamAS)
	if err != nil {
		t.Fatal(err)
	}
	downAfter, err := scrapeWrites(ctx, downstreamAS)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("writes after the restart: workspace apiserver configmaps=%v namespaces=%v; physical cluster apiserver configmaps=%v namespaces=%v",
		upAfter.total("configmaps"), upAfter.total("namespaces"), downAfter.total("configmaps"), downAfter.total("namespaces"))
	for _, side := range []struct {
		name          string
		before, after writeCounts
	}{{"workspace " + wsA + " apiserver", upBefore, upAfter}, {"physical cluster apiserver", downBefore, downAfter}} {
		for _, res := range []string{"configmaps", "namespaces"} {
			if b, a := side.before.total(res), side.after.total(res); a != b {
				t.Errorf("the syncer restart caused %v write requests to %s on the %s (%v before, %v after); changed series:\n%s",
					a-b, res, side.name, b, a, side.before.diff(side.after, res))
			}
		}
	}

	rvAfter, nsRVAfter := downstreamResourceVersions(t, down, dns, se.ownershipSelector())
	if nsRVAfter != nsRVBefore {
		t.Errorf("downstream namespace %s changed: resourceVersion %s -> %s", dns, nsRVBefore, nsRVAfter)
	}
	changed := 0
	for name, rv := range rvBefore {
		switch after, ok := rvAfter[name]; {
		case !ok:
			t.Errorf("downstream ConfigMap %s/%s disappeared", dns, name)
		case after != rv:
			changed++
			if changed <= 10 {
				t.Errorf("downstream ConfigMap %s/%s changed: resourceVersion %s -> %s", dns, name, rv, after)
			}
		}
	}
	if changed > 0 {
		t.Errorf("%d of %d downstream ConfigMaps changed across the restart", changed, n)
	}
	if len(rvAfter) != len(rvBefore) {
		t.Errorf("downstream holds %d synced ConfigMaps after the restart, %d before", len(rvAfter), len(rvBefore))
	}
}

// TestSyncerSurvivesUpstreamPartition cuts the syncer off from the control plane for 30 s:
// nothing may be deleted downstream, and the changes made upstream meanwhile must converge
// after the partition heals.
func TestSyncerSurvivesUpstreamPartition(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	se := setupSyncerEnv(t)
	fp, err := se.env.NewFaultProxy(strings.TrimPrefix(se.env.FrontProxy.URL, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := se.env.UpstreamConfig(syncerUser)
	cfg.Host = "https://" + fp.Addr
	sp := se.startSyncer(t, syncerOptions{upstream: cfg})

	const ns = "part"
	se.createUpstreamNamespace(t, wsA, ns)
	up := se.upstreamKube(t, wsA)
	down := se.downstreamKube(t)
	dns := se.downstreamNamespace(t, wsA, ns)
	names := indexedNames("cm", 20)
	if err := createConfigMaps(ctx, up, ns, names, se.syncLabels(), 4); err != nil {
		t.Fatal(err)
	}
	finalizer := workloadv1alpha1.SyncerFinalizerName(se.stKey)
	localenv.Eventually(t, 500*time.Millisecond, 90*time.Second, "20 ConfigMaps synced down with the syncer finalizer upstream", func(ctx context.Context) (bool, string, error) {
		have, err := downstreamConfigMaps(ctx, down, dns, se.ownershipSelector())
		if err != nil {
			return false, err.Error(), nil
		}
		ups, err := up.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: se.syncSelector()})
		if err != nil {
			return false, err.Error(), nil
		}
		without := 0
		for _, cm := range ups.Items {
			if !containsString(cm.Finalizers, finalizer) {
				without++
			}
		}
		return len(have) == len(names) && without == 0, fmt.Sprintf("%d downstream, %d upstream without finalizer", len(have), without), nil
	})

	tc := tmcClient(t, se.env.Workspace(locationWS).AdminConfig())
	heartbeat := func(ctx context.Context) (time.Time, error) {
		st, err := tc.WorkloadV1alpha1().SyncTargets().Get(ctx, clusterName, metav1.GetOptions{})
		if err != nil {
			return time.Time{}, err
		}
		if st.Status.LastSyncerHeartbeatTime == nil {
			return time.Time{}, nil
		}
		return st.Status.LastSyncerHeartbeatTime.Time, nil
	}
	localenv.Eventually(t, 500*time.Millisecond, 30*time.Second, "a first heartbeat", func(ctx context.Context) (bool, string, error) {
		hb, err := heartbeat(ctx)
		return err == nil && !hb.IsZero(), fmt.Sprintf("heartbeat %v, err %v", hb, err), nil
	})

	// Partition, and change things upstream behind the syncer's back.
	const partition = 30 * time.Second
	fp.Partition()
	partStart := time.Now()
	t.Logf("partitioned the syncer from the front proxy (%d connections frozen)", fp.OpenConnections())
	updated, created, deleted := names[:5], indexedNames("new", 5), names[18:]
	changesMade := false
	vanished := map[string]time.Duration{}
	ticker := time.NewTicker(time.Second)
	for time.Since(partStart) < partition {
		select {
		case <-ctx.Done():
			ticker.Stop()
			t.Fatal(ctx.Err())
		case <-ticker.C:
		}
		have, err := downstreamConfigMaps(ctx, down, dns, "")
		if err != nil {
			t.Logf("listing downstream ConfigMaps during the partition failed: %v", err)
			continue
		}
		for _, name := range names {
			if _, ok := have[name]; !ok {
				if _, seen := vanished[name]; !seen {
					vanished[name] = time.Since(partStart)
				}
			}
		}
		if !changesMade && time.Since(partStart) >= 3*time.Second {
			changesMade = true
			changeAt := time.Now()
			for _, name := range updated {
				if err := updateConfigMap(ctx, up, ns, name, func(cm *corev1.ConfigMap) { cm.Data["value"] = "updated-during-partition" }); err != nil {
					t.Fatal(err)
				}
			}
			if err := createConfigMaps(ctx, up, ns, created, se.syncLabels(), 1); err != nil {
				t.Fatal(err)
			}
			for _, name := range deleted {
				if err := up.CoreV1().ConfigMaps(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
					t.Fatalf("failed to delete upstream ConfigMap %s: %v", name, err)
				}
			}
			t.Logf("during the partition (at +%s): updated %v, created %v, deleted %v upstream in %s",
				changeAt.Sub(partStart).Round(time.Millisecond), updated, created, deleted, time.Since(changeAt).Round(time.Millisecond))
		}
	}
	ticker.Stop()
	for name, at := range vanished {
		t.Errorf("downstream ConfigMap %s/%s was deleted during the upstream partition (missing at +%s)", dns, name, at.Round(time.Second))
	}
	hbAtHeal, err := heartbeat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if hbAtHeal.After(partStart) {
		t.Errorf("a heartbeat stamped %s reached the control plane during the partition (began %s): the partition did not cut the syncer off",
			hbAtHeal.Format(time.RFC3339), partStart.Format(time.RFC3339Nano))
	}
	if have, err := downstreamConfigMaps(ctx, down, dns, ""); err == nil {
		n := 0
		for _, name := range created {
			if _, ok := have[name]; ok {
				n++
			}
		}
		if n > 0 {
			t.Errorf("%d ConfigMaps created upstream during the partition appeared downstream before the heal: the partition did not cut the syncer off", n)
		}
	}
	failedBeats := metricValue(t, sp.MetricsURL, "syncer_heartbeats_total", map[string]string{"result": "failure"})

	fp.Heal()
	healAt := time.Now()
	t.Logf("healed after %s; the syncer recorded %v failed heartbeats during the partition", healAt.Sub(partStart).Round(time.Millisecond), failedBeats)

	localenv.Eventually(t, 200*time.Millisecond, 60*time.Second, "downstream to converge after the heal", func(ctx context.Context) (bool, string, error) {
		have, err := downstreamConfigMaps(ctx, down, dns, "")
		if err != nil {
			return false, err.Error(), nil
		}
		var problems []string
		for _, name := range updated {
			if cm, ok := have[name]; !ok || cm.Data["value"] != "updated-during-partition" {
				problems = append(problems, name+" not updated")
			}
		}
		for _, name := range created {
			if cm, ok := have[name]; !ok || cm.Data["name"] != name {
				problems = append(problems, name+" missing")
			}
		}
		for _, name := range names[5:18] {
			if _, ok := have[name]; !ok {
				problems = append(problems, name+" deleted")
			}
		}
		for _, name := range deleted {
			if _, ok := have[name]; ok {
				problems = append(problems, name+" still downstream")
			}
			if _, err := up.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				problems = append(problems, name+" still upstream")
			}
		}
		return len(problems) == 0, strings.Join(problems, ", "), nil
	})
	convergence := time.Since(healAt)
	t.Logf("downstream converged %s after the heal", convergence.Round(time.Millisecond))
	if convergence > 30*time.Second {
		t.Logf("MISSED TARGET: recovery after the upstream partition took %s, the target is < 30 s", convergence.Round(time.Millisecond))
	}

	healSecond := healAt.Truncate(time.Second).Add(time.Second)
	localenv.Eventually(t, 500*time.Millisecond, 30*time.Second, "the heartbeat to advance after the heal", func(ctx context.Context) (bool, string, error) {
		hb, err := heartbeat(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		return !hb.Before(healSecond), "lastSyncerHeartbeatTime " + hb.Format(time.RFC3339), nil
	})
	hb, _ := heartbeat(ctx)
	t.Logf("heartbeats resumed: lastSyncerHeartbeatTime %s (was %s at the heal, heal at %s)",
		hb.Format(time.RFC3339), hbAtHeal.Format(time.RFC3339), healAt.Format(time.RFC3339Nano))
}
