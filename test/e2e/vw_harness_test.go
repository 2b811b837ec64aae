package e2e

import (
	"context"
	"maps"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tmc-dev/tmc/pkg/localenv"
	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// viewEnv is a real environment run as with the virtual-workspace server: a location
// workspace, workload workspaces, one kwok cluster, one tmc-virtual-workspaces server per
// shard, and SyncTargets registered as `kubectl tmc workload sync` registers them (the
// syncer's credential holds, upstream, only its own SyncTarget in the location workspace).
type viewEnv struct {
	env     *localenv.Environment
	servers []*localenv.VirtualWorkspaces
	// urls are the base URLs the controller publishes, one per server (a server's own URL
	// unless a fault proxy stands in front of it: partitionableServer).
	urls    []string
	targets map[string]*viewTarget
}

// viewTarget is one SyncTarget and its syncer.
type viewTarget struct {
	st     *workloadv1alpha1.SyncTarget
	key    string
	user   string
	syncer *localenv.Component
}

type viewEnvOptions struct {
	// targets are the SyncTargets to register (default: clusterName); all sync to the one
	// physical cluster.
	targets []string
	// tweak adjusts the environment's options.
	tweak func(*localenv.Options)
}

func setupViewEnv(t *testing.T, o viewEnvOptions) *viewEnv {
	t.Helper()
	ctx := t.Context()
	if len(o.targets) == 0 {
		o.targets = []string{clusterName}
	}
	opts := localenv.Options{
		Workspaces:       []string{locationWS, wsA, wsB},
		PhysicalClusters: []localenv.PhysicalClusterOptions{{Name: clusterName, Nodes: 2}},
	}
	for _, name := range o.targets {
		opts.Users = append(opts.Users, "syncer-"+name, "syncer-"+name+"-other")
	}
	if o.tweak != nil {
		o.tweak(&opts)
	}
	env := localenv.StartForTest(t, opts)
	ve := &viewEnv{env: env, targets: map[string]*viewTarget{}}
	paths := append([]string(nil), opts.Workspaces...)
	for _, shard := range opts.Shards {
		paths = append(paths, shard.Workspaces...)
	}
	for _, p := range paths {
		if err := localenv.InstallCRDs(ctx, env.Workspace(p).AdminConfig()); err != nil {
			t.Fatal(err)
		}
	}
	loc := tmcClient(t, env.Workspace(locationWS).AdminConfig())
	if _, err := loc.SchedulingV1alpha1().Locations().Create(ctx, &schedulingv1alpha1.Location{ObjectMeta: metav1.ObjectMeta{Name: "everywhere"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range o.targets {
		st, err := loc.WorkloadV1alpha1().SyncTargets().Create(ctx, &workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		user := "syncer-" + name
		// The location workspace only: no grant in any workload workspace.
		if err := env.GrantSyncer(ctx, localenv.SyncerGrant{User: user, SyncTargetName: name, LocationWorkspace: locationWS, Cluster: clusterName}); err != nil {
			t.Fatal(err)
		}
		ve.targets[name] = &viewTarget{st: st, key: workloadv1alpha1.ToSyncTargetKey(env.Workspace(locationWS).Name, name), user: user}
	}
	for _, shard := range env.Shards() {
		vw, err := env.StartVirtualWorkspaces(ctx, localenv.VirtualWorkspacesOptions{
			Binary:   filepath.Join(binDir, "tmc-virtual-workspaces"),
			Name:     "tmc-virtual-workspaces-" + shard.Name,
			Upstream: shard.FrontProxy.BaseConfig(localenv.AdminUser),
		})
		if err != nil {
			t.Fatal(err)
		}
		ve.servers = append(ve.servers, vw)
		ve.urls = append(ve.urls, vw.URL)
	}
	return ve
}

// startController runs the tmc-controller as the shard admin, discovering the workload
// workspaces, and publishing the syncer views of every SyncTarget.
func (ve *viewEnv) startController(t *testing.T) *localenv.Component {
	t.Helper()
	args := []string{}
	for _, u := range ve.urls {
		args = append(args, "--virtual-workspace-url="+u)
	}
	c, err := ve.env.StartController(t.Context(), localenv.ControllerOptions{
		Binary:             filepath.Join(binDir, "tmc-controller"),
		LocationWorkspaces: []string{locationWS},
		HeartbeatThreshold: 10 * time.Second,
		QPS:                -1,
		Verbosity:          2,
		ExtraArgs:          args,
		ReadyTimeout:       60 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range ve.targets {
		ve.waitForViews(t, name, len(ve.servers))
	}
	return c
}

// waitForViews waits until SyncTarget name lists n syncer views.
func (ve *viewEnv) waitForViews(t *testing.T, name string, n int) {
	t.Helper()
	loc := tmcClient(t, ve.env.Workspace(locationWS).AdminConfig())
	eventually(t, 60*time.Second, "status.virtualWorkspaces of "+name, func(ctx context.Context) (bool, error) {
		st, err := loc.WorkloadV1alpha1().SyncTargets().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return len(st.Status.VirtualWorkspaces) == n, nil
	})
}

// startSyncer runs the syncer of SyncTarget name with its own credential, in auto mode.
func (ve *viewEnv) startSyncer(t *testing.T, name string, args ...string) *localenv.Component {
	t.Helper()
	tgt := ve.targets[name]
	c, err := ve.env.StartSyncer(t.Context(), localenv.SyncerOptions{
		Binary:                        filepath.Join(binDir, "workload-syncer"),
		User:                          tgt.user,
		Cluster:                       clusterName,
		SyncTargetWorkspace:           locationWS,
		SyncTargetName:                name,
		SyncTargetUID:                 string(tgt.st.UID),
		HeartbeatInterval:             2 * time.Second,
		DownstreamNamespaceCleanDelay: 3 * time.Second,
		QPS:                           -1,
		Verbosity:                     2,
		ExtraArgs:                     args,
	})
	if err != nil {
		t.Fatal(err)
	}
	tgt.syncer = c
	return c
}

// downstreamNamespace is the downstream namespace of ws/ns for SyncTarget name.
func (ve *viewEnv) downstreamNamespace(t *testing.T, name, ws, ns string) string {
	t.Helper()
	tgt := ve.targets[name]
	dns, err := workloadv1alpha1.NewNamespaceLocator(ve.env.Workspace(locationWS).Name, name, tgt.st.UID, ve.env.Workspace(ws).Name, ns).DownstreamNamespaceName()
	if err != nil {
		t.Fatal(err)
	}
	return dns
}

// syncLabels selects an object for SyncTarget name.
func (ve *viewEnv) syncLabels(name string) map[string]string {
	return map[string]string{workloadv1alpha1.ClusterResourceStateLabel(ve.targets[name].key): workloadv1alpha1.ResourceStateSync}
}

// partitionableServer puts a fault proxy in front of server i and has the controller
// publish the proxy's URL instead of the server's, so that the proxy cuts the syncers
// from that server's view. Call it before startController.
func (ve *viewEnv) partitionableServer(t *testing.T, i int) *localenv.FaultProxy {
	t.Helper()
	u, err := url.Parse(ve.servers[i].URL)
	if err != nil {
		t.Fatal(err)
	}
	fp, err := localenv.StartFaultProxy(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fp.Close() })
	ve.urls[i] = "https://" + fp.Addr
	return fp
}

// placeNamespace creates namespace ns in workspace ws labelled Sync for every given
// SyncTarget, as placement labels it (by hand: no Placement selects it, so the placement
// controller leaves it alone and the resource controller makes its objects follow).
func (ve *viewEnv) placeNamespace(t *testing.T, ws, ns string, targets ...string) {
	t.Helper()
	labels := map[string]string{}
	for _, name := range targets {
		maps.Copy(labels, ve.syncLabels(name))
	}
	createNamespace(t, kubeClient(t, ve.env.Workspace(ws).AdminConfig()), ns, labels)
}

// bindWorkspaces gives each workspace a Placement that selects no namespace, so that the
// tmc-controller binds it (its resource controller then runs there) without placing
// anything itself.
func (ve *viewEnv) bindWorkspaces(t *testing.T, workspaces ...string) {
	t.Helper()
	for _, ws := range workspaces {
		if _, err := tmcClient(t, ve.env.Workspace(ws).AdminConfig()).SchedulingV1alpha1().Placements().Create(t.Context(), &schedulingv1alpha1.Placement{
			ObjectMeta: metav1.ObjectMeta{Name: "bind-only"},
			Spec:       schedulingv1alpha1.PlacementSpec{LocationWorkspace: locationWS},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// ownershipSelector selects the downstream objects SyncTarget name owns.
func (ve *viewEnv) ownershipSelector(name string) string {
	return workloadv1alpha1.InternalDownstreamClusterLabel + "=" + ve.targets[name].key
}
