package syncer

import (
	"time"

	"k8s.io/client-go/rest"

	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// Config is everything a syncer needs to run. cmd/workload-syncer/options builds it from
// flags; tests and the local environment build it directly.
type Config struct {
	// UpstreamConfig reaches the control plane. Its Host is the root of a kcp-style front
	// proxy ("https://host:6443", without /clusters/...) when SyncTargetWorkspace is set; the
	// syncer adds /clusters/<path> per workspace. With an empty SyncTargetWorkspace it is a
	// plain Kubernetes hub and the only workspace.
	UpstreamConfig *rest.Config
	// SyncTargetWorkspace is the location workspace holding the SyncTarget.
	SyncTargetWorkspace logicalcluster.Path
	// SyncTargetName is the SyncTarget this syncer serves.
	SyncTargetName string
	// SyncTargetUID, when set, must match the SyncTarget's UID (guards against a SyncTarget
	// deleted and re-created under the same name).
	SyncTargetUID string

	// DownstreamConfig reaches the physical cluster.
	DownstreamConfig *rest.Config
	// AdmissionPolicyName names the ValidatingAdmissionPolicy and its binding that confine
	// the syncer downstream (SyncerConfined condition); empty means the name `kubectl tmc
	// workload sync` generates for this SyncTarget (syncerrbac.ClusterObjectName).
	AdmissionPolicyName string

	// Resources overrides SyncTarget.spec.resources when non-empty.
	Resources []workloadv1alpha1.ResourceToSync
	// Workspaces, when non-empty, is the static list of workload workspaces to sync from,
	// instead of following SyncTarget.status.workspaces.
	Workspaces []logicalcluster.Path
	// UpstreamMode says how the workload workspaces are reached: UpstreamModeAuto (the
	// default, ""), UpstreamModeDirect or UpstreamModeVirtualWorkspace.
	UpstreamMode UpstreamMode

	// Workers is the number of workers per controller.
	Workers int
	// HeartbeatInterval is how often the syncer reports that it is alive.
	HeartbeatInterval time.Duration
	// DownstreamNamespaceCleanDelay is how long an empty downstream namespace whose upstream
	// namespace is gone is kept before it is deleted.
	DownstreamNamespaceCleanDelay time.Duration
	// ResyncPeriod of the informers (0 disables resync).
	ResyncPeriod time.Duration
	// DiscoveryInterval is how often downstream resource types and permissions are
	// re-checked (default 30s).
	DiscoveryInterval time.Duration
	// DeletionBudget configures the mass-deletion breaker; nil means the defaults.
	DeletionBudget *DeletionBudget

	// MetricsBindAddress serves /metrics ("0" disables).
	MetricsBindAddress string
	// HealthProbeBindAddress serves /healthz, /livez and /readyz ("0" disables).
	HealthProbeBindAddress string

	// LeaderElection, when set, makes replicas elect a leader through a downstream Lease.
	LeaderElection *LeaderElectionConfig

	// Tunnel holds a reverse tunnel to each syncer view of SyncTarget.status.virtualWorkspaces
	// (at <syncerURL>/tunnel), through which the virtual-workspace server reaches the log,
	// exec, attach and portforward of upsynced pods (flag --tunnel, default true).
	Tunnel bool

	// PodName is "<namespace>/<name>" of the syncer pod, or the host name outside a cluster;
	// reported in SyncTarget.status.syncer.
	PodName string
}

// UpstreamMode is how the syncer reaches the workload workspaces.
type UpstreamMode string

const (
	// UpstreamModeAuto follows SyncTarget.status.virtualWorkspaces when the syncer starts:
	// through the virtual-workspace server if it lists any, else directly. If that changes
	// later the syncer exits, to be restarted in the other mode.
	UpstreamModeAuto UpstreamMode = "auto"
	// UpstreamModeDirect reaches each workload workspace at <upstream>/clusters/<workspace>
	// with the syncer's own credential (its RBAC in every workspace), one watch per
	// (workspace, type). A plain hub is always direct.
	UpstreamModeDirect UpstreamMode = "direct"
	// UpstreamModeVirtualWorkspace reaches every workspace placed on the target through the
	// syncer views in SyncTarget.status.virtualWorkspaces (waiting for them): one watch per
	// (shard, type), workspaces found from the placed namespaces.
	UpstreamModeVirtualWorkspace UpstreamMode = "virtual-workspace"
)

// LeaderElectionConfig configures leader election through a Lease in the physical cluster.
type LeaderElectionConfig struct {
	Namespace     string
	Name          string
	Identity      string
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// Defaults of the mass-deletion breaker.
const (
	DefaultDeletionBudgetObjects = 10
	DefaultDeletionBudgetPercent = 20
	DefaultDeletionBudgetWindow  = time.Minute
)

// DeletionBudget bounds the downstream deletions the syncer decides on its own (the
// upstream object carries no deletionTimestamp): more than max(Objects, Percent % of the
// target's synced objects) within Window pauses them until an operator resumes. Deletions
// users ask for are never counted. Copies whose upstream object vanished without a
// deletion ("upstream lost") are kept until an operator resumes, whatever the budget.
type DeletionBudget struct {
	// Objects is the budget's floor in objects. 0 with Percent 0 pauses every deletion of
	// a synced object; a negative value disables the budget (upstream-lost copies are
	// still kept until resumed).
	Objects int
	// Percent of the target's synced objects the budget grows to on larger targets.
	Percent int
	// Window is the sliding window the deletions are counted in.
	Window time.Duration
}

// DefaultDeletionBudget returns the defaults: 10 objects or 20 %, per minute.
func DefaultDeletionBudget() DeletionBudget {
	return DeletionBudget{Objects: DefaultDeletionBudgetObjects, Percent: DefaultDeletionBudgetPercent, Window: DefaultDeletionBudgetWindow}
}
