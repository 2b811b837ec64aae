package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// expiredWatchMessage is what an apiserver answers a watch from a compacted resourceVersion
// with when the watch is served from etcd (k8s.io/apiserver/pkg/storage/etcd3).
const expiredWatchMessage = "The resourceVersion for the provided watch is too old"

// expiryPartition is how long the partition of the watch-expiry test lasts: long enough
// for the heartbeats to fail, short enough that the HTTP/2 health check (30 s read idle +
// 15 s ping) does not close the frozen connections first, so the watches end at the heal
// and resume from their old resourceVersion.
const expiryPartition = 15 * time.Second

// watchExpired opens a watch of the ConfigMaps of ns from resourceVersion rv and reports
// nil if the apiserver answers 410 Gone (Expired), as it does for the syncer's resumed
// watch after the compaction.
func watchExpired(ctx context.Context, c kubernetes.Interface, ns string, rv int64) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	w, err := c.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: strconv.FormatInt(rv, 10)})
	if err != nil {
		if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
			return nil
		}
		return fmt.Errorf("failed to open a watch from resourceVersion %d: %w", rv, err)
	}
	defer w.Stop()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			return fmt.Errorf("the watch from resourceVersion %d closed without an answer", rv)
		}
		if ev.Type == watch.Error {
			watchErr := apierrors.FromObject(ev.Object)
			if apierrors.IsResourceExpired(watchErr) || apierrors.IsGone(watchErr) {
				return nil
			}
			return fmt.Errorf("the watch from resourceVersion %d failed, but not with 410 Gone: %w", rv, watchErr)
		}
		return fmt.Errorf("the watch from resourceVersion %d still works (first event %s): the history was not compacted", rv, ev.Type)
	case <-ctx.Done():
		return fmt.Errorf("no answer to a watch from resourceVersion %d: %w", rv, ctx.Err())
	}
}

// TestSyncerRelistsAfterWatchExpiry partitions the syncer from the control plane, changes
// objects upstream behind its back (updates, creates, deletes, an object no longer placed
// here, a new namespace in the other workspace), compacts etcd past everything the syncer
// saw, and heals: the syncer's watches resume from a resourceVersion that no longer exists
// (410 Gone), so only a relist can bring the changes in; downstream must converge to them,
// and the relist must not rewrite the objects that did not change.
//
// The workspace apiservers run without a watch cache, so that their watches are served
// from etcd and the compaction reaches them; with a watch cache the same 410 comes once the
// cache's window is exceeded, which needs far more writes than a test should make.
func TestSyncerRelistsAfterWatchExpiry(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	se := setupSyncerEnv(t, func(o *localenv.Options) {
		o.WorkspaceAPIServerArgs = append(o.WorkspaceAPIServerArgs, "--watch-cache=false")
	})
	fp, err := se.env.NewFaultProxy(strings.TrimPrefix(se.env.FrontProxy.URL, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := se.env.UpstreamConfig(syncerUser)
	cfg.Host = "https://" + fp.Addr
	// -v=4 logs the reflectors' "Watch closed" with the 410, the evidence that the watches
	// really expired.
	sp := se.startSyncer(t, syncerOptions{upstream: cfg, args: []string{"-v=4"}})

	const ns, newNS = "expiry", "expiry-new"
	up := se.upstreamKube(t, wsA)
	upB := se.upstreamKube(t, wsB)
	down := se.downstreamKube(t)
	createNamespace(t, up, ns, se.syncLabels())
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
	updated, deleted, unplaced, untouched := names[:5], names[15:18], names[18:], names[5:15]
	created, createdB := indexedNames("new", 5), indexedNames("other", 3)
	rvBefore, _ := downstreamResourceVersions(t, down, dns, se.ownershipSelector())

	// Partition. Nothing the syncer saw can be newer than etcd's revision now.
	fp.Partition()
	partStart := time.Now()
	seenUpTo, err := se.env.Etcd.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
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
	// No longer placed here: the label-filtered watch would have told the syncer with a
	// delete event; after the compaction only the relist can.
	for _, name := range unplaced {
		if err := updateConfigMap(ctx, up, ns, name, func(cm *corev1.ConfigMap) {
			delete(cm.Labels, workloadv1alpha1.ClusterResourceStateLabel(se.stKey))
		}); err != nil {
			t.Fatal(err)
		}
	}
	createNamespace(t, upB, newNS, se.syncLabels())
	if err := createConfigMaps(ctx, upB, newNS, createdB, se.syncLabels(), 1); err != nil {
		t.Fatal(err)
	}
	compactedAt, err := se.env.Etcd.CompactToCurrent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("during the partition: updated %v, created %v, deleted %v, unplaced %v in %s|%s, created %v in %s|%s; compacted etcd at revision %d (the syncer saw at most %d)",
		updated, created, deleted, unplaced, wsA, ns, createdB, wsB, newNS, compactedAt, seenUpTo)
	if err := watchExpired(ctx, up, ns, seenUpTo); err != nil {
		t.Fatalf("the compaction did not expire the syncer's resume point: %v", err)
	}

	// Keep the partition for a while, as a real one lasts: nothing may change downstream
	// meanwhile (losing the upstream never deletes anything).
	holdFor(t, time.Until(partStart.Add(expiryPartition)), "downstream must stay as it was during the partition", func(ctx context.Context) error {
		have, err := downstreamConfigMaps(ctx, down, dns, se.ownershipSelector())
		if err != nil {
			return err
		}
		for _, name := range names {
			if _, ok := have[name]; !ok {
				return fmt.Errorf("downstream ConfigMap %s/%s was deleted during the upstream partition", dns, name)
			}
		}
		for _, name := range created {
			if _, ok := have[name]; ok {
				return fmt.Errorf("ConfigMap %s created during the partition is downstream before the heal: the partition did not cut the syncer off", name)
			}
		}
		return nil
	})

	logInfo, err := os.Stat(sp.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	fp.Heal()
	healAt := time.Now()
	t.Logf("healed after %s", healAt.Sub(partStart).Round(time.Millisecond))

	dnsB := se.downstreamNamespace(t, wsB, newNS)
	localenv.Eventually(t, 200*time.Millisecond, 90*time.Second, "downstream to converge to the changes made during the partition", func(ctx context.Context) (bool, string, error) {
		have, err := downstreamConfigMaps(ctx, down, dns, se.ownershipSelector())
		if err != nil {
			return false, err.Error(), nil
		}
		haveB, err := downstreamConfigMaps(ctx, down, dnsB, se.ownershipSelector())
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
		for _, name := range createdB {
			if cm, ok := haveB[name]; !ok || cm.Data["name"] != name {
				problems = append(problems, newNS+"/"+name+" missing")
			}
		}
		for _, name := range untouched {
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
		for _, name := range unplaced {
			if _, ok := have[name]; ok {
				problems = append(problems, name+" (no longer placed) still downstream")
			}
			cm, err := up.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("%s (no longer placed) unreadable upstream: %v", name, err))
			case containsString(cm.Finalizers, finalizer):
				problems = append(problems, name+" (no longer placed) still holds the syncer finalizer")
			}
		}
		return len(problems) == 0, strings.Join(problems, ", "), nil
	})
	convergence := time.Since(healAt)
	t.Logf("CONVERGED after watch expiry: %s after the heal", convergence.Round(time.Millisecond))

	// The relist replays every object; those that did not change must not be rewritten.
	rvAfter, _ := downstreamResourceVersions(t, down, dns, se.ownershipSelector())
	for _, name := range untouched {
		if rvAfter[name] != rvBefore[name] {
			t.Errorf("downstream ConfigMap %s/%s was rewritten by the relist: resourceVersion %s -> %s", dns, name, rvBefore[name], rvAfter[name])
		}
	}

	// Evidence that the syncer's own watches expired, the ConfigMaps' among them (and the
	// convergence came from a relist, not from a watch that resumed). klog flushes every
	// few seconds, hence the poll.
	var expired int
	localenv.Eventually(t, 500*time.Millisecond, 30*time.Second, "the syncer's log to show its ConfigMap watch answered 410 Gone after the heal", func(context.Context) (bool, string, error) {
		b, err := os.ReadFile(sp.LogPath)
		if err != nil {
			return false, "", err
		}
		expired = 0
		configMaps := 0
		for _, line := range strings.Split(string(b[min(int(logInfo.Size()), len(b)):]), "\n") {
			if strings.Contains(line, expiredWatchMessage) {
				expired++
				if strings.Contains(line, "Resource=configmaps") {
					configMaps++
				}
			}
		}
		return configMaps > 0, fmt.Sprintf("%d expired watches logged, %d of ConfigMaps", expired, configMaps), nil
	})
	t.Logf("the syncer logged %d expired watches (410 Gone) after the heal", expired)
}
