package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// TestSyncerBreakerWorkspaceReplaced is acceptance 3 of issue 11: while 200 objects are
// synced, the upstream workspace's apiserver is replaced by a fresh one at the same path
// (its data gone). Every object vanishes upstream without a deletion: the syncer keeps
// every downstream copy, the breaker trips and DeletionsPaused shows the counts; after
// `kubectl tmc workload resume-deletions` the deletions proceed.
func TestSyncerBreakerWorkspaceReplaced(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	se := setupSyncerEnv(t)
	syncer := se.startSyncer(t, syncerOptions{})
	up := se.upstreamKube(t, wsA)
	down := se.downstreamKube(t)
	sts := tmcClient(t, se.env.Workspace(locationWS).AdminConfig()).WorkloadV1alpha1().SyncTargets()

	const namespaces, perNamespace = 4, 50
	var downstreamNamespaces []string
	for i := range namespaces {
		ns := fmt.Sprintf("app-%d", i)
		se.createUpstreamNamespace(t, wsA, ns)
		if err := createConfigMaps(ctx, up, ns, indexedNames("cm", perNamespace), se.syncLabels(), 8); err != nil {
			t.Fatal(err)
		}
		downstreamNamespaces = append(downstreamNamespaces, se.downstreamNamespace(t, wsA, ns))
	}
	downstreamCount := func(ctx context.Context) (int, error) {
		n := 0
		for _, ns := range downstreamNamespaces {
			cms, err := downstreamConfigMaps(ctx, down, ns, se.ownershipSelector())
			if err != nil {
				return 0, err
			}
			n += len(cms)
		}
		return n, nil
	}
	const total = namespaces * perNamespace
	eventually(t, 2*time.Minute, fmt.Sprintf("%d ConfigMaps did not reach the physical cluster", total), func(ctx context.Context) (bool, error) {
		n, err := downstreamCount(ctx)
		return err == nil && n == total, nil
	})
	eventually(t, 30*time.Second, "DeletionsPaused=False was not reported", func(ctx context.Context) (bool, error) {
		st, err := sts.Get(ctx, clusterName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		c := meta.FindStatusCondition(st.Status.Conditions, workloadv1alpha1.SyncTargetDeletionsPaused)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == workloadv1alpha1.ReasonDeletionsWithinBudget, nil
	})

	// The workspace comes back empty at the same path; the syncer's RBAC is re-applied (a
	// re-created workspace gets it again from whoever set it up).
	if err := se.env.ReplaceWorkspace(ctx, wsA); err != nil {
		t.Fatal(err)
	}
	if err := se.env.GrantSyncer(ctx, localenv.SyncerGrant{
		User: syncerUser, SyncTargetName: clusterName, LocationWorkspace: locationWS,
		WorkloadWorkspaces: []string{wsA}, Cluster: clusterName,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := up.CoreV1().ConfigMaps("app-0").Get(ctx, "cm-000", metav1.GetOptions{}); err == nil {
		t.Fatal("the replaced workspace still serves the old objects")
	}

	// Not one downstream copy goes, and the breaker reports all 200 as upstream-lost.
	noneDeleted := func(ctx context.Context) error {
		n, err := downstreamCount(ctx)
		if err != nil {
			return nil // a failed list says nothing about deletions
		}
		if n != total {
			return fmt.Errorf("%d of %d downstream ConfigMaps left after the upstream workspace was replaced: the syncer deleted copies of lost objects", n, total)
		}
		return nil
	}
	var paused *metav1.Condition
	localenv.Eventually(t, 500*time.Millisecond, 3*time.Minute, "DeletionsPaused=True with 200 upstream-lost", func(ctx context.Context) (bool, string, error) {
		if err := noneDeleted(ctx); err != nil {
			t.Fatal(err)
		}
		st, err := sts.Get(ctx, clusterName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		paused = meta.FindStatusCondition(st.Status.Conditions, workloadv1alpha1.SyncTargetDeletionsPaused)
		if paused == nil {
			return false, "no condition", nil
		}
		return paused.Status == metav1.ConditionTrue && paused.Reason == workloadv1alpha1.ReasonDeletionBudgetExceeded &&
			strings.Contains(paused.Message, fmt.Sprintf("%d upstream-lost", total)), paused.Message, nil
	})
	// Keep watching a while: still nothing deleted.
	for range 20 {
		if err := noneDeleted(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if got := metricValue(t, syncer.MetricsURL, "syncer_deletions_held", map[string]string{"reason": "upstream-lost"}); got != total {
		t.Errorf("syncer_deletions_held{reason=upstream-lost} = %v, want %d", got, total)
	}
	if got := metricValue(t, syncer.MetricsURL, "syncer_deletions_paused", nil); got != 1 {
		t.Errorf("syncer_deletions_paused = %v, want 1", got)
	}
	se.expectSyncTargetEvent(t, "DeletionsPaused")

	// The operator resumes: the plugin prints what was paused, the deletions go ahead.
	out := se.runPlugin(t, "workload", "resume-deletions", clusterName)
	if !strings.Contains(out, "Was paused (DeletionBudgetExceeded)") || !strings.Contains(out, fmt.Sprintf("%d upstream-lost", total)) {
		t.Errorf("resume-deletions printed %q, want what was paused", out)
	}
	eventually(t, 4*time.Minute, "the downstream copies were not deleted after resume-deletions", func(ctx context.Context) (bool, error) {
		n, err := downstreamCount(ctx)
		return err == nil && n == 0, nil
	})
	eventually(t, 30*time.Second, "DeletionsPaused did not turn False/DeletionsResumed", func(ctx context.Context) (bool, error) {
		st, err := sts.Get(ctx, clusterName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		c := meta.FindStatusCondition(st.Status.Conditions, workloadv1alpha1.SyncTargetDeletionsPaused)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == workloadv1alpha1.ReasonDeletionsResumed, nil
	})
	se.expectSyncTargetEvent(t, "DeletionsResumed")
}

// expectSyncTargetEvent waits for an Event of reason on the SyncTarget in the location
// workspace.
func (se *syncerEnv) expectSyncTargetEvent(t *testing.T, reason string) {
	t.Helper()
	events := kubeClient(t, se.env.Workspace(locationWS).AdminConfig()).CoreV1().Events(metav1.NamespaceDefault)
	eventually(t, 30*time.Second, "no "+reason+" Event on the SyncTarget", func(ctx context.Context) (bool, error) {
		list, err := events.List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, e := range list.Items {
			if e.Reason == reason && e.InvolvedObject.Kind == "SyncTarget" && e.InvolvedObject.Name == clusterName {
				return true, nil
			}
		}
		return false, nil
	})
}

// runPlugin runs the kubectl-tmc binary as the admin of the location workspace and returns
// its output.
func (se *syncerEnv) runPlugin(t *testing.T, args ...string) string {
	t.Helper()
	kubeconfig, err := localenv.WriteKubeconfig(se.env.Workspace(locationWS).AdminConfig(), "location", filepath.Join(t.TempDir(), "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), filepath.Join(binDir, "kubectl-tmc"), append(args, "--kubeconfig="+kubeconfig)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl-tmc %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
