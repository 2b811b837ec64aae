package localenv

import (
	"context"
	"fmt"
	"path/filepath"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/rest"

	"github.com/tmc-dev/tmc/pkg/cliplugins/workload/sync/syncerrbac"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// HubWorkspace is what the workload-syncer and `tmc-controller --hub` call the only
// workspace of a plain Kubernetes hub: SyncTarget keys and namespace locators use it, and
// Placements name it in spec.locationWorkspace.
const HubWorkspace = "hub"

// HubControllersAll runs every default kube-controller-manager controller on the hub (node
// IPAM aside, which needs a cluster CIDR): the hub's Deployment, ReplicaSet, Job and CronJob
// controllers act on the workloads too, as on a hub nobody tuned for TMC.
const HubControllersAll = "*,-node-ipam-controller"

// HubControllersWithoutWorkloads leaves out the controllers of the workload types TMC syncs
// by default: their status comes from downstream, and a hub controller computing it from
// the hub's own (never running) pods would overwrite it.
const HubControllersWithoutWorkloads = HubControllersAll +
	",-deployment-controller,-replicaset-controller,-statefulset-controller,-daemonset-controller,-job-controller,-cronjob-controller"

// HubOptions configures a hub.
type HubOptions struct {
	// Controllers is kube-controller-manager's --controllers (default HubControllersAll).
	Controllers string
}

// Hub is a plain Kubernetes control plane used as TMC's upstream: one kube-apiserver and a
// kube-controller-manager running every default controller unless told otherwise (a
// Deployment gets ReplicaSets and Pods, a CronJob gets Jobs, exactly as on a real hub),
// with the TMC CRDs installed. It
// has no nodes, no scheduler and no front proxy: pods created on the hub never run, and
// the hub is served at its own URL, without /clusters/.
type Hub struct {
	APIServer         *APIServer
	ControllerManager *Process
	// KubeconfigPath is an admin kubeconfig straight to the hub.
	KubeconfigPath string

	env *Environment
}

// StartHub starts a hub in the environment (once: its data lives under the etcd prefix
// /hub), tracked with the environment, and installs the TMC CRDs on it.
func (env *Environment) StartHub(ctx context.Context, opts HubOptions) (*Hub, error) {
	if opts.Controllers == "" {
		opts.Controllers = HubControllersAll
	}
	as, err := StartAPIServer(ctx, env.bins, env.PKI, env.Tokens, APIServerOptions{
		Name:       "hub",
		EtcdURL:    env.Etcd.ClientURL,
		EtcdPrefix: "/hub",
	}, env.LogDir)
	if err != nil {
		return nil, fmt.Errorf("failed to start the hub: %w", err)
	}
	env.track(as.Process)
	kubeconfig, err := WriteKubeconfig(as.AdminConfig(), "hub", filepath.Join(env.Dir, "kubeconfigs", "hub.kubeconfig"))
	if err != nil {
		return nil, err
	}
	hub := &Hub{APIServer: as, KubeconfigPath: kubeconfig, env: env}
	hub.ControllerManager = NewProcess("hub-controller-manager", env.bins.Path(BinKubeControllerManager),
		append(env.clusterControllerManagerArgs(kubeconfig), "--controllers="+opts.Controllers, "--v=1"), env.LogDir)
	if err := hub.ControllerManager.Start(); err != nil {
		return nil, fmt.Errorf("failed to start the hub: %w", err)
	}
	env.track(hub.ControllerManager)
	if err := InstallCRDs(ctx, as.AdminConfig()); err != nil {
		return nil, fmt.Errorf("failed to install the CRDs on the hub: %w", err)
	}
	return hub, nil
}

// AdminConfig returns an admin rest config to the hub.
func (h *Hub) AdminConfig() *rest.Config { return h.APIServer.AdminConfig() }

// Config returns a rest config for user to the hub.
func (h *Hub) Config(user string) *rest.Config { return h.APIServer.Config(user) }

// Processes returns the hub's processes.
func (h *Hub) Processes() []*Process { return []*Process{h.ControllerManager, h.APIServer.Process} }

// HubSyncerGrant names a syncer's token user on a hub and the physical cluster it serves.
type HubSyncerGrant struct {
	// User is the syncer's token user (one of Options.Users).
	User string
	// SyncTargetName is its SyncTarget on the hub.
	SyncTargetName string
	// Cluster is the physical cluster the syncer serves.
	Cluster string
	// Resources are the synced types; empty means the default set.
	Resources []workloadv1alpha1.ResourceToSync
}

// GrantSyncer is Environment.GrantSyncer for a syncer whose upstream is the hub: the location and
// workload workspace RBAC `kubectl tmc workload sync` generates both go into the one hub
// cluster, under the names it gives them there (SyncerRBACName and
// syncerrbac.HubWorkloadRBACName, so that neither replaces the other), and the physical
// cluster gets the same RBAC and admission policy as for kcp, keyed by the hub's SyncTarget
// key.
func (h *Hub) GrantSyncer(ctx context.Context, g HubSyncerGrant) error {
	name := SyncerRBACName(g.SyncTargetName)
	subject := rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: g.User}
	upstream := clusterRoleAndBinding(name, subject, syncerrbac.LocationWorkspaceRules(g.SyncTargetName))
	upstream = append(upstream, syncerrbac.WorkloadWorkspaceRBAC(syncerrbac.HubWorkloadRBACName(name), subject, g.Resources)...)
	if err := createObjects(ctx, h.AdminConfig(), upstream...); err != nil {
		return fmt.Errorf("failed to grant the syncer on the hub: %w", err)
	}
	return h.env.grantDownstream(ctx, g.Cluster, subject, g.User, g.SyncTargetName, workloadv1alpha1.ToSyncTargetKey(HubWorkspace, g.SyncTargetName), g.Resources)
}

// GrantController grants the controller's user ControllerRBAC on the hub.
func (h *Hub) GrantController(ctx context.Context, user string) error {
	if err := createObjects(ctx, h.AdminConfig(), ControllerRBAC(user)...); err != nil {
		return fmt.Errorf("failed to grant the controller on the hub: %w", err)
	}
	return nil
}

// StartSyncer runs the workload-syncer in hub mode against the hub: opts.Upstream defaults
// to the hub as opts.User, and the SyncTarget workspace is left empty (the hub).
func (h *Hub) StartSyncer(ctx context.Context, opts SyncerOptions) (*Component, error) {
	if opts.SyncTargetWorkspace != "" {
		return nil, fmt.Errorf("failed to start the syncer of SyncTarget %s: a hub has no location workspace (got %s)", opts.SyncTargetName, opts.SyncTargetWorkspace)
	}
	if opts.Upstream == nil {
		opts.Upstream = h.Config(opts.User)
	}
	return h.env.StartSyncer(ctx, opts)
}

// StartController runs `tmc-controller --hub` against the hub as opts.User; the
// workspace lists of opts must be empty.
func (h *Hub) StartController(ctx context.Context, opts ControllerOptions) (*Component, error) {
	if len(opts.LocationWorkspaces) > 0 || len(opts.Workspaces) > 0 {
		return nil, fmt.Errorf("failed to start the tmc-controller: a hub is its only workspace")
	}
	opts.Hub = true
	if opts.Upstream == nil {
		opts.Upstream = h.Config(opts.User)
	}
	return h.env.StartController(ctx, opts)
}
