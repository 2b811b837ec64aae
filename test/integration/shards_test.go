package integration

import (
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/tmc-dev/tmc/pkg/localenv"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
)

// Like kcp's shards, each shard's /clusters/* serves exactly the workspaces stored on it,
// while the environment's front proxy routes to the workspaces of every shard (by path and
// by logical-cluster name).
func TestShardsServeTheirOwnWildcard(t *testing.T) {
	ctx := t.Context()
	env := localenv.StartForTest(t, localenv.Options{
		Workspaces:             []string{wsA},
		Shards:                 []localenv.ShardOptions{{Name: "beta", Workspaces: []string{wsB}}},
		NoWorkspaceControllers: true,
	})
	if got := env.Workspace(wsB).Shard; got != "beta" {
		t.Fatalf("workspace %s is on shard %q, want beta", wsB, got)
	}
	beta := env.Shard("beta")
	if beta == nil || beta.FrontProxy == env.FrontProxy || beta.Etcd == env.Etcd {
		t.Fatal("shard beta has no front proxy and etcd of its own")
	}
	for _, p := range []string{wsA, wsB} {
		ws := env.Workspace(p)
		for _, addr := range []string{p, ws.Name} {
			cfg := env.FrontProxy.BaseConfig(localenv.AdminUser)
			cfg.Host += logicalcluster.ClustersPrefix + addr
			if _, err := kube(t, cfg).CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{GenerateName: "via-" + strings.ReplaceAll(addr, ":", "-") + "-"},
			}, metav1.CreateOptions{}); err != nil {
				t.Fatalf("the front proxy does not route %s: %v", addr, err)
			}
		}
	}
	clustersIn := func(t *testing.T, fp *localenv.FrontProxy) []string {
		cfg := fp.BaseConfig(localenv.AdminUser)
		cfg.Host += logicalcluster.ClustersPrefix + "*"
		list, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, cm := range list.Items {
			if strings.HasPrefix(cm.Name, "via-") {
				seen[logicalcluster.NameFrom(cm.Annotations)] = true
			}
		}
		var out []string
		for c := range seen {
			out = append(out, c)
		}
		sort.Strings(out)
		return out
	}
	if got := clustersIn(t, env.FrontProxy); len(got) != 1 || got[0] != env.Workspace(wsA).Name {
		t.Errorf("the root shard's wildcard lists the ConfigMaps of %v, want only %s", got, env.Workspace(wsA).Name)
	}
	if got := clustersIn(t, beta.FrontProxy); len(got) != 1 || got[0] != env.Workspace(wsB).Name {
		t.Errorf("shard beta's wildcard lists the ConfigMaps of %v, want only %s", got, env.Workspace(wsB).Name)
	}
}
