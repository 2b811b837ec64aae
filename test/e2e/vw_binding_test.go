package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/tmc-dev/tmc/pkg/localenv"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// Issue 13, acceptance 1 and 2: with the virtual-workspace server, a workload workspace
// created after everything runs gets its namespace placed and its Deployment running
// downstream, with no restart and no RBAC created in it for the syncer or the controller;
// the syncer's credential can do nothing upstream but read its SyncTarget (and write its
// status) and sync through its view, which shows only its own objects.
func TestVirtualWorkspaceBindsNewWorkspace(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const newWS = "root:org:team-new"
	ve := setupViewEnv(t, viewEnvOptions{})
	controller := ve.startController(t)
	syncer := ve.startSyncer(t, clusterName)
	pids := []int{controller.Pid(), syncer.Pid()}

	ws, err := ve.env.AddWorkspace(ctx, newWS)
	if err != nil {
		t.Fatal(err)
	}
	if err := localenv.InstallCRDs(ctx, ws.AdminConfig()); err != nil {
		t.Fatal(err)
	}
	rbacBefore := rbacNames(ctx, t, ws)
	up := kubeClient(t, ws.AdminConfig())
	if _, err := tmcClient(t, ws.AdminConfig()).SchedulingV1alpha1().Placements().Create(ctx, &schedulingv1alpha1.Placement{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: schedulingv1alpha1.PlacementSpec{
			LocationWorkspace: locationWS,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tmc.dev/placed": "true"}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := up.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"tmc.dev/placed": "true"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := up.AppsV1().Deployments("web").Create(ctx, deployment("hello", 2, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Another target's object, in a namespace not placed here: never visible to this syncer.
	otherKey := workloadv1alpha1.ToSyncTargetKey(ve.env.Workspace(locationWS).Name, "west")
	if _, err := up.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "west-only"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := up.CoreV1().ConfigMaps("west-only").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "for-west",
		Labels: map[string]string{workloadv1alpha1.ClusterResourceStateLabel(otherKey): workloadv1alpha1.ResourceStateSync}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	dns := ve.downstreamNamespace(t, clusterName, newWS, "web")
	down := kubeClient(t, ve.env.Cluster(clusterName).AdminConfig())
	eventually(t, 120*time.Second, "the new workspace's Deployment running downstream", func(ctx context.Context) (bool, error) {
		d, err := down.AppsV1().Deployments(dns).Get(ctx, "hello", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return d.Status.ReadyReplicas == 2, nil
	})
	eventually(t, 60*time.Second, "the Deployment's status up in the new workspace", func(ctx context.Context) (bool, error) {
		d, err := up.AppsV1().Deployments("web").Get(ctx, "hello", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.ReadyReplicas == 2, nil
	})
	if _, err := down.CoreV1().Namespaces().Get(ctx, ve.downstreamNamespace(t, clusterName, newWS, "west-only"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("another target's namespace reached this target: %v", err)
	}
	// The hub CA copy works through the view too.
	upstreamCA, err := up.CoreV1().ConfigMaps("web").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the hub CA published downstream as kcp-root-ca.crt", func(ctx context.Context) (bool, error) {
		cm, err := down.CoreV1().ConfigMaps(dns).Get(ctx, "kcp-root-ca.crt", metav1.GetOptions{})
		return err == nil && cm.Data["ca.crt"] == upstreamCA.Data["ca.crt"] && cm.Data["ca.crt"] != "", nil
	})
	if after := rbacNames(ctx, t, ws); !slices.Equal(after, rbacBefore) {
		t.Errorf("RBAC in the new workspace changed: before %v, after %v", rbacBefore, after)
	}
	if got := []int{controller.Pid(), syncer.Pid()}; !slices.Equal(got, pids) {
		t.Errorf("controller and syncer pids %v, want %v throughout (no restart)", got, pids)
	}
	// One upstream informer per synced type for all workspaces.
	tgt := ve.targets[clusterName]
	st, err := tmcClient(t, ve.env.Workspace(locationWS).AdminConfig()).WorkloadV1alpha1().SyncTargets().Get(ctx, clusterName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, syncer.MetricsURL, "syncer_informers", map[string]string{"side": "upstream"}); got > float64(st.Status.AcceptedResourceCount) {
		t.Errorf("%v upstream informers for %d accepted types, want at most one per type", got, st.Status.AcceptedResourceCount)
	}

	t.Run("the syncer's credential reaches nothing directly", func(t *testing.T) {
		for _, p := range []string{newWS, wsA, locationWS} {
			direct := kubeClient(t, ve.env.Workspace(p).Config(tgt.user))
			if _, err := direct.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
				t.Errorf("%s: listing ConfigMaps with the syncer's token: %v, want Forbidden", p, err)
			}
			if _, err := direct.AppsV1().Deployments("web").Get(ctx, "hello", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
				t.Errorf("%s: getting a Deployment with the syncer's token: %v, want Forbidden", p, err)
			}
		}
	})
	t.Run("through the view: only this target's objects, only for its syncer", func(t *testing.T) {
		view := func(user string) *rest.Config {
			return &rest.Config{
				Host:            st.Status.VirtualWorkspaces[0].SyncerURL + logicalcluster.ClustersPrefix + ws.Name,
				BearerToken:     ve.env.Tokens.Token(user),
				TLSClientConfig: rest.TLSClientConfig{CAData: ve.env.PKI.CAData},
			}
		}
		cms, err := kubeClient(t, view(tgt.user)).CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, cm := range cms.Items {
			if cm.Labels[workloadv1alpha1.ClusterResourceStateLabel(tgt.key)] != workloadv1alpha1.ResourceStateSync {
				t.Errorf("the view lists %s, not labelled for this target", cm.Name)
			}
		}
		if _, err := kubeClient(t, view(tgt.user)).CoreV1().ConfigMaps("west-only").Get(ctx, "for-west", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("another target's ConfigMap through the view: %v, want NotFound", err)
		}
		if _, err := kubeClient(t, view(tgt.user+"-other")).CoreV1().ConfigMaps("web").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("a token without sync on the SyncTarget: %v, want Forbidden", err)
		}
	})
}
