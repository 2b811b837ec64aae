package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/tmc-dev/tmc/pkg/localenv"
	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// placementEnv is a location workspace with two SyncTargets (east and west, one kwok
// cluster and one syncer each), a workload workspace, and the tmc-controller.
type placementEnv struct {
	env        *localenv.Environment
	targets    map[string]*placementTarget
	controller *localenv.Component
}

type placementTarget struct {
	name    string
	key     string
	cluster *localenv.PhysicalCluster
	syncer  *syncerProcess
	uid     string
}

const controllerUser = "tmc-controller"

func setupPlacementEnv(t *testing.T) *placementEnv {
	t.Helper()
	ctx := t.Context()
	env := localenv.StartForTest(t, localenv.Options{
		Workspaces:       []string{locationWS, wsA},
		PhysicalClusters: []localenv.PhysicalClusterOptions{{Name: "east"}, {Name: "west"}},
		Users:            []string{"syncer-east", "syncer-west", controllerUser},
	})
	pe := &placementEnv{env: env, targets: map[string]*placementTarget{}}
	loc := env.Workspace(locationWS).AdminConfig()
	for _, ws := range []string{locationWS, wsA} {
		if err := localenv.InstallCRDs(ctx, env.Workspace(ws).AdminConfig()); err != nil {
			t.Fatal(err)
		}
	}
	tc := tmcClient(t, loc)
	if _, err := tc.SchedulingV1alpha1().Locations().Create(ctx, &schedulingv1alpha1.Location{
		ObjectMeta: metav1.ObjectMeta{Name: "everywhere", Labels: map[string]string{"tier": "standard"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"east", "west"} {
		st, err := tc.WorkloadV1alpha1().SyncTargets().Create(ctx, &workloadv1alpha1.SyncTarget{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"region": name}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := env.GrantSyncer(ctx, localenv.SyncerGrant{
			User:               "syncer-" + name,
			SyncTargetName:     name,
			LocationWorkspace:  locationWS,
			WorkloadWorkspaces: []string{wsA},
			Cluster:            name,
		}); err != nil {
			t.Fatal(err)
		}
		pe.targets[name] = &placementTarget{name: name, key: workloadv1alpha1.ToSyncTargetKey(env.Workspace(locationWS).Name, name), cluster: env.Cluster(name), uid: string(st.UID)}
	}
	// The controller's user: everything it needs in both workspaces.
	if err := env.GrantController(ctx, controllerUser, locationWS, wsA); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"east", "west"} {
		pe.targets[name].syncer = pe.startSyncer(t, name)
	}
	pe.startController(t)
	return pe
}

func (pe *placementEnv) startSyncer(t *testing.T, name string) *syncerProcess {
	t.Helper()
	tgt := pe.targets[name]
	c, err := pe.env.StartSyncer(t.Context(), localenv.SyncerOptions{
		Binary:                        filepath.Join(binDir, "workload-syncer"),
		User:                          "syncer-" + name,
		Cluster:                       name,
		SyncTargetWorkspace:           locationWS,
		SyncTargetName:                name,
		SyncTargetUID:                 tgt.uid,
		HeartbeatInterval:             2 * time.Second,
		DownstreamNamespaceCleanDelay: 3 * time.Second,
		DiscoveryInterval:             5 * time.Second,
		QPS:                           -1,
		Verbosity:                     2,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &syncerProcess{Component: c}
}

func (pe *placementEnv) startController(t *testing.T) {
	t.Helper()
	c, err := pe.env.StartController(t.Context(), localenv.ControllerOptions{
		Binary:               filepath.Join(binDir, "tmc-controller"),
		User:                 controllerUser,
		LocationWorkspaces:   []string{locationWS},
		Workspaces:           []string{wsA},
		HeartbeatThreshold:   10 * time.Second,
		UnhealthyGracePeriod: 10 * time.Minute,
		QPS:                  -1,
		Verbosity:            2,
		ReadyTimeout:         60 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	pe.controller = c
}

func (pe *placementEnv) createPlacement(t *testing.T, name string, nsSelector map[string]string) {
	t.Helper()
	_, err := tmcClient(t, pe.env.Workspace(wsA).AdminConfig()).SchedulingV1alpha1().Placements().Create(t.Context(), &schedulingv1alpha1.Placement{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: schedulingv1alpha1.PlacementSpec{
			LocationWorkspace: locationWS,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: nsSelector},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// targetOf returns the SyncTargets a namespace is labelled Sync for.
func (pe *placementEnv) targetsOf(ctx context.Context, t *testing.T, ns string) []string {
	n, err := kubeClient(t, pe.env.Workspace(wsA).AdminConfig()).CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	var out []string
	for name, tgt := range pe.targets {
		if n.Labels[workloadv1alpha1.ClusterResourceStateLabel(tgt.key)] == workloadv1alpha1.ResourceStateSync {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func (pe *placementEnv) downstreamNS(t *testing.T, target, ns string) string {
	t.Helper()
	name, err := workloadv1alpha1.NewNamespaceLocator(pe.env.Workspace(locationWS).Name, target, pe.targets[target].uidType(), pe.env.Workspace(wsA).Name, ns).DownstreamNamespaceName()
	if err != nil {
		t.Fatal(err)
	}
	return name
}

func (tgt *placementTarget) uidType() types.UID { return types.UID(tgt.uid) }

// readyReplicas returns the ready replicas of Deployment name of upstream namespace ns on
// target, or -1 if it does not exist there.
func (pe *placementEnv) readyReplicas(ctx context.Context, t *testing.T, target, ns, name string) int32 {
	d, err := kubeClient(t, pe.targets[target].cluster.AdminConfig()).AppsV1().Deployments(pe.downstreamNS(t, target, ns)).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return -1
	}
	return d.Status.ReadyReplicas
}

func (pe *placementEnv) syncTarget(ctx context.Context, t *testing.T, name string) *workloadv1alpha1.SyncTarget {
	st, err := tmcClient(t, pe.env.Workspace(locationWS).AdminConfig()).WorkloadV1alpha1().SyncTargets().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func createNamespace(t *testing.T, c kubernetes.Interface, name string, labels map[string]string) {
	t.Helper()
	if _, err := c.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestPlacement covers the acceptance end to end: scheduling without manual labels,
// spreading, cordon, heartbeat loss, drain with make-before-break, syncer recovery,
// controller restart and Placement deletion.
func TestPlacement(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pe := setupPlacementEnv(t)
	upA := kubeClient(t, pe.env.Workspace(wsA).AdminConfig())
	pe.createPlacement(t, "web", map[string]string{"tmc.dev/placed": "true"})
	placed := map[string]string{"tmc.dev/placed": "true"}

	// 1. A namespace is scheduled and a plain Deployment runs downstream.
	createNamespace(t, upA, "app-1", placed)
	eventually(t, 60*time.Second, "namespace app-1 was not scheduled", func(ctx context.Context) (bool, error) {
		return len(pe.targetsOf(ctx, t, "app-1")) == 1, nil
	})
	first := pe.targetsOf(ctx, t, "app-1")[0]
	if _, err := upA.AppsV1().Deployments("app-1").Create(ctx, deployment("web", 2, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "the unlabelled Deployment did not run downstream and report ready upstream", func(ctx context.Context) (bool, error) {
		d, err := upA.AppsV1().Deployments("app-1").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == 2 && pe.readyReplicas(ctx, t, first, "app-1", "web") == 2, nil
	})
	p, err := tmcClient(t, pe.env.Workspace(wsA).AdminConfig()).SchedulingV1alpha1().Placements().Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.Phase != schedulingv1alpha1.PlacementBound || p.Status.SelectedLocation == nil || p.Status.SelectedLocation.LocationName != "everywhere" {
		t.Errorf("placement status: %+v", p.Status)
	}

	// 2. Namespaces spread over both targets, once the controller sees both Ready (the
	// second syncer may still be starting when the first namespace is scheduled).
	eventually(t, 60*time.Second, "the Location did not count both targets available", func(ctx context.Context) (bool, error) {
		loc, err := tmcClient(t, pe.env.Workspace(locationWS).AdminConfig()).SchedulingV1alpha1().Locations().Get(ctx, "everywhere", metav1.GetOptions{})
		return err == nil && loc.Status.AvailableInstances != nil && *loc.Status.AvailableInstances == 2, nil
	})
	for i := 2; i <= 4; i++ {
		createNamespace(t, upA, fmt.Sprintf("app-%d", i), placed)
	}
	counts := map[string]int{}
	eventually(t, 60*time.Second, "namespaces were not all scheduled", func(ctx context.Context) (bool, error) {
		clear(counts)
		for i := 1; i <= 4; i++ {
			tg := pe.targetsOf(ctx, t, fmt.Sprintf("app-%d", i))
			if len(tg) != 1 {
				return false, nil
			}
			counts[tg[0]]++
		}
		return true, nil
	})
	if counts["east"] != 2 || counts["west"] != 2 {
		t.Errorf("4 namespaces spread as %v, want 2 and 2", counts)
	}

	// Cordon one target: new namespaces go to the other.
	cordoned := first
	other := map[string]string{"east": "west", "west": "east"}[cordoned]
	st := pe.syncTarget(ctx, t, cordoned)
	st.Spec.Unschedulable = true
	if _, err := tmcClient(t, pe.env.Workspace(locationWS).AdminConfig()).WorkloadV1alpha1().SyncTargets().Update(ctx, st, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Wait until the controller has seen the cordon (the Location counts one available
	// instance), then create namespaces.
	eventually(t, 30*time.Second, "the Location did not see the cordon", func(ctx context.Context) (bool, error) {
		loc, err := tmcClient(t, pe.env.Workspace(locationWS).AdminConfig()).SchedulingV1alpha1().Locations().Get(ctx, "everywhere", metav1.GetOptions{})
		return err == nil && loc.Status.AvailableInstances != nil && *loc.Status.AvailableInstances == 1, nil
	})
	for i := 5; i <= 6; i++ {
		ns := fmt.Sprintf("app-%d", i)
		createNamespace(t, upA, ns, placed)
		eventually(t, 60*time.Second, ns+" was not scheduled", func(ctx context.Context) (bool, error) {
			return len(pe.targetsOf(ctx, t, ns)) == 1, nil
		})
		if got := pe.targetsOf(ctx, t, ns)[0]; got != other {
			t.Errorf("%s went to cordoned %s", ns, got)
		}
	}
	// Cordoning keeps existing placements.
	if got := pe.targetsOf(ctx, t, "app-1"); len(got) != 1 || got[0] != cordoned {
		t.Errorf("app-1 moved off the cordoned target: %v", got)
	}
	st = pe.syncTarget(ctx, t, cordoned)
	st.Spec.Unschedulable = false
	if _, err := tmcClient(t, pe.env.Workspace(locationWS).AdminConfig()).WorkloadV1alpha1().SyncTargets().Update(ctx, st, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// 5. Restarting the controller changes no scheduling decision.
	before := map[string][]string{}
	for i := 1; i <= 6; i++ {
		ns := fmt.Sprintf("app-%d", i)
		before[ns] = pe.targetsOf(ctx, t, ns)
	}
	if err := pe.controller.Restart(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	holdFor(t, 8*time.Second, "scheduling decisions changed after a controller restart", func(ctx context.Context) error {
		for ns, want := range before {
			if got := pe.targetsOf(ctx, t, ns); strings.Join(got, ",") != strings.Join(want, ",") {
				return fmt.Errorf("%s: %v, was %v", ns, got, want)
			}
		}
		return nil
	})

	// 3. Stop the first target's syncer: HeartbeatHealthy turns False within threshold + 10s.
	victim := pe.targets[first]
	stopped := time.Now()
	if err := victim.syncer.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second+10*time.Second+5*time.Second, "HeartbeatHealthy did not turn False", func(ctx context.Context) (bool, error) {
		c := meta.FindStatusCondition(pe.syncTarget(ctx, t, first).Status.Conditions, workloadv1alpha1.SyncTargetHeartbeatHealthy)
		return c != nil && c.Status == metav1.ConditionFalse, nil
	})
	t.Logf("HeartbeatHealthy turned False %s after the syncer stopped (threshold 10s)", time.Since(stopped).Round(100*time.Millisecond))

	// Drain it: app-1's Deployment moves to the other target, and at every moment at least
	// one copy is ready.
	st = pe.syncTarget(ctx, t, first)
	now := metav1.Now()
	st.Spec.EvictAfter = &now
	if _, err := tmcClient(t, pe.env.Workspace(locationWS).AdminConfig()).WorkloadV1alpha1().SyncTargets().Update(ctx, st, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	moved := false
	drainStart := time.Now()
	samples, bothReady := 0, 0
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		samples++
		oldReady := pe.readyReplicas(ctx, t, first, "app-1", "web")
		newReady := pe.readyReplicas(ctx, t, other, "app-1", "web")
		if oldReady < 2 && newReady < 2 {
			t.Fatalf("no ready copy of app-1/web: %s has %d ready, %s has %d", first, oldReady, other, newReady)
		}
		if oldReady == 2 && newReady == 2 {
			bothReady++
		}
		if newReady == 2 && strings.Join(pe.targetsOf(ctx, t, "app-1"), ",") == other {
			moved = true
			break
		}
		// Bring the stopped syncer back once the new copy is ready, so the old one can go.
		if newReady == 2 && !victim.syncer.Running() {
			victim.syncer = pe.startSyncer(t, first)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !moved {
		t.Fatalf("app-1 did not move from %s to %s: labelled for %v", first, other, pe.targetsOf(ctx, t, "app-1"))
	}
	t.Logf("drain moved app-1 from %s to %s in %s; %d samples, %d with both copies ready, none with neither",
		first, other, time.Since(drainStart).Round(100*time.Millisecond), samples, bothReady)
	eventually(t, 60*time.Second, "the drained target's copy was not removed", func(ctx context.Context) (bool, error) {
		return pe.readyReplicas(ctx, t, first, "app-1", "web") == -1, nil
	})
	// The restarted syncer makes its target Ready again.
	eventually(t, 30*time.Second, first+" did not become Ready again", func(ctx context.Context) (bool, error) {
		return meta.IsStatusConditionTrue(pe.syncTarget(ctx, t, first).Status.Conditions, workloadv1alpha1.SyncTargetReady), nil
	})

	// 4. Deleting the Placement unschedules the namespaces; the downstream copies go.
	if err := tmcClient(t, pe.env.Workspace(wsA).AdminConfig()).SchedulingV1alpha1().Placements().Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "namespaces were not unscheduled", func(ctx context.Context) (bool, error) {
		for i := 1; i <= 6; i++ {
			if len(pe.targetsOf(ctx, t, fmt.Sprintf("app-%d", i))) != 0 {
				return false, nil
			}
		}
		return pe.readyReplicas(ctx, t, other, "app-1", "web") == -1, nil
	})
	d, err := upA.AppsV1().Deployments("app-1").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the upstream Deployment must survive unscheduling: %v", err)
	}
	if len(d.Finalizers) != 0 {
		t.Errorf("upstream Deployment still has finalizers %v", d.Finalizers)
	}
}
