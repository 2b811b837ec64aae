package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// crashObjects is how many ConfigMaps the crash tests create or delete.
const crashObjects = 500

// crashNamespace is one placed upstream namespace of the crash tests, the downstream
// namespace its objects go to, and the names of its ConfigMaps.
type crashNamespace struct {
	ws, ns, downstream string
	upstream           kubernetes.Interface
	names              []string
}

// crashNamespaces creates four upstream namespaces, two in each workload workspace,
// labelled for this SyncTarget as the placement controller labels them, and spreads
// crashObjects ConfigMap names over them.
func (se *syncerEnv) crashNamespaces(t *testing.T) []*crashNamespace {
	t.Helper()
	var out []*crashNamespace
	for _, ws := range []string{wsA, wsB} {
		up := se.upstreamKube(t, ws)
		for range 2 {
			cn := &crashNamespace{ws: ws, ns: fmt.Sprintf("crash-%d", len(out)+1), upstream: up}
			cn.downstream = se.downstreamNamespace(t, ws, cn.ns)
			createNamespace(t, up, cn.ns, se.syncLabels())
			out = append(out, cn)
		}
	}
	for i, name := range indexedNames("cm", crashObjects) {
		cn := out[i%len(out)]
		cn.names = append(cn.names, name)
	}
	return out
}

// createCrashObjects creates every namespace's ConfigMaps, all namespaces at once.
func (se *syncerEnv) createCrashObjects(ctx context.Context, nss []*crashNamespace) error {
	errs := make(chan error, len(nss))
	for _, cn := range nss {
		go func() { errs <- createConfigMaps(ctx, cn.upstream, cn.ns, cn.names, se.syncLabels(), 2) }()
	}
	var all []error
	for range nss {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// ownedDownstream lists the synced ConfigMaps of this SyncTarget in the whole physical
// cluster (not the hub CA copies), by downstream namespace and name.
func (se *syncerEnv) ownedDownstream(ctx context.Context, down kubernetes.Interface) (map[string]map[string]*corev1.ConfigMap, int, error) {
	list, err := down.CoreV1().ConfigMaps(metav1.NamespaceAll).List(ctx, metav1.ListOptions{LabelSelector: se.ownershipSelector()})
	if err != nil {
		return nil, 0, err
	}
	out := map[string]map[string]*corev1.ConfigMap{}
	n := 0
	for i := range list.Items {
		cm := &list.Items[i]
		if cm.Name == hubCAConfigMap {
			continue
		}
		n++
		if out[cm.Namespace] == nil {
			out[cm.Namespace] = map[string]*corev1.ConfigMap{}
		}
		out[cm.Namespace][cm.Name] = cm
	}
	return out, n, nil
}

// syncerFinalizers counts the finalizers of any syncer on an upstream object.
func syncerFinalizers(finalizers []string) int {
	n := 0
	for _, f := range finalizers {
		if strings.HasPrefix(f, workloadv1alpha1.SyncerFinalizerNamePrefix) {
			n++
		}
	}
	return n
}

// firstFew shortens a list of problems for a poll status.
func firstFew(items []string, n int) string {
	if len(items) > n {
		return fmt.Sprintf("%s, ... (%d in all)", strings.Join(items[:n], ", "), len(items))
	}
	return strings.Join(items, ", ")
}

// checkCreated says whether the created objects have converged: every upstream object has
// its downstream copy with the upstream data and carries exactly one syncer finalizer (ours),
// and no downstream ConfigMap of ours lacks an upstream object.
func (se *syncerEnv) checkCreated(ctx context.Context, down kubernetes.Interface, nss []*crashNamespace) (bool, string, error) {
	owned, total, err := se.ownedDownstream(ctx, down)
	if err != nil {
		return false, err.Error(), nil
	}
	finalizer := workloadv1alpha1.SyncerFinalizerName(se.stKey)
	selector := labels.Set(se.syncLabels()).String()
	var problems, finalizerProblems, orphans []string
	known := map[string]bool{}
	for _, cn := range nss {
		known[cn.downstream] = true
		list, err := cn.upstream.CoreV1().ConfigMaps(cn.ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err.Error(), nil
		}
		upstreamData := map[string]map[string]string{}
		for _, cm := range list.Items {
			upstreamData[cm.Name] = cm.Data
			if syncerFinalizers(cm.Finalizers) != 1 || !containsString(cm.Finalizers, finalizer) {
				finalizerProblems = append(finalizerProblems, fmt.Sprintf("%s/%s %v", cn.ns, cm.Name, cm.Finalizers))
			}
		}
		if len(list.Items) != len(cn.names) {
			problems = append(problems, fmt.Sprintf("%s|%s holds %d of its %d ConfigMaps upstream", cn.ws, cn.ns, len(list.Items), len(cn.names)))
		}
		if ok, msg, _ := compareData(upstreamData, owned[cn.downstream], cn.names); !ok {
			problems = append(problems, cn.ns+": "+msg)
		}
		for name := range owned[cn.downstream] {
			if _, ok := upstreamData[name]; !ok {
				orphans = append(orphans, cn.downstream+"/"+name)
			}
		}
	}
	for dns, cms := range owned {
		if !known[dns] {
			for name := range cms {
				orphans = append(orphans, dns+"/"+name)
			}
		}
	}
	if len(finalizerProblems) > 0 {
		problems = append(problems, "upstream objects without exactly our one syncer finalizer: "+firstFew(finalizerProblems, 5))
	}
	if len(orphans) > 0 {
		problems = append(problems, "downstream ConfigMaps of ours without an upstream object: "+firstFew(orphans, 5))
	}
	return len(problems) == 0, fmt.Sprintf("%d downstream; %s", total, strings.Join(problems, "; ")), nil
}

// killAndStart SIGKILLs the syncer (its whole process group: no shutdown code runs), checks
// that it died of the signal, and starts it again with the same arguments and ports. It
// returns when the kill was done and when the new process answered /readyz.
func (sp *syncerProcess) killAndStart(t *testing.T) (killedAt, readyAt time.Time) {
	t.Helper()
	if err := sp.Kill(); err != nil {
		t.Fatalf("failed to kill the syncer: %v", err)
	}
	killedAt = time.Now()
	if err := sp.ExitError(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the syncer did not die of SIGKILL: exit %v", err)
	}
	if err := sp.Start(); err != nil {
		t.Fatalf("failed to start the syncer again: %v", err)
	}
	readyAt, err := sp.WaitReady(t.Context(), 90*time.Second)
	if err != nil {
		t.Fatalf("the restarted syncer did not become ready: %v", err)
	}
	return killedAt, readyAt
}

// TestSyncerKilledMidCreate SIGKILLs the syncer while 500 ConfigMaps are being created in
// four placed namespaces of two workspaces, once about a third are downstream, and starts it
// again: every upstream object must end with its downstream copy and exactly one syncer
// finalizer, and nothing of ours downstream may lack an upstream object.
func TestSyncerKilledMidCreate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	se := setupSyncerEnv(t)
	sp := se.startSyncer(t, syncerOptions{})
	down := se.downstreamKube(t)
	nss := se.crashNamespaces(t)

	began := time.Now()
	createErr := make(chan error, 1)
	var createdIn atomic.Int64
	go func() {
		err := se.createCrashObjects(ctx, nss)
		createdIn.Store(int64(time.Since(began)))
		createErr <- err
	}()
	var atKill int
	localenv.Eventually(t, 100*time.Millisecond, 3*time.Minute, fmt.Sprintf("a third of the %d ConfigMaps downstream", crashObjects), func(ctx context.Context) (bool, string, error) {
		_, n, err := se.ownedDownstream(ctx, down)
		if err != nil {
			return false, err.Error(), nil
		}
		atKill = n
		return n >= crashObjects/3, fmt.Sprintf("%d downstream", n), nil
	})
	killedAt, readyAt := sp.killAndStart(t)
	stillCreating := createdIn.Load() == 0
	t.Logf("killed the syncer (SIGKILL) %s after the creates began, with %d/%d ConfigMaps downstream (creates still running: %v); restarted and ready %s after the kill",
		killedAt.Sub(began).Round(time.Millisecond), atKill, crashObjects, stillCreating, readyAt.Sub(killedAt).Round(time.Millisecond))
	if err := <-createErr; err != nil {
		t.Fatal(err)
	}
	t.Logf("all %d ConfigMaps created upstream in %s", crashObjects, time.Duration(createdIn.Load()).Round(time.Millisecond))
	if atKill >= crashObjects {
		t.Fatalf("every ConfigMap was already downstream at the kill: the test did not kill the syncer mid-sync")
	}

	localenv.Eventually(t, 500*time.Millisecond, 3*time.Minute, "the created objects to converge after the restart", func(ctx context.Context) (bool, string, error) {
		return se.checkCreated(ctx, down, nss)
	})
	converged := time.Now()
	t.Logf("CONVERGED after kill mid-create: %s after the kill, %s after the restarted syncer was ready",
		converged.Sub(killedAt).Round(time.Millisecond), converged.Sub(readyAt).Round(time.Millisecond))
	t.Logf("syncer errors:\n%s", scrape(t, ctx, sp.MetricsURL).Series("syncer_errors_total"))

	// Converged means settled: nothing of it is undone afterwards.
	holdFor(t, 5*time.Second, "the converged state must hold", func(ctx context.Context) error {
		ok, status, err := se.checkCreated(ctx, down, nss)
		if err == nil && !ok {
			err = errors.New(status)
		}
		return err
	})
}

// deleteConfigMaps deletes the named ConfigMaps with workers goroutines, counting the
// delete requests made in issued.
func deleteConfigMaps(ctx context.Context, c kubernetes.Interface, ns string, names []string, workers int, issued *atomic.Int64) error {
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
				err := c.CoreV1().ConfigMaps(ns).Delete(ctx, name, metav1.DeleteOptions{})
				issued.Add(1)
				if err != nil && !apierrors.IsNotFound(err) {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("failed to delete upstream ConfigMap %s/%s: %w", ns, name, err)
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

// checkDeleted says whether the deletions of objects have converged: no ConfigMap of ours
// left downstream, none left upstream (every finalizer released).
func (se *syncerEnv) checkDeleted(ctx context.Context, down kubernetes.Interface, kept []*crashNamespace) (bool, string, error) {
	var problems []string
	if _, n, err := se.ownedDownstream(ctx, down); err != nil {
		return false, err.Error(), nil
	} else if n > 0 {
		problems = append(problems, fmt.Sprintf("%d ConfigMaps of ours left downstream", n))
	}
	selector := labels.Set(se.syncLabels()).String()
	for _, cn := range kept {
		list, err := cn.upstream.CoreV1().ConfigMaps(cn.ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err.Error(), nil
		}
		if len(list.Items) > 0 {
			problems = append(problems, fmt.Sprintf("%d ConfigMaps left upstream in %s|%s (e.g. %s, finalizers %v)", len(list.Items), cn.ws, cn.ns, list.Items[0].Name, list.Items[0].Finalizers))
		}
	}
	return len(problems) == 0, strings.Join(problems, "; "), nil
}

// checkNamespaceGone says whether a namespace deleted upstream is gone on both sides: its
// objects' finalizers released upstream, its downstream namespace deleted by the cleanup.
func checkNamespaceGone(ctx context.Context, down kubernetes.Interface, gone *crashNamespace) (bool, string, error) {
	var problems []string
	if ns, err := gone.upstream.CoreV1().Namespaces().Get(ctx, gone.ns, metav1.GetOptions{}); err == nil {
		problems = append(problems, fmt.Sprintf("upstream namespace %s|%s still there (phase %s)", gone.ws, gone.ns, ns.Status.Phase))
	} else if !apierrors.IsNotFound(err) {
		return false, err.Error(), nil
	}
	if _, err := down.CoreV1().Namespaces().Get(ctx, gone.downstream, metav1.GetOptions{}); err == nil {
		problems = append(problems, "downstream namespace "+gone.downstream+" of the deleted upstream namespace still there")
	} else if !apierrors.IsNotFound(err) {
		return false, err.Error(), nil
	}
	return len(problems) == 0, strings.Join(problems, "; "), nil
}

// TestSyncerKilledMidDelete syncs 500 ConfigMaps, then deletes them upstream (three
// namespaces object by object, the fourth as a whole namespace) and SIGKILLs the syncer once
// about a third are gone downstream. After the restart nothing of ours may be left
// downstream, nothing upstream (every finalizer released), and the downstream namespaces
// follow the namespace rules: the deleted namespace's goes, those of the upstream namespaces
// that live on and are still placed stay.
func TestSyncerKilledMidDelete(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	se := setupSyncerEnv(t)
	sp := se.startSyncer(t, syncerOptions{})
	down := se.downstreamKube(t)
	nss := se.crashNamespaces(t)
	kept, gone := nss[:3], nss[3]

	if err := se.createCrashObjects(ctx, nss); err != nil {
		t.Fatal(err)
	}
	localenv.Eventually(t, time.Second, 3*time.Minute, fmt.Sprintf("all %d ConfigMaps synced", crashObjects), func(ctx context.Context) (bool, string, error) {
		return se.checkCreated(ctx, down, nss)
	})

	began := time.Now()
	var issued atomic.Int64
	deleteErr := make(chan error, len(kept)+1)
	go func() {
		err := gone.upstream.CoreV1().Namespaces().Delete(ctx, gone.ns, metav1.DeleteOptions{})
		if err != nil {
			err = fmt.Errorf("failed to delete upstream namespace %s: %w", gone.ns, err)
		}
		deleteErr <- err
	}()
	for _, cn := range kept {
		go func() { deleteErr <- deleteConfigMaps(ctx, cn.upstream, cn.ns, cn.names, 3, &issued) }()
	}
	var atKill int
	localenv.Eventually(t, 100*time.Millisecond, 3*time.Minute, fmt.Sprintf("a third of the %d ConfigMaps gone downstream", crashObjects), func(ctx context.Context) (bool, string, error) {
		_, n, err := se.ownedDownstream(ctx, down)
		if err != nil {
			return false, err.Error(), nil
		}
		atKill = n
		return n <= crashObjects-crashObjects/3, fmt.Sprintf("%d downstream", n), nil
	})
	issuedAtKill := issued.Load()
	killedAt, readyAt := sp.killAndStart(t)
	t.Logf("killed the syncer (SIGKILL) %s after the deletes began, with %d/%d ConfigMaps still downstream and %d/%d object deletes issued upstream (plus namespace %s); restarted and ready %s after the kill",
		killedAt.Sub(began).Round(time.Millisecond), atKill, crashObjects, issuedAtKill, len(kept)*len(kept[0].names), gone.ns, readyAt.Sub(killedAt).Round(time.Millisecond))
	for range len(kept) + 1 {
		if err := <-deleteErr; err != nil {
			t.Fatal(err)
		}
	}
	if atKill == 0 {
		t.Fatalf("every ConfigMap was already gone downstream at the kill: the test did not kill the syncer mid-deletion")
	}

	localenv.Eventually(t, 500*time.Millisecond, 3*time.Minute, "the deletions of objects to converge after the restart", func(ctx context.Context) (bool, string, error) {
		return se.checkDeleted(ctx, down, nss)
	})
	objectsConverged := time.Now()
	localenv.Eventually(t, 500*time.Millisecond, 3*time.Minute, "the namespace deleted upstream to be gone on both sides", func(ctx context.Context) (bool, string, error) {
		return checkNamespaceGone(ctx, down, gone)
	})
	converged := time.Now()
	t.Logf("CONVERGED after kill mid-delete: objects %s after the kill (%s after the restarted syncer was ready); namespace %s gone on both sides %s after the kill (the clean delay is %s)",
		objectsConverged.Sub(killedAt).Round(time.Millisecond), objectsConverged.Sub(readyAt).Round(time.Millisecond),
		gone.ns, converged.Sub(killedAt).Round(time.Millisecond), lifecycleCleanDelay)
	t.Logf("syncer errors:\n%s", scrape(t, ctx, sp.MetricsURL).Series("syncer_errors_total"))

	// Namespace rules (README, DESIGN 5): a downstream namespace goes only when its upstream
	// namespace is gone or no longer placed here, never merely because it is empty.
	t.Run("downstream namespaces of live placed upstream namespaces are kept", func(t *testing.T) {
		holdFor(t, 3*lifecycleCleanDelay+3*time.Second, "downstream namespaces whose upstream namespaces live and are placed must stay", func(ctx context.Context) error {
			for _, cn := range kept {
				ns, err := down.CoreV1().Namespaces().Get(ctx, cn.downstream, metav1.GetOptions{})
				if err != nil {
					return fmt.Errorf("downstream namespace %s of %s|%s (upstream namespace still there, still placed): %w", cn.downstream, cn.ws, cn.ns, err)
				}
				if ns.DeletionTimestamp != nil {
					return fmt.Errorf("downstream namespace %s of %s|%s is being deleted although its upstream namespace lives and is placed", cn.downstream, cn.ws, cn.ns)
				}
			}
			return nil
		})
	})
}
