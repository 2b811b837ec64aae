package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/tmc-dev/tmc/pkg/localenv"
	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// hubEnv is a plain Kubernetes hub (apiserver + kube-controller-manager with every default
// controller) with a Location and the SyncTarget east, one kwok physical cluster, the real
// syncer in hub mode and the real `tmc-controller --hub`.
type hubEnv struct {
	env        *localenv.Environment
	hub        *localenv.Hub
	cluster    *localenv.PhysicalCluster
	st         *workloadv1alpha1.SyncTarget
	stKey      string
	syncer     *localenv.Component
	controller *localenv.Component
}

// setupHubEnv starts a hubEnv whose kube-controller-manager runs controllers (see
// localenv.HubOptions).
func setupHubEnv(t *testing.T, controllers string) *hubEnv {
	t.Helper()
	ctx := t.Context()
	env := localenv.StartForTest(t, localenv.Options{
		PhysicalClusters: []localenv.PhysicalClusterOptions{{Name: clusterName, Nodes: 2}},
		Users:            []string{syncerUser, controllerUser},
	})
	hub, err := env.StartHub(ctx, localenv.HubOptions{Controllers: controllers})
	if err != nil {
		t.Fatal(err)
	}
	he := &hubEnv{env: env, hub: hub, cluster: env.Cluster(clusterName), stKey: workloadv1alpha1.ToSyncTargetKey(localenv.HubWorkspace, clusterName)}
	tc := tmcClient(t, hub.AdminConfig())
	if _, err := tc.SchedulingV1alpha1().Locations().Create(ctx, &schedulingv1alpha1.Location{ObjectMeta: metav1.ObjectMeta{Name: "everywhere"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if he.st, err = tc.WorkloadV1alpha1().SyncTargets().Create(ctx, &workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{Name: clusterName}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The RBAC `kubectl tmc workload sync` generates for a hub: location and workload rules
	// both in the hub, the downstream RBAC and admission policy on the cluster.
	if err := hub.GrantSyncer(ctx, localenv.HubSyncerGrant{User: syncerUser, SyncTargetName: clusterName, Cluster: clusterName}); err != nil {
		t.Fatal(err)
	}
	if err := hub.GrantController(ctx, controllerUser); err != nil {
		t.Fatal(err)
	}
	if he.syncer, err = hub.StartSyncer(ctx, localenv.SyncerOptions{
		Binary:                        filepath.Join(binDir, "workload-syncer"),
		User:                          syncerUser,
		Cluster:                       clusterName,
		SyncTargetName:                clusterName,
		SyncTargetUID:                 string(he.st.UID),
		HeartbeatInterval:             2 * time.Second,
		DownstreamNamespaceCleanDelay: 3 * time.Second,
		DiscoveryInterval:             5 * time.Second,
		QPS:                           -1,
		Verbosity:                     2,
	}); err != nil {
		t.Fatal(err)
	}
	if he.controller, err = hub.StartController(ctx, localenv.ControllerOptions{
		Binary:               filepath.Join(binDir, "tmc-controller"),
		User:                 controllerUser,
		HeartbeatThreshold:   10 * time.Second,
		UnhealthyGracePeriod: 10 * time.Minute,
		QPS:                  -1,
		Verbosity:            2,
		ReadyTimeout:         60 * time.Second,
	}); err != nil {
		t.Fatal(err)
	}
	return he
}

func (he *hubEnv) downstreamNamespace(t *testing.T, ns string) string {
	t.Helper()
	name, err := workloadv1alpha1.NewNamespaceLocator(localenv.HubWorkspace, clusterName, he.st.UID, localenv.HubWorkspace, ns).DownstreamNamespaceName()
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// placeNamespace creates a Placement in the hub (spec.locationWorkspace "hub") and namespace
// ns it selects, waits until the tmc-controller has placed ns on east under the SyncTarget
// key the syncer uses in hub mode, and returns that key's state label.
func (he *hubEnv) placeNamespace(t *testing.T, ns string) string {
	t.Helper()
	upstream := kubeClient(t, he.hub.AdminConfig())
	placed := map[string]string{"tmc.dev/placed": "true"}
	if _, err := tmcClient(t, he.hub.AdminConfig()).SchedulingV1alpha1().Placements().Create(t.Context(), &schedulingv1alpha1.Placement{
		ObjectMeta: metav1.ObjectMeta{Name: ns},
		Spec: schedulingv1alpha1.PlacementSpec{
			LocationWorkspace: localenv.HubWorkspace,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: placed},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createNamespace(t, upstream, ns, placed)
	stateLabel := workloadv1alpha1.ClusterResourceStateLabel(he.stKey)
	eventually(t, 60*time.Second, "namespace "+ns+" was not placed on east under the hub's SyncTarget key", func(ctx context.Context) (bool, error) {
		n, err := upstream.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return err == nil && n.Labels[stateLabel] == workloadv1alpha1.ResourceStateSync, nil
	})
	return stateLabel
}

// TestHubMode runs the real syncer and tmc-controller against a plain Kubernetes hub: a
// Placement places a namespace, its Deployment runs downstream, its Service and CronJob are
// synced, and the Jobs the hub's own CronJob controller creates
// (and the ReplicaSets of the hub's Deployment controller) are never synced: the CronJob's
// Jobs run downstream only, created there by the downstream CronJob. The Deployment's status,
// owned by the hub's Deployment controller, goes up to the per-target status annotation.
func TestHubMode(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	he := setupHubEnv(t, localenv.HubControllersAll)
	upstream := kubeClient(t, he.hub.AdminConfig())
	down := kubeClient(t, he.cluster.AdminConfig())
	stateLabel := he.placeNamespace(t, "shop")

	if _, err := upstream.AppsV1().Deployments("shop").Create(ctx, deployment("web", 2, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := upstream.CoreV1().Services("shop").Create(ctx, hubService("web"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := upstream.BatchV1().CronJobs("shop").Create(ctx, everyMinute("tick"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dns := he.downstreamNamespace(t, "shop")

	// The copy runs downstream; on this hub its status goes up to the per-target status
	// annotation (see the end of the test).
	eventually(t, 120*time.Second, "the Deployment did not run downstream with 2 ready replicas", func(ctx context.Context) (bool, error) {
		d, err := down.AppsV1().Deployments(dns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == 2, nil
	})
	owned := workloadv1alpha1.InternalDownstreamClusterLabel + "=" + he.stKey
	eventually(t, 30*time.Second, "the Service and the CronJob were not synced downstream", func(ctx context.Context) (bool, error) {
		svc, err := down.CoreV1().Services(dns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil || svc.Labels[workloadv1alpha1.InternalDownstreamClusterLabel] != he.stKey {
			return false, nil
		}
		cj, err := down.BatchV1().CronJobs(dns).Get(ctx, "tick", metav1.GetOptions{})
		return err == nil && cj.Labels[workloadv1alpha1.InternalDownstreamClusterLabel] == he.stKey, nil
	})

	// The schedule fires on both sides within two minutes: the hub's CronJob controller
	// makes Jobs on the hub, the physical cluster's makes them downstream.
	var upstreamJobs, downstreamJobs int
	eventually(t, 150*time.Second, "the CronJob did not make Jobs on both sides", func(ctx context.Context) (bool, error) {
		up, err := cronJobChildren(ctx, upstream, "shop", "tick")
		if err != nil {
			return false, err
		}
		dn, err := cronJobChildren(ctx, down, dns, "tick")
		if err != nil {
			return false, err
		}
		upstreamJobs, downstreamJobs = len(up), len(dn)
		return upstreamJobs > 0 && downstreamJobs > 0, nil
	})
	t.Logf("Jobs of CronJob tick: %d on the hub (never run: no nodes), %d downstream", upstreamJobs, downstreamJobs)

	// None of what the hub's controllers create is selected or copied: no state label on
	// the hub's Jobs and ReplicaSets, no downstream Job or ReplicaSet owned by the syncer.
	// Held for a while, since label propagation would come after the objects appear.
	holdFor(t, 10*time.Second, "objects made by the hub's controllers were synced", func(ctx context.Context) error {
		return noControllerChildrenSynced(ctx, upstream, down, "shop", dns, stateLabel, owned)
	})
	// The hub's Deployment controller owns the Deployment's .status (computed from the hub's
	// own pods, which never run): the syncer does not fight it but reports the downstream
	// status in the per-target status annotation, and says so once in a Warning Event.
	// TestHubModeWithoutWorkloadControllers is the hub set up as README recommends.
	annotation := workloadv1alpha1.StatusAnnotation(he.stKey)
	eventually(t, 60*time.Second, "hub Deployment web does not report the downstream 2 ready replicas in "+annotation, func(ctx context.Context) (bool, error) {
		d, err := upstream.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		var status appsv1.DeploymentStatus
		raw, ok := d.Annotations[annotation]
		if !ok || json.Unmarshal([]byte(raw), &status) != nil {
			return false, nil
		}
		return status.ReadyReplicas == 2, nil
	})
	eventually(t, 30*time.Second, "no StatusOwnedUpstream Event on hub Deployment web", func(ctx context.Context) (bool, error) {
		events, err := upstream.CoreV1().Events("shop").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range events.Items {
			if e.Reason == "StatusOwnedUpstream" && e.Type == corev1.EventTypeWarning && e.InvolvedObject.Kind == "Deployment" && e.InvolvedObject.Name == "web" {
				t.Logf("Event on hub Deployment web: %s", e.Message)
				return true, nil
			}
		}
		return false, nil
	})
}

// TestHubModeWithoutWorkloadControllers: on a hub whose kube-controller-manager leaves
// out the workload controllers (README, "Running the controller"), the status the syncer
// copies up stays: the Deployment's ready replicas hold at the downstream value.
func TestHubModeWithoutWorkloadControllers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	he := setupHubEnv(t, localenv.HubControllersWithoutWorkloads)
	upstream := kubeClient(t, he.hub.AdminConfig())
	down := kubeClient(t, he.cluster.AdminConfig())
	he.placeNamespace(t, "shop")
	if _, err := upstream.AppsV1().Deployments("shop").Create(ctx, deployment("web", 2, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := upstream.CoreV1().Services("shop").Create(ctx, hubService("web"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dns := he.downstreamNamespace(t, "shop")
	eventually(t, 120*time.Second, "the Deployment did not run downstream and report 2 ready replicas on the hub", func(ctx context.Context) (bool, error) {
		d, err := upstream.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == 2, nil
	})
	holdFor(t, 10*time.Second, "the synced status to stay on the hub", func(ctx context.Context) error {
		d, err := upstream.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.ReadyReplicas != 2 {
			return fmt.Errorf("hub Deployment web reports %d ready replicas, want the downstream 2", d.Status.ReadyReplicas)
		}
		if _, err := down.CoreV1().Services(dns).Get(ctx, "web", metav1.GetOptions{}); err != nil {
			return fmt.Errorf("downstream Service web: %w", err)
		}
		return nil
	})
	rss, err := upstream.AppsV1().ReplicaSets("shop").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rss.Items) != 0 {
		t.Errorf("the hub made %d ReplicaSets without its Deployment controller", len(rss.Items))
	}
}

// noControllerChildrenSynced reports the first Job or ReplicaSet made by a controller on
// the hub that carries the state label, and the first downstream one carrying the
// ownership label.
func noControllerChildrenSynced(ctx context.Context, upstream, down kubernetes.Interface, ns, dns, stateLabel, owned string) error {
	jobs, err := upstream.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, j := range jobs.Items {
		if _, ok := j.Labels[stateLabel]; ok {
			return fmt.Errorf("hub Job %s (made by the hub's CronJob controller) is labelled %s=%q", j.Name, stateLabel, j.Labels[stateLabel])
		}
	}
	rss, err := upstream.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, rs := range rss.Items {
		if _, ok := rs.Labels[stateLabel]; ok {
			return fmt.Errorf("hub ReplicaSet %s (made by the hub's Deployment controller) is labelled %s=%q", rs.Name, stateLabel, rs.Labels[stateLabel])
		}
	}
	downJobs, err := down.BatchV1().Jobs(dns).List(ctx, metav1.ListOptions{LabelSelector: owned})
	if err != nil {
		return err
	}
	if len(downJobs.Items) > 0 {
		return fmt.Errorf("downstream Job %s is a copy of a hub Job (owned by the syncer)", downJobs.Items[0].Name)
	}
	downRSs, err := down.AppsV1().ReplicaSets(dns).List(ctx, metav1.ListOptions{LabelSelector: owned})
	if err != nil {
		return err
	}
	if len(downRSs.Items) > 0 {
		return fmt.Errorf("downstream ReplicaSet %s is a copy of a hub ReplicaSet (owned by the syncer)", downRSs.Items[0].Name)
	}
	return nil
}

// cronJobChildren returns the Jobs of namespace ns controlled by CronJob name.
func cronJobChildren(ctx context.Context, c kubernetes.Interface, ns, name string) ([]batchv1.Job, error) {
	list, err := c.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []batchv1.Job
	for _, j := range list.Items {
		if ref := metav1.GetControllerOf(&j); ref != nil && ref.Kind == "CronJob" && ref.Name == name {
			out = append(out, j)
		}
	}
	return out, nil
}

func hubService(name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
}

// everyMinute is a CronJob that fires every minute.
func everyMinute(name string) *batchv1.CronJob {
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.CronJobSpec{
			Schedule:          "* * * * *",
			ConcurrencyPolicy: batchv1.ForbidConcurrent,
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "tick", Image: "busybox:1.36", Command: []string{"true"}}},
			}}}},
		},
	}
}
