package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tmc-dev/tmc/pkg/localenv"
)

// TestSyncerDownstreamRestartMidSync restarts the physical cluster's apiserver while the
// syncer is syncing 200 objects; all of them must end up downstream and correct.
func TestSyncerDownstreamRestartMidSync(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
