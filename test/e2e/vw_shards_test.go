package e2e

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/tmc-dev/tmc/pkg/localenv"
)

// partitionFor is how long the second shard's view stays cut.
const partitionFor = 30 * time.Second

// Issue 13, acceptance 6: wsA on the root shard and wsB on a second shard, one
// virtual-workspace server per shard, one syncer following both views. With the second
// shard's view partitioned for 30 s, wsA keeps syncing and nothing of wsB is deleted
// downstream; after the heal, the changes made in wsB during the partition arrive.
func TestVirtualWorkspaceTwoShardsPartition(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ve := setupViewEnv(t, viewEnvOptions{tweak: func(o *localenv.Options) {
		o.Workspaces = []string{locationWS, wsA}
		o.Shards = []localenv.ShardOptions{{Name: "beta", Workspaces: []string{wsB}}}
	}})
	if len(ve.servers) != 2 {
		t.Fatalf("%d virtual-workspace servers, want one per shard (2)", len(ve.servers))
	}
	proxy := ve.partitionableServer(t, 1)
	ve.startController(t)
	syncer := ve.startSyncer(t, clusterName)
	down := kubeClient(t, ve.env.Cluster(clusterName).AdminConfig())
	deletions := watchDownstreamDeletions(t, down, ve.ownershipSelector(clusterName))

	byWS := map[string]*viewNamespace{}
	var nss []*viewNamespace
	for _, ws := range []string{wsA, wsB} {
		vn := &viewNamespace{ws: ws, ns: "app", upstream: kubeClient(t, ve.env.Workspace(ws).AdminConfig()), names: indexedNames("cm", 10)}
		vn.downstream = ve.downstreamNamespace(t, clusterName, ws, vn.ns)
		ve.placeNamespace(t, ws, vn.ns, clusterName)
		if err := createConfigMaps(ctx, vn.upstream, vn.ns, vn.names, ve.syncLabels(clusterName), 2); err != nil {
			t.Fatal(err)
		}
		byWS[ws] = vn
		nss = append(nss, vn)
	}
	ve.waitConverged(t, 120*time.Second, down, nss, "both shards' ConfigMaps synced by the one syncer")

	pid := syncer.Pid()
	proxy.Partition()
	partitioned := time.Now()
	t.Logf("the second shard's view partitioned")
	a, b := byWS[wsA], byWS[wsB]
	a.names = append(a.names, "during-partition")
	if err := createConfigMaps(ctx, a.upstream, a.ns, []string{"during-partition"}, ve.syncLabels(clusterName), 1); err != nil {
		t.Fatal(err)
	}
	b.names = append(b.names, "during-partition")
	if err := createConfigMaps(ctx, b.upstream, b.ns, []string{"during-partition"}, ve.syncLabels(clusterName), 1); err != nil {
		t.Fatal(err)
	}
	if err := updateConfigMap(ctx, b.upstream, b.ns, "cm-000", func(cm *corev1.ConfigMap) { cm.Data["value"] = "changed-during-partition" }); err != nil {
		t.Fatal(err)
	}
	ve.waitConverged(t, 120*time.Second, down, []*viewNamespace{a}, "wsA's new ConfigMap downstream during the partition")
	if !proxy.Partitioned() {
		t.Fatal("the partition ended early")
	}
	// Until the partition has lasted partitionFor: wsB's copies all stay, and its changes
	// do not arrive (the view is really cut).
	for time.Since(partitioned) < partitionFor {
		copies, err := downstreamConfigMaps(ctx, down, b.downstream, ve.ownershipSelector(clusterName))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range b.names[:10] {
			if _, ok := copies[name]; !ok {
				t.Fatalf("wsB's copy %s is gone during the partition", name)
			}
		}
		if _, ok := copies["during-partition"]; ok {
			t.Fatal("wsB's new ConfigMap arrived during the partition: the view was not cut")
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(time.Second):
		}
	}

	proxy.Heal()
	healed := time.Now()
	ve.waitConverged(t, 120*time.Second, down, nss, "wsB's changes made during the partition downstream after the heal")
	t.Logf("converged %s after the heal (partition %s)", time.Since(healed).Round(time.Millisecond), healed.Sub(partitioned).Round(time.Second))
	if got := syncer.Pid(); got != pid || !syncer.Running() {
		t.Errorf("the syncer's pid went from %d to %d (running %v): it must ride out the partition", pid, got, syncer.Running())
	}
	if got := deletions(); len(got) > 0 {
		t.Errorf("downstream objects deleted: %s", firstFew(got, 10))
	}
	for _, op := range []string{"delete", "delete_namespace"} {
		if n := metricValue(t, syncer.MetricsURL, "syncer_downstream_writes_total", map[string]string{"operation": op}); n != 0 {
			t.Errorf("syncer_downstream_writes_total{operation=%q} = %v, want 0", op, n)
		}
	}
}
