package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tmc-dev/tmc/config/crds"
	"github.com/tmc-dev/tmc/pkg/localenv"
	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// lowerCaseIn is issue 11's typo in a namespaceSelector.
func lowerCaseIn() *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tmc.dev/placed", Operator: "in", Values: []string{"true"}}}}
}

// placementCRDWithoutSelectorRules returns the Placement CRD as it was before its selectors
// were validated: the same schema without the CEL rules on the selectors.
func placementCRDWithoutSelectorRules(t *testing.T) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	list, err := crds.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range list {
		if crd.Name != "placements.scheduling.kcp.io" {
			continue
		}
		old := crd.DeepCopy()
		for i := range old.Spec.Versions {
			spec := old.Spec.Versions[i].Schema.OpenAPIV3Schema.Properties["spec"]
			ns := spec.Properties["namespaceSelector"]
			ns.XValidations = nil
			spec.Properties["namespaceSelector"] = ns
			locs := spec.Properties["locationSelectors"]
			locs.Items.Schema.XValidations = nil
			spec.Properties["locationSelectors"] = locs
			old.Spec.Versions[i].Schema.OpenAPIV3Schema.Properties["spec"] = spec
		}
		return old
	}
	t.Fatal("no Placement CRD")
	return nil
}

// setPlacementSelector replaces the namespaceSelector of a Placement; it reports the
// apiserver's answer.
func (pe *placementEnv) setPlacementSelector(ctx context.Context, t *testing.T, name string, sel *metav1.LabelSelector) error {
	client := tmcClient(t, pe.env.Workspace(wsA).AdminConfig()).SchedulingV1alpha1().Placements()
	p, err := client.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	p.Spec.NamespaceSelector = sel
	_, err = client.Update(ctx, p, metav1.UpdateOptions{})
	return err
}

func (pe *placementEnv) placementCondition(ctx context.Context, t *testing.T, name, condType string) *metav1.Condition {
	p, err := tmcClient(t, pe.env.Workspace(wsA).AdminConfig()).SchedulingV1alpha1().Placements().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return meta.FindStatusCondition(p.Status.Conditions, condType)
}

// namespaceEvent reports whether an Event with reason was recorded on upstream namespace
// ns, and its message.
func (pe *placementEnv) namespaceEvent(ctx context.Context, t *testing.T, ns, reason string) (bool, string) {
	list, err := kubeClient(t, pe.env.Workspace(wsA).AdminConfig()).CoreV1().Events("").List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Namespace,involvedObject.name=" + ns + ",reason=" + reason})
	if err != nil || len(list.Items) == 0 {
		return false, ""
	}
	return true, list.Items[0].Message
}

// TestPlacementSelectorTypoKeepsWorkloads is acceptance 1, second scenario of issue 11. The
// CRD rejects `operator: in` when created new. A Placement that already holds it (stored
// under the CRD of before the validation, which the test installs first, then upgrades)
// keeps the Deployment it placed running downstream and says why.
func TestPlacementSelectorTypoKeepsWorkloads(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pe := setupPlacementEnv(t)
	upCfg := pe.env.Workspace(wsA).AdminConfig()
	upA := kubeClient(t, upCfg)
	placements := tmcClient(t, upCfg).SchedulingV1alpha1().Placements()
	pe.createPlacement(t, "web", map[string]string{"tmc.dev/placed": "true"})
	createNamespace(t, upA, "hello", map[string]string{"tmc.dev/placed": "true"})
	eventually(t, 60*time.Second, "namespace hello was not scheduled", func(ctx context.Context) (bool, error) {
		return len(pe.targetsOf(ctx, t, "hello")) == 1, nil
	})
	target := pe.targetsOf(ctx, t, "hello")[0]
	if _, err := upA.AppsV1().Deployments("hello").Create(ctx, deployment("hello", 2, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "the hello Deployment did not run downstream", func(ctx context.Context) (bool, error) {
		return pe.readyReplicas(ctx, t, target, "hello", "hello") == 2, nil
	})

	// The CRD rejects the typo in a new Placement.
	_, err := placements.Create(ctx, &schedulingv1alpha1.Placement{
		ObjectMeta: metav1.ObjectMeta{Name: "typo"},
		Spec:       schedulingv1alpha1.PlacementSpec{LocationWorkspace: locationWS, NamespaceSelector: lowerCaseIn()},
	}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "operator must be one of In, NotIn, Exists, DoesNotExist") {
		t.Fatalf("creating a Placement with operator in: got %v, want Invalid naming the operators", err)
	}

	// The typo stored before the validation existed: install the old CRD, make the edit of
	// issue 11, then upgrade the CRD again.
	if err := localenv.InstallCRDObjects(ctx, upCfg, placementCRDWithoutSelectorRules(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the CRD without selector rules did not accept the typo", func(ctx context.Context) (bool, error) {
		return pe.setPlacementSelector(ctx, t, "web", lowerCaseIn()) == nil, nil
	})
	edited := time.Now()
	if err := localenv.InstallCRDs(ctx, upCfg); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the upgraded CRD did not reject the typo again", func(ctx context.Context) (bool, error) {
		_, err := placements.Create(ctx, &schedulingv1alpha1.Placement{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "typo-"},
			Spec:       schedulingv1alpha1.PlacementSpec{LocationWorkspace: locationWS, NamespaceSelector: lowerCaseIn()},
		}, metav1.CreateOptions{})
		return apierrors.IsInvalid(err), nil
	})

	// The controller saw the stored typo: it reports it and keeps the decision.
	eventually(t, 30*time.Second, "Placement web did not report SelectorValid=False", func(ctx context.Context) (bool, error) {
		c := pe.placementCondition(ctx, t, "web", schedulingv1alpha1.PlacementSelectorValid)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == schedulingv1alpha1.ReasonInvalidSelector &&
			strings.Contains(c.Message, `"in" is not a valid label selector operator`), nil
	})
	// Issue 11 saw the Deployment gone within 20 s of the edit; hold well beyond that.
	stKey := pe.targets[target].key
	holdFor(t, 40*time.Second-time.Since(edited), "the typo changed the placement", func(ctx context.Context) error {
		ns, err := upA.CoreV1().Namespaces().Get(ctx, "hello", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got := pe.targetsOf(ctx, t, "hello"); len(got) != 1 || got[0] != target {
			return fmt.Errorf("hello placed on %v, was %s", got, target)
		}
		if _, removing := ns.Annotations[workloadv1alpha1.DeletionAnnotation(stKey)]; removing {
			return fmt.Errorf("hello is being removed from %s", target)
		}
		if n := pe.readyReplicas(ctx, t, target, "hello", "hello"); n != 2 {
			return fmt.Errorf("the downstream hello Deployment has %d ready replicas, want 2", n)
		}
		return nil
	})
	t.Logf("the hello Deployment kept running on %s for %s after the typo", target, time.Since(edited).Round(time.Second))
	eventually(t, 30*time.Second, "a PlacementUnevaluable Event on namespace hello", func(ctx context.Context) (bool, error) {
		ok, _ := pe.namespaceEvent(ctx, t, "hello", "PlacementUnevaluable")
		return ok, nil
	})

	// Fixed: SelectorValid turns True and nothing moved.
	if err := pe.setPlacementSelector(ctx, t, "web", &metav1.LabelSelector{MatchLabels: map[string]string{"tmc.dev/placed": "true"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "SelectorValid did not turn True after the fix", func(ctx context.Context) (bool, error) {
		c := pe.placementCondition(ctx, t, "web", schedulingv1alpha1.PlacementSelectorValid)
		return c != nil && c.Status == metav1.ConditionTrue, nil
	})
	if got := pe.targetsOf(ctx, t, "hello"); len(got) != 1 || got[0] != target || pe.readyReplicas(ctx, t, target, "hello", "hello") != 2 {
		t.Fatalf("after the fix hello is on %v with %d ready replicas, want %s with 2", got, pe.readyReplicas(ctx, t, target, "hello", "hello"), target)
	}
}

// Timings of the failover test: the heartbeat threshold and grace period of the
// controller, short enough for a partition to outlast both.
const (
	failoverHeartbeatThreshold = 10 * time.Second
	failoverGracePeriod        = 20 * time.Second
)

// restartControllerWithShortGrace replaces the environment's controller by one whose
// grace period a partition can outlast.
func (pe *placementEnv) restartControllerWithShortGrace(t *testing.T) {
	t.Helper()
	if err := pe.controller.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	c, err := pe.env.StartController(t.Context(), localenv.ControllerOptions{
		Binary:               filepath.Join(binDir, "tmc-controller"),
		Name:                 "tmc-controller-short-grace",
		User:                 controllerUser,
		LocationWorkspaces:   []string{locationWS},
		Workspaces:           []string{wsA},
		HeartbeatThreshold:   failoverHeartbeatThreshold,
		UnhealthyGracePeriod: failoverGracePeriod,
		QPS:                  -1,
		Verbosity:            2,
		ReadyTimeout:         60 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	pe.controller = c
}

// partitionableSyncer restarts the syncer of target with its control-plane link through a
// fault proxy and returns the proxy.
func (pe *placementEnv) partitionableSyncer(t *testing.T, target string) *localenv.FaultProxy {
	t.Helper()
	tgt := pe.targets[target]
	if err := tgt.syncer.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	fp, err := pe.env.NewFaultProxy(strings.TrimPrefix(pe.env.FrontProxy.URL, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	upstream := pe.env.UpstreamConfig("syncer-" + target)
	upstream.Host = "https://" + fp.Addr
	c, err := pe.env.StartSyncer(t.Context(), localenv.SyncerOptions{
		Binary:                        filepath.Join(binDir, "workload-syncer"),
		Name:                          "workload-syncer-" + target + "-partitionable",
		User:                          "syncer-" + target,
		Cluster:                       target,
		Upstream:                      upstream,
		SyncTargetWorkspace:           locationWS,
		SyncTargetName:                target,
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
	tgt.syncer = &syncerProcess{Component: c}
	return fp
}

func (pe *placementEnv) setUnschedulable(ctx context.Context, t *testing.T, target string, value bool) {
	t.Helper()
	st := pe.syncTarget(ctx, t, target)
	st.Spec.Unschedulable = value
	if _, err := tmcClient(t, pe.env.Workspace(locationWS).AdminConfig()).WorkloadV1alpha1().SyncTargets().Update(ctx, st, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := int32(2)
	if value {
		want = 1
	}
	eventually(t, 30*time.Second, fmt.Sprintf("the Location did not count %d available instances", want), func(ctx context.Context) (bool, error) {
		loc, err := tmcClient(t, pe.env.Workspace(locationWS).AdminConfig()).SchedulingV1alpha1().Locations().Get(ctx, "everywhere", metav1.GetOptions{})
		return err == nil && loc.Status.AvailableInstances != nil && *loc.Status.AvailableInstances == want, nil
	})
}

// downstreamClaimUID returns the UID of PersistentVolumeClaim name of upstream namespace ns
// on target ("" if absent, "deleting" if being deleted).
func (pe *placementEnv) downstreamClaimUID(ctx context.Context, t *testing.T, target, ns, name string) string {
	pvc, err := kubeClient(t, pe.targets[target].cluster.AdminConfig()).CoreV1().PersistentVolumeClaims(pe.downstreamNS(t, target, ns)).Get(ctx, name, metav1.GetOptions{})
	switch {
	case err != nil:
		return ""
	case pvc.DeletionTimestamp != nil:
		return "deleting"
	}
	return string(pvc.UID)
}

func claim(name string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
}

// TestPlacementFailoverKeepsPersistentData is acceptance 6 of issue 11: the control-plane
// link of the target hosting three namespaces is cut for longer than the heartbeat threshold
// plus the grace period, with the controller running. The stateless namespace moves
// make-before-break (sampled: never without a ready copy); the namespace with a
// PersistentVolumeClaim upstream stays where its data is, and after the heal its claim is
// the same object and its workload still runs there. So does the namespace whose only claim
// was made downstream by an operator, which the controller knows of from the syncer's last
// report (status.workspaceHealth[].persistentNamespaces).
func TestPlacementFailoverKeepsPersistentData(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pe := setupPlacementEnv(t)
	pe.restartControllerWithShortGrace(t)
	const victim, other = "east", "west"
	fp := pe.partitionableSyncer(t, victim)
	upA := kubeClient(t, pe.env.Workspace(wsA).AdminConfig())
	pe.createPlacement(t, "web", map[string]string{"tmc.dev/placed": "true"})

	// Both namespaces on the victim: the other target is cordoned while they are placed.
	pe.setUnschedulable(ctx, t, other, true)
	for _, ns := range []string{"stateless", "stateful", "operator-data"} {
		createNamespace(t, upA, ns, map[string]string{"tmc.dev/placed": "true"})
		eventually(t, 60*time.Second, ns+" was not scheduled", func(ctx context.Context) (bool, error) {
			return strings.Join(pe.targetsOf(ctx, t, ns), ",") == victim, nil
		})
	}
	pe.setUnschedulable(ctx, t, other, false)
	if _, err := upA.AppsV1().Deployments("stateless").Create(ctx, deployment("web", 2, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := upA.CoreV1().PersistentVolumeClaims("stateful").Create(ctx, claim("data"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := upA.AppsV1().Deployments("stateful").Create(ctx, deployment("db", 1, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// operator-data has no claim upstream: an operator on the physical cluster made one
	// downstream, which only the victim's syncer can see and report.
	if _, err := upA.AppsV1().Deployments("operator-data").Create(ctx, deployment("app", 1, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "the workloads did not run on "+victim, func(ctx context.Context) (bool, error) {
		return pe.readyReplicas(ctx, t, victim, "stateless", "web") == 2 && pe.readyReplicas(ctx, t, victim, "stateful", "db") == 1 &&
			pe.readyReplicas(ctx, t, victim, "operator-data", "app") == 1 && pe.downstreamClaimUID(ctx, t, victim, "stateful", "data") != "", nil
	})
	claimUID := pe.downstreamClaimUID(ctx, t, victim, "stateful", "data")
	victimAdmin := kubeClient(t, pe.targets[victim].cluster.AdminConfig())
	if _, err := victimAdmin.CoreV1().PersistentVolumeClaims(pe.downstreamNS(t, victim, "operator-data")).Create(ctx, claim("operator-made"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	operatorClaimUID := pe.downstreamClaimUID(ctx, t, victim, "operator-data", "operator-made")
	eventually(t, 60*time.Second, "the victim's syncer did not report operator-data as holding claims", func(ctx context.Context) (bool, error) {
		for _, h := range pe.syncTarget(ctx, t, victim).Status.WorkspaceHealth {
			if h.Path == wsA && slices.Contains(h.PersistentNamespaces, "operator-data") {
				return true, nil
			}
		}
		return false, nil
	})

	fp.Partition()
	partStart := time.Now()
	t.Logf("partitioned %s's syncer from the control plane (threshold %s, grace %s)", victim, failoverHeartbeatThreshold, failoverGracePeriod)
	statelessNS := func(ctx context.Context) (*corev1.Namespace, error) {
		return upA.CoreV1().Namespaces().Get(ctx, "stateless", metav1.GetOptions{})
	}
	victimKey := pe.targets[victim].key
	// check asserts, at every sample, that the stateless workload has a ready copy and that
	// the stateful namespace stays on the victim alone with its claim.
	samples := 0
	check := func(ctx context.Context) {
		t.Helper()
		samples++
		oldReady, newReady := pe.readyReplicas(ctx, t, victim, "stateless", "web"), pe.readyReplicas(ctx, t, other, "stateless", "web")
		if oldReady < 2 && newReady < 2 {
			t.Fatalf("no ready copy of stateless/web at +%s: %s has %d ready, %s has %d", time.Since(partStart).Round(time.Second), victim, oldReady, other, newReady)
		}
		if got := strings.Join(pe.targetsOf(ctx, t, "stateful"), ","); got != victim {
			t.Fatalf("the stateful namespace was moved at +%s: placed on %q", time.Since(partStart).Round(time.Second), got)
		}
		if uid := pe.downstreamClaimUID(ctx, t, victim, "stateful", "data"); uid != claimUID {
			t.Fatalf("the stateful claim on %s changed at +%s: UID %q, was %q", victim, time.Since(partStart).Round(time.Second), uid, claimUID)
		}
		if uid := pe.downstreamClaimUID(ctx, t, other, "stateful", "data"); uid != "" {
			t.Fatalf("an empty copy of the stateful claim appeared on %s", other)
		}
		if got := strings.Join(pe.targetsOf(ctx, t, "operator-data"), ","); got != victim {
			t.Fatalf("operator-data, whose claim exists only downstream, was moved at +%s: placed on %q", time.Since(partStart).Round(time.Second), got)
		}
		if uid := pe.downstreamClaimUID(ctx, t, victim, "operator-data", "operator-made"); uid != operatorClaimUID {
			t.Fatalf("the operator's claim on %s changed at +%s: UID %q, was %q", victim, time.Since(partStart).Round(time.Second), uid, operatorClaimUID)
		}
	}
	sample := func(timeout time.Duration, what string, done func(ctx context.Context) bool) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for !done(ctx) {
			check(ctx)
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %s waiting for %s", timeout, what)
			}
			time.Sleep(200 * time.Millisecond)
		}
		check(ctx)
	}

	// The stateless namespace is added to the other target and, once ready there, marked
	// for removal from the victim; the stateful one is held.
	sample(failoverHeartbeatThreshold+failoverGracePeriod+90*time.Second, "the stateless namespace to move", func(ctx context.Context) bool {
		ns, err := statelessNS(ctx)
		if err != nil {
			return false
		}
		_, removing := ns.Annotations[workloadv1alpha1.DeletionAnnotation(victimKey)]
		return removing && pe.readyReplicas(ctx, t, other, "stateless", "web") == 2
	})
	movedAt := time.Now()
	t.Logf("the stateless namespace moved to %s %s after the partition began; %d samples, none without a ready copy",
		other, movedAt.Sub(partStart).Round(time.Second), samples)
	// It moved by automatic failover: the victim has not been Ready for the grace period.
	if ready := meta.FindStatusCondition(pe.syncTarget(ctx, t, victim).Status.Conditions, workloadv1alpha1.SyncTargetReady); ready == nil ||
		ready.Status == metav1.ConditionTrue || movedAt.Before(ready.LastTransitionTime.Add(failoverGracePeriod)) {
		t.Fatalf("the move was not a failover after the grace period: %s Ready = %+v", victim, ready)
	}
	sample(30*time.Second, "the FailoverHeld Events and condition", func(ctx context.Context) bool {
		ok, _ := pe.namespaceEvent(ctx, t, "stateful", "FailoverHeld")
		okOperator, _ := pe.namespaceEvent(ctx, t, "operator-data", "FailoverHeld")
		ok = ok && okOperator
		c := pe.placementCondition(ctx, t, "web", schedulingv1alpha1.PlacementScheduled)
		return ok && c != nil && c.Reason == schedulingv1alpha1.ReasonFailoverHeld && strings.Contains(c.Message, "stateful")
	})

	fp.Heal()
	healAt := time.Now()
	// The victim's syncer comes back: it removes its stateless copy, keeps the stateful one.
	sample(90*time.Second, "the victim's stateless copy to be removed and the victim to be Ready again", func(ctx context.Context) bool {
		return pe.readyReplicas(ctx, t, victim, "stateless", "web") == -1 &&
			strings.Join(pe.targetsOf(ctx, t, "stateless"), ",") == other &&
			meta.IsStatusConditionTrue(pe.syncTarget(ctx, t, victim).Status.Conditions, workloadv1alpha1.SyncTargetReady)
	})
	t.Logf("after the heal (%s) the old stateless copy was removed and %s is Ready", time.Since(healAt).Round(time.Second), victim)
	holdFor(t, 10*time.Second, "the stateful namespace after the heal", func(ctx context.Context) error {
		check(ctx)
		if n := pe.readyReplicas(ctx, t, victim, "stateful", "db"); n != 1 {
			return fmt.Errorf("the stateful workload on %s has %d ready replicas, want 1", victim, n)
		}
		if _, err := upA.CoreV1().PersistentVolumeClaims("stateful").Get(ctx, "data", metav1.GetOptions{}); err != nil {
			return fmt.Errorf("the upstream claim: %w", err)
		}
		return nil
	})
}
