package e2e

import (
	"context"
	"fmt"
	"net/http"
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
		ups, err := up.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
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
		ups, err := up.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
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

// TestSyncerDownstreamRestartMidSync restarts the physical cluster's apiserver while the
// syncer is syncing 200 objects; all of them must end up downstream and correct.
func TestSyncerDownstreamRestartMidSync(t *testing.T) {
	ctx := t.Context()
	se := setupSyncerEnv(t)
	sp := se.startSyncer(t, syncerOptions{})

	const n, ns = 200, "restart"
	se.createUpstreamNamespace(t, wsA, ns)
	up := se.upstreamKube(t, wsA)
	down := se.downstreamKube(t)
	dns := se.downstreamNamespace(t, wsA, ns)
	names := indexedNames("cm", n)

	createErr := make(chan error, 1)
	go func() { createErr <- createConfigMaps(ctx, up, ns, names, se.syncLabels(), 8) }()

	var atRestart int
	localenv.Eventually(t, 100*time.Millisecond, 90*time.Second, "20 ConfigMaps downstream before the apiserver restart", func(ctx context.Context) (bool, string, error) {
		have, err := downstreamConfigMaps(ctx, down, dns, se.ownershipSelector())
		if err != nil {
			return false, err.Error(), nil
		}
		atRestart = len(have)
		return atRestart >= 20, fmt.Sprintf("%d downstream", atRestart), nil
	})
	restartBegan := time.Now()
	if err := se.cluster.APIServer.Restart(ctx); err != nil {
		t.Fatalf("failed to restart the physical cluster's apiserver: %v", err)
	}
	restarted := time.Now()
	t.Logf("restarted the physical cluster's apiserver with %d/%d ConfigMaps downstream; it was back after %s",
		atRestart, n, restarted.Sub(restartBegan).Round(time.Millisecond))
	if atRestart >= n {
		t.Logf("warning: every ConfigMap was already downstream when the restart began")
	}
	if err := <-createErr; err != nil {
		t.Fatal(err)
	}

	var upstreamData map[string]map[string]string
	localenv.Eventually(t, time.Second, 90*time.Second, fmt.Sprintf("all %d ConfigMaps downstream with the upstream data", n), func(ctx context.Context) (bool, string, error) {
		if upstreamData == nil {
			ups, err := up.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			upstreamData = map[string]map[string]string{}
			for _, cm := range ups.Items {
				upstreamData[cm.Name] = cm.Data
			}
		}
		have, err := downstreamConfigMaps(ctx, down, dns, se.ownershipSelector())
		if err != nil {
			return false, err.Error(), nil
		}
		return compareData(upstreamData, have, names)
	})
	recovery := time.Since(restarted)
	t.Logf("all %d ConfigMaps correct downstream %s after the apiserver came back", n, recovery.Round(time.Millisecond))
	t.Logf("syncer errors during the restart:\n%s", scrape(t, ctx, sp.MetricsURL).Series("syncer_errors_total"))
	if recovery > 30*time.Second {
		t.Logf("MISSED TARGET: recovery after the downstream apiserver restart took %s, the target is < 30 s", recovery.Round(time.Millisecond))
	}

	// The syncer keeps working after the restart: updates arrive.
	updated := names[:10]
	for _, name := range updated {
		if err := updateConfigMap(ctx, up, ns, name, func(cm *corev1.ConfigMap) { cm.Data["value"] = "updated-after-restart" }); err != nil {
			t.Fatal(err)
		}
	}
	updateAt := time.Now()
	localenv.Eventually(t, 200*time.Millisecond, 60*time.Second, "updates made after the restart to reach downstream", func(ctx context.Context) (bool, string, error) {
		have, err := downstreamConfigMaps(ctx, down, dns, se.ownershipSelector())
		if err != nil {
			return false, err.Error(), nil
		}
		var missing []string
		for _, name := range updated {
			if have[name] == nil || have[name].Data["value"] != "updated-after-restart" {
				missing = append(missing, name)
			}
		}
		return len(missing) == 0, "not updated: " + strings.Join(missing, ", "), nil
	})
	t.Logf("10 updates arrived downstream %s after they were made", time.Since(updateAt).Round(time.Millisecond))
}

// TestSyncerReadyzFollowsDownstream checks the metrics after a sync, and that /readyz fails
// while the physical cluster is unreachable and recovers once it is reachable again.
func TestSyncerReadyzFollowsDownstream(t *testing.T) {
	ctx := t.Context()
	se := setupSyncerEnv(t)
	fp, err := se.env.NewFaultProxy(strings.TrimPrefix(se.cluster.APIServer.URL, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	downCfg := se.cluster.Config(syncerUser)
	downCfg.Host = "https://" + fp.Addr
	sp := se.startSyncer(t, syncerOptions{downstream: downCfg})

	const ns = "obs"
	se.createUpstreamNamespace(t, wsA, ns)
	up := se.upstreamKube(t, wsA)
	down := se.downstreamKube(t)
	dns := se.downstreamNamespace(t, wsA, ns)
	if err := createConfigMaps(ctx, up, ns, indexedNames("cm", 3), se.syncLabels(), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := up.AppsV1().Deployments(ns).Create(ctx, deployment("web", 1, se.syncLabels()), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	localenv.Eventually(t, 500*time.Millisecond, 90*time.Second, "the upstream Deployment to report 1 ready replica", func(ctx context.Context) (bool, string, error) {
		d, err := up.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		return d.Status.ReadyReplicas == 1, fmt.Sprintf("status %+v", d.Status), nil
	})
	have, err := downstreamConfigMaps(ctx, down, dns, se.ownershipSelector())
	if err != nil || len(have) != 3 {
		t.Fatalf("expected the 3 ConfigMaps downstream, found %d (%v)", len(have), err)
	}

	metrics := scrape(t, ctx, sp.MetricsURL)
	checks := []struct {
		metric string
		labels map[string]string
		min    float64
	}{
		{"syncer_resources_synced_total", map[string]string{"direction": "down", "workspace": wsA}, 4},
		{"syncer_resources_synced_total", map[string]string{"direction": "down", "workspace": wsA, "gvk": "configmaps/v1", "cluster": clusterName}, 3},
		{"syncer_resources_synced_total", map[string]string{"direction": "down", "workspace": wsA, "gvk": "deployments.apps/v1"}, 1},
		{"syncer_resources_synced_total", map[string]string{"direction": "up"}, 1},
		{"syncer_resources_synced_total", map[string]string{"direction": "up", "workspace": wsA, "gvk": "deployments.apps/v1"}, 1},
		{"syncer_sync_duration_seconds_count", nil, 1},
		{"syncer_end_to_end_latency_seconds_count", map[string]string{"direction": "down"}, 4},
		{"syncer_end_to_end_latency_seconds_count", map[string]string{"direction": "up"}, 1},
		{"syncer_heartbeats_total", map[string]string{"result": "success"}, 1},
		{"workqueue_adds_total", map[string]string{"name": "spec"}, 1},
	}
	for _, c := range checks {
		v := metrics.Sum(c.metric, c.labels)
		t.Logf("%s%s = %v", c.metric, localenv.FormatLabels(c.labels), v)
		if v < c.min {
			t.Errorf("%s%s = %v, want >= %v; exposed series:\n%s", c.metric, localenv.FormatLabels(c.labels), v, c.min, metrics.Series(c.metric))
		}
	}
	if v := metrics.Sum("syncer_resources_synced_total", map[string]string{"workspace": wsB}); v != 0 {
		t.Errorf("syncer_resources_synced_total{workspace=%q} = %v, want 0: nothing was created there", wsB, v)
	}

	// Cut the syncer off from the physical cluster.
	fp.Partition()
	partStart := time.Now()
	localenv.Eventually(t, 500*time.Millisecond, 20*time.Second, "/readyz to fail while the physical cluster is unreachable", func(ctx context.Context) (bool, string, error) {
		if code, body := httpGet(ctx, sp.HealthURL+"/livez"); code != http.StatusOK {
			t.Errorf("/livez answered %d during the partition (+%s): %s", code, time.Since(partStart).Round(time.Millisecond), body)
		}
		code, body := httpGet(ctx, sp.HealthURL+"/readyz")
		return code != http.StatusOK && code != 0, fmt.Sprintf("/readyz %d %s", code, body), nil
	})
	t.Logf("/readyz failed %s after the partition began", time.Since(partStart).Round(time.Millisecond))
	code, body := httpGet(ctx, sp.HealthURL+"/readyz?verbose")
	t.Logf("/readyz?verbose during the partition: %d\n%s", code, body)
	if code == http.StatusOK || !strings.Contains(body, "[-]"+"cluster-connection failed") {
		t.Errorf("/readyz?verbose during the partition = %d, want a failure naming cluster-connection:\n%s", code, body)
	}
	if strings.Contains(body, "[-]kcp-connection") {
		t.Errorf("/readyz?verbose reports kcp-connection failing, but only the physical cluster is cut off:\n%s", body)
	}
	for range 3 {
		if code, body := httpGet(ctx, sp.HealthURL+"/livez"); code != http.StatusOK {
			t.Errorf("/livez answered %d during the partition: %s", code, body)
		}
	}
	if !sp.Running() {
		t.Fatalf("the syncer exited during the partition: %v", sp.ExitError())
	}

	fp.Heal()
	healAt := time.Now()
	t.Logf("healed after %s", healAt.Sub(partStart).Round(time.Millisecond))
	localenv.Eventually(t, 200*time.Millisecond, 30*time.Second, "/readyz to pass again after the heal", func(ctx context.Context) (bool, string, error) {
		code, body := httpGet(ctx, sp.HealthURL+"/readyz?verbose")
		return code == http.StatusOK, fmt.Sprintf("/readyz %d %s", code, body), nil
	})
	t.Logf("/readyz passed again %s after the heal", time.Since(healAt).Round(time.Millisecond))

	createdAt := time.Now()
	if err := createConfigMaps(ctx, up, ns, []string{"after-heal"}, se.syncLabels(), 1); err != nil {
		t.Fatal(err)
	}
	localenv.Eventually(t, 200*time.Millisecond, 30*time.Second, "a ConfigMap created after the heal to sync down", func(ctx context.Context) (bool, string, error) {
		cm, err := down.CoreV1().ConfigMaps(dns).Get(ctx, "after-heal", metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		return cm.Data["name"] == "after-heal", fmt.Sprintf("data %v", cm.Data), nil
	})
	t.Logf("a ConfigMap created after the heal synced down in %s", time.Since(createdAt).Round(time.Millisecond))
}
