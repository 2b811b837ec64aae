package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// restartObjects is how many ConfigMaps the restart test creates, over four namespaces.
const restartObjects = 200

// viewNamespace is a placed upstream namespace, its downstream namespace and the names of
// its ConfigMaps.
type viewNamespace struct {
	ws, ns, downstream string
	upstream           kubernetes.Interface
	names              []string
}

// Issue 13, acceptance 5: the virtual-workspace server restarted while the syncer syncs
// 200 ConfigMaps of two workspaces. The syncer reconnects and everything arrives; it
// deletes nothing downstream and nothing it had synced disappears; the upstream gets one
// finalizer write per object (no duplicates after the relist). The convergence time after
// the restart is logged.
func TestVirtualWorkspaceServerRestartMidSync(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ve := setupViewEnv(t, viewEnvOptions{})
	ve.startController(t)
	syncer := ve.startSyncer(t, clusterName)
	down := kubeClient(t, ve.env.Cluster(clusterName).AdminConfig())
	selector := ve.ownershipSelector(clusterName)
	deletions := watchDownstreamDeletions(t, down, selector)

	var nss []*viewNamespace
	for _, ws := range []string{wsA, wsB} {
		for range 2 {
			vn := &viewNamespace{ws: ws, ns: fmt.Sprintf("restart-%d", len(nss)+1), upstream: kubeClient(t, ve.env.Workspace(ws).AdminConfig())}
			vn.downstream = ve.downstreamNamespace(t, clusterName, ws, vn.ns)
			ve.placeNamespace(t, ws, vn.ns, clusterName)
			nss = append(nss, vn)
		}
	}
	for i, name := range indexedNames("cm", restartObjects) {
		nss[i%len(nss)].names = append(nss[i%len(nss)].names, name)
	}
	// The first half is created at once and the server restarted while the syncer works
	// through it; the second half is created once the server is back, so that it can only
	// arrive through a reconnected view.
	half := func(second bool) map[*viewNamespace][]string {
		out := map[*viewNamespace][]string{}
		for _, vn := range nss {
			n := len(vn.names) / 2
			if second {
				out[vn] = vn.names[n:]
			} else {
				out[vn] = vn.names[:n]
			}
		}
		return out
	}
	createErr := make(chan error, 1)
	go func() { createErr <- ve.createBatch(ctx, half(false)) }()
	var before int
	eventually(t, 120*time.Second, "a third of the first half downstream", func(ctx context.Context) (bool, error) {
		list, err := down.CoreV1().ConfigMaps(metav1.NamespaceAll).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err
		}
		before = len(list.Items)
		return before >= restartObjects/6, nil
	})
	if before >= restartObjects/2 {
		t.Fatalf("the whole first half (%d ConfigMaps) was downstream before the restart: it did not come mid-sync", before)
	}
	pid := syncer.Pid()
	restarting := time.Now()
	if err := ve.servers[0].RestartAndWait(ctx, 10*time.Second, 0); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	atReady, err := down.CoreV1().ConfigMaps(metav1.NamespaceAll).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the virtual-workspace server restarted with %d of the first %d ConfigMaps downstream; down and back ready in %s, %d downstream then",
		before, restartObjects/2, restarted.Sub(restarting).Round(time.Millisecond), len(atReady.Items))
	if err := <-createErr; err != nil {
		t.Fatal(err)
	}
	if err := ve.createBatch(ctx, half(true)); err != nil {
		t.Fatal(err)
	}

	ve.waitConverged(t, 180*time.Second, down, nss, "every ConfigMap downstream with its data and one syncer finalizer upstream")
	t.Logf("converged %s after the restart began, %s after the server was ready again",
		time.Since(restarting).Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
	if got := syncer.Pid(); got != pid || !syncer.Running() {
		t.Errorf("the syncer's pid went from %d to %d (running %v): it must reconnect, not restart", pid, got, syncer.Running())
	}
	// The syncer reconnected to the restarted server: the second half's finalizers went
	// through it, and its ConfigMap watch is open there.
	vwMetrics := ve.servers[0].MetricsURL
	eventually(t, 60*time.Second, "the syncer's ConfigMap watch open on the restarted server", func(ctx context.Context) (bool, error) {
		return scrape(t, ctx, vwMetrics).Sum("tmc_virtualworkspace_open_watches", map[string]string{"resource": "configmaps"}) >= 1, nil
	})
	if n := metricValue(t, vwMetrics, "tmc_virtualworkspace_requests_total", map[string]string{"verb": "patch", "resource": "configmaps"}); n < restartObjects/2 {
		t.Errorf("the restarted server served %v ConfigMap patches, want at least the second half's %d finalizers", n, restartObjects/2)
	}
	if got := deletions(); len(got) > 0 {
		t.Errorf("downstream objects deleted: %s", firstFew(got, 10))
	}
	m := scrape(t, ctx, syncer.MetricsURL)
	for _, op := range []string{"delete", "delete_namespace"} {
		if n := m.Sum("syncer_downstream_writes_total", map[string]string{"operation": op}); n != 0 {
			t.Errorf("syncer_downstream_writes_total{operation=%q} = %v, want 0", op, n)
		}
	}
	// The finalizer patches are the only writes to ConfigMaps upstream besides our creates:
	// counted by the workspace apiservers, a patch applied whose answer the restart lost
	// counts too.
	var patches float64
	for _, ws := range []string{wsA, wsB} {
		w, err := scrapeWrites(ctx, ve.env.Workspace(ws).APIServer.AdminConfig())
		if err != nil {
			t.Fatal(err)
		}
		patches += w.verb("configmaps", "PATCH")
	}
	t.Logf("upstream ConfigMap patches %v (syncer patch_finalizer %v), downstream applies %v, skipped writes down %v",
		patches, m.Sum("syncer_upstream_writes_total", map[string]string{"operation": "patch_finalizer"}),
		m.Sum("syncer_downstream_writes_total", map[string]string{"operation": "apply"}),
		m.Sum("syncer_skipped_writes_total", map[string]string{"direction": "down"}))
	if patches != restartObjects {
		t.Errorf("%v ConfigMap patches upstream, want %d: one finalizer write per object", patches, restartObjects)
	}
}

// waitConverged waits until every ConfigMap of nss is downstream with its upstream data
// and carries our one finalizer upstream.
func (ve *viewEnv) waitConverged(t *testing.T, timeout time.Duration, down kubernetes.Interface, nss []*viewNamespace, what string) {
	t.Helper()
	localenv.Eventually(t, 200*time.Millisecond, timeout, what, func(ctx context.Context) (bool, string, error) {
		return ve.converged(ctx, down, nss)
	})
}

// createBatch creates the given ConfigMaps of every namespace, the namespaces in parallel.
func (ve *viewEnv) createBatch(ctx context.Context, batch map[*viewNamespace][]string) error {
	errs := make(chan error, len(batch))
	for vn, names := range batch {
		go func() { errs <- createConfigMaps(ctx, vn.upstream, vn.ns, names, ve.syncLabels(clusterName), 1) }()
	}
	var all []error
	for range batch {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// converged says whether every ConfigMap of nss is downstream with its upstream data and
// carries exactly one syncer finalizer, ours, upstream.
func (ve *viewEnv) converged(ctx context.Context, down kubernetes.Interface, nss []*viewNamespace) (bool, string, error) {
	finalizer := workloadv1alpha1.SyncerFinalizerName(ve.targets[clusterName].key)
	var problems []string
	for _, vn := range nss {
		list, err := vn.upstream.CoreV1().ConfigMaps(vn.ns).List(ctx, metav1.ListOptions{LabelSelector: labels.Set(ve.syncLabels(clusterName)).String()})
		if err != nil {
			return false, err.Error(), nil
		}
		upstreamData := map[string]map[string]string{}
		for _, cm := range list.Items {
			upstreamData[cm.Name] = cm.Data
			if syncerFinalizers(cm.Finalizers) != 1 || !containsString(cm.Finalizers, finalizer) {
				problems = append(problems, fmt.Sprintf("%s/%s finalizers %v", vn.ns, cm.Name, cm.Finalizers))
			}
		}
		copies, err := downstreamConfigMaps(ctx, down, vn.downstream, ve.ownershipSelector(clusterName))
		if err != nil {
			return false, err.Error(), nil
		}
		if ok, msg, _ := compareData(upstreamData, copies, vn.names); !ok {
			problems = append(problems, vn.ns+": "+msg)
		}
	}
	return len(problems) == 0, firstFew(problems, 5), nil
}

// watchDownstreamDeletions watches the downstream ConfigMaps and namespaces selected by
// selector until the test ends; the returned function lists those deleted so far, and
// fails the test if a watch ended early (a deletion could have gone unseen).
func watchDownstreamDeletions(t *testing.T, down kubernetes.Interface, selector string) func() []string {
	t.Helper()
	ctx := t.Context()
	var (
		mu      sync.Mutex
		deleted []string
		ended   []string
	)
	opts := metav1.ListOptions{LabelSelector: selector}
	cms, err := down.CoreV1().ConfigMaps(metav1.NamespaceAll).Watch(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	nss, err := down.CoreV1().Namespaces().Watch(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	for kind, w := range map[string]watch.Interface{"ConfigMap": cms, "Namespace": nss} {
		t.Cleanup(w.Stop)
		go func() {
			for ev := range w.ResultChan() {
				m, ok := ev.Object.(metav1.Object)
				if ev.Type != watch.Deleted || !ok {
					continue
				}
				mu.Lock()
				deleted = append(deleted, kind+" "+m.GetNamespace()+"/"+m.GetName())
				mu.Unlock()
			}
			mu.Lock()
			ended = append(ended, kind)
			mu.Unlock()
		}()
	}
	return func() []string {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if len(ended) > 0 {
			t.Errorf("the downstream watch of %s ended before the check: deletions may have gone unseen", strings.Join(ended, ", "))
		}
		return append([]string(nil), deleted...)
	}
}

// verb sums the samples of resource with the given verb.
func (w writeCounts) verb(resource, verb string) float64 {
	var sum float64
	for k, v := range w {
		if strings.Contains(k, fmt.Sprintf("resource=%q", resource)) && strings.Contains(k, fmt.Sprintf("verb=%q", verb)) {
			sum += v
		}
	}
	return sum
}
