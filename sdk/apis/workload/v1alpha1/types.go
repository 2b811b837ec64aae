package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SyncTarget describes one physical cluster that workloads can be placed on, and is the
// place where the cluster's workload-syncer reports heartbeats, the resource types it can
// sync and its health. It lives in a location workspace.
//
// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=kcp;tmc,shortName=st
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Heartbeat",type=date,JSONPath=`.status.lastSyncerHeartbeatTime`
// +kubebuilder:printcolumn:name="Resources",type=integer,JSONPath=`.status.acceptedResourceCount`
// +kubebuilder:printcolumn:name="Workspaces",type=integer,JSONPath=`.status.workspaceCount`,priority=1
// +kubebuilder:printcolumn:name="Unschedulable",type=boolean,JSONPath=`.spec.unschedulable`,priority=1
// +kubebuilder:printcolumn:name="Key",type=string,JSONPath=`.metadata.labels['internal\.workload\.kcp\.io/key']`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SyncTarget struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec SyncTargetSpec `json:"spec,omitempty"`
	// +optional
	Status SyncTargetStatus `json:"status,omitempty"`
}

// SyncTargetSpec is what the owner of a physical cluster declares about it.
type SyncTargetSpec struct {
	// unschedulable stops new namespaces from being placed on this target. Workloads that
	// are already placed stay (cordon).
	// +optional
	// +kubebuilder:default=false
	Unschedulable bool `json:"unschedulable,omitempty"`

	// evictAfter, when set and in the past, moves every placed namespace away from this
	// target (drain).
	// +optional
	EvictAfter *metav1.Time `json:"evictAfter,omitempty"`

	// resources lists the resource types this target accepts. Empty means the default set:
	// configmaps, secrets, serviceaccounts, services, persistentvolumeclaims,
	// deployments.apps, statefulsets.apps, jobs.batch, cronjobs.batch and
	// ingresses.networking.k8s.io.
	// +optional
	// +listType=map
	// +listMapKey=group
	// +listMapKey=resource
	Resources []ResourceToSync `json:"resources,omitempty"`

	// cells are free-form properties (region, cloud, ...) that Locations and Placements can
	// select on, besides the SyncTarget's labels.
	// +optional
	Cells map[string]string `json:"cells,omitempty"`

	// tenancy relaxes, for this physical cluster, rules that keep the workspaces placed on
	// it from reaching each other's traffic. Every rule applies when tenancy is unset.
	// +optional
	Tenancy *SyncTargetTenancy `json:"tenancy,omitempty"`

	// podSecurity sets the Pod Security Admission levels of the namespaces the syncer
	// creates on this cluster (the pod-security.kubernetes.io/* namespace labels). Unset
	// means enforce baseline, warn and audit restricted. Tenants cannot change them: the
	// labels of their upstream namespaces are never copied down.
	// +optional
	PodSecurity *PodSecurity `json:"podSecurity,omitempty"`

	// conflictPolicy says what the syncer does when the physical cluster already holds an
	// object without TMC's ownership label where it would put a copy: Abort (the default)
	// leaves it untouched and reports a ResourceConflict; AdoptIfEqual takes ownership only
	// when the object already has every field TMC would apply; Overwrite takes ownership
	// and applies. An upstream object's workload.tmc.dev/conflict-policy annotation wins.
	// Downstream namespaces are never adopted, whatever the policy.
	// +optional
	// +kubebuilder:default=Abort
	// +kubebuilder:validation:Enum=Abort;AdoptIfEqual;Overwrite
	ConflictPolicy ConflictPolicy `json:"conflictPolicy,omitempty"`
}

// SyncTargetTenancy lists what the owner of a physical cluster allows the tenants placed
// on it to set. Each allowance defaults to false: the syncer drops the field from the copy
// it applies downstream and records a Warning Event on the upstream object.
type SyncTargetTenancy struct {
	// allowExternalIPs lets Services keep spec.externalIPs downstream. Any tenant who may
	// set them can intercept traffic to those addresses in the whole cluster
	// (CVE-2020-8554); allow it only when a single tenant uses the cluster or an admission
	// policy restricts the addresses.
	// +optional
	// +kubebuilder:default=false
	AllowExternalIPs bool `json:"allowExternalIPs,omitempty"`

	// allowLoadBalancerIP lets Services keep spec.loadBalancerIP downstream, so that a
	// tenant can ask the cloud load balancer for an address, possibly one reserved for
	// another tenant.
	// +optional
	// +kubebuilder:default=false
	AllowLoadBalancerIP bool `json:"allowLoadBalancerIP,omitempty"`

	// allowHostPathVolumes lets PersistentVolumes with a hostPath or local volume source
	// be synced down (persistentvolumes must be listed in spec.resources). Such a volume
	// reaches a node's file system; allow it only when the tenants may read and write it.
	// +optional
	// +kubebuilder:default=false
	AllowHostPathVolumes bool `json:"allowHostPathVolumes,omitempty"`
}

// PodSecurityLevel is a level of the Kubernetes Pod Security Standards.
// +kubebuilder:validation:Enum=privileged;baseline;restricted
type PodSecurityLevel string

// The Pod Security Standards levels, from the most permissive.
const (
	PodSecurityLevelPrivileged PodSecurityLevel = "privileged"
	PodSecurityLevelBaseline   PodSecurityLevel = "baseline"
	PodSecurityLevelRestricted PodSecurityLevel = "restricted"
)

// Defaults of SyncTargetSpec.podSecurity.
const (
	DefaultPodSecurityEnforce = PodSecurityLevelBaseline
	DefaultPodSecurityWarn    = PodSecurityLevelRestricted
	DefaultPodSecurityAudit   = PodSecurityLevelRestricted
)

// PodSecurity are the Pod Security Admission levels of a SyncTarget's downstream
// namespaces. The physical cluster's PodSecurity admission enforces them (on by default
// since Kubernetes 1.25); pods violating enforce are rejected, and the rejection is
// reported on the upstream workload as a PodsRejected Event.
type PodSecurity struct {
	// enforce is the level pods must meet to be created (default baseline).
	// +optional
	// +kubebuilder:default=baseline
	Enforce PodSecurityLevel `json:"enforce,omitempty"`
	// warn is the level above which users get a warning when they create a workload
	// downstream (default restricted).
	// +optional
	// +kubebuilder:default=restricted
	Warn PodSecurityLevel `json:"warn,omitempty"`
	// audit is the level above which the physical cluster's audit log annotates the
	// request (default restricted).
	// +optional
	// +kubebuilder:default=restricted
	Audit PodSecurityLevel `json:"audit,omitempty"`
}

// Levels returns the enforce, warn and audit levels of p, defaults filled in; p may be nil.
func (p *PodSecurity) Levels() (enforce, warn, audit PodSecurityLevel) {
	enforce, warn, audit = DefaultPodSecurityEnforce, DefaultPodSecurityWarn, DefaultPodSecurityAudit
	if p == nil {
		return enforce, warn, audit
	}
	if p.Enforce != "" {
		enforce = p.Enforce
	}
	if p.Warn != "" {
		warn = p.Warn
	}
	if p.Audit != "" {
		audit = p.Audit
	}
	return enforce, warn, audit
}

// ResourceToSync names one resource type by group and plural resource name.
type ResourceToSync struct {
	// group is the API group; empty for the core group.
	// +optional
	// +kubebuilder:default=""
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Group string `json:"group"`
	// resource is the plural, lowercase resource name, e.g. "deployments".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Resource string `json:"resource"`
}

// SyncTargetStatus is what the syncer and the TMC controllers observe about the target.
type SyncTargetStatus struct {
	// conditions: Ready (summary), SyncerReady, HeartbeatHealthy, SyncerAuthorized,
	// ResourcesSynced, DeletionsPaused.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// lastSyncerHeartbeatTime is when the syncer last reported that it is alive.
	// +optional
	LastSyncerHeartbeatTime *metav1.Time `json:"lastSyncerHeartbeatTime,omitempty"`

	// syncedResources is the syncer's verdict on each resource type of spec.resources, and the
	// types it synced before and is still releasing (state Releasing).
	// +optional
	// +listType=map
	// +listMapKey=group
	// +listMapKey=resource
	SyncedResources []SyncedResource `json:"syncedResources,omitempty"`

	// acceptedResourceCount is the number of syncedResources in state Accepted.
	// +optional
	AcceptedResourceCount int32 `json:"acceptedResourceCount,omitempty"`

	// allocatable is the sum of the allocatable resources of the downstream Nodes.
	// +optional
	Allocatable *corev1.ResourceList `json:"allocatable,omitempty"`

	// capacity is the sum of the capacity of the downstream Nodes.
	// +optional
	Capacity *corev1.ResourceList `json:"capacity,omitempty"`

	// workspaces are the workload workspaces that currently have namespaces placed on this
	// target. The syncer watches exactly these.
	// +optional
	// +listType=map
	// +listMapKey=path
	Workspaces []WorkspaceReference `json:"workspaces,omitempty"`

	// workspaceCount is len(workspaces), for printing.
	// +optional
	WorkspaceCount int32 `json:"workspaceCount,omitempty"`

	// syncer describes the syncer process serving this target.
	// +optional
	Syncer *SyncerInfo `json:"syncer,omitempty"`

	// errors summarises the syncer's errors by TMC error type.
	// +optional
	Errors *ErrorSummary `json:"errors,omitempty"`

	// virtualWorkspaces are the URLs of the virtual-workspace server's views of this target,
	// one per shard, written by the control plane (tmc-controller). The syncer follows all of
	// them: one watch per type and shard for every workspace placed on the target. Empty: the
	// syncer reaches each workload workspace directly (a plain hub, or no server deployed).
	// +optional
	// +listType=map
	// +listMapKey=syncerURL
	VirtualWorkspaces []VirtualWorkspace `json:"virtualWorkspaces,omitempty"`

	// workspaceHealth is the syncer's view of each workload workspace it syncs from:
	// whether it can read it. One unreadable workspace (its RBAC missing, say) is reported
	// here and does not turn SyncerReady False.
	// +optional
	// +listType=map
	// +listMapKey=path
	WorkspaceHealth []WorkspaceHealth `json:"workspaceHealth,omitempty"`
}

// WorkspaceHealth is whether the syncer can sync from one workload workspace.
type WorkspaceHealth struct {
	// path is the workspace's logical-cluster path.
	// +required
	// +kubebuilder:validation:MinLength=1
	Path string `json:"path"`
	// ready is true once every informer of the workspace has synced.
	Ready bool `json:"ready"`
	// reason says why the workspace is not ready: Forbidden, Unauthorized, Unreachable or
	// Syncing.
	// +optional
	Reason string `json:"reason,omitempty"`
	// message explains the reason.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
	// persistentNamespaces are the namespaces of this workspace whose downstream namespaces
	// on this cluster hold PersistentVolumeClaims, whoever created them (synced from the
	// workspace, made by a StatefulSet, or by an operator downstream), sorted. The placement
	// controller keeps them where their data is on automatic failover. The last report stays
	// when the syncer goes silent; that is when it matters.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	PersistentNamespaces []string `json:"persistentNamespaces,omitempty"`
	// persistentNamespacesTruncated is true when more namespaces hold claims than
	// persistentNamespaces lists; every namespace of the workspace on this target then counts
	// as holding persistent data.
	// +optional
	PersistentNamespacesTruncated bool `json:"persistentNamespacesTruncated,omitempty"`
}

// VirtualWorkspace is the virtual-workspace server's view of one SyncTarget on one shard.
type VirtualWorkspace struct {
	// syncerURL is the base URL of the syncer view:
	// <server>/services/syncer/<location-cluster>/<synctarget-name>/<synctarget-uid>; a
	// workspace is served below it at /clusters/<logical-cluster>/..., every workspace
	// placed on the target at /clusters/*/....
	// +required
	// +kubebuilder:validation:MinLength=1
	SyncerURL string `json:"syncerURL"`
	// upsyncerURL is the base URL of the upsyncer view of the same target (upsync).
	// +optional
	UpsyncerURL string `json:"upsyncerURL,omitempty"`
}

// WorkspaceReference names a workload workspace by its logical-cluster path.
type WorkspaceReference struct {
	// path is the workspace's logical-cluster path, e.g. "root:org:team-a".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(:[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Path string `json:"path"`
}

// ResourceState is the syncer's verdict on one resource type.
// +kubebuilder:validation:Enum=Pending;Accepted;Incompatible;Unauthorized;Releasing
type ResourceState string

const (
	// ResourceStatePending means the syncer has not checked the type yet.
	ResourceStatePending ResourceState = "Pending"
	// ResourceStateAccepted means the type exists downstream and the syncer may write it.
	ResourceStateAccepted ResourceState = "Accepted"
	// ResourceStateIncompatible means the type does not exist downstream (or differs).
	ResourceStateIncompatible ResourceState = "Incompatible"
	// ResourceStateUnauthorized means the syncer lacks the permissions to sync the type.
	ResourceStateUnauthorized ResourceState = "Unauthorized"
	// ResourceStateReleasing means the type was synced and is no longer (removed from
	// spec.resources, or turned Incompatible or Unauthorized): the syncer is removing its
	// finalizer from the type's upstream objects, and keeps their downstream copies. The
	// entry stays until every workload workspace is done, so that a syncer restarted in the
	// middle still knows the type; its message says why and what is left.
	ResourceStateReleasing ResourceState = "Releasing"
)

// SyncedResource is the state of one resource type on this target.
type SyncedResource struct {
	ResourceToSync `json:",inline"`

	// versions served downstream, preferred first.
	// +optional
	Versions []string `json:"versions,omitempty"`

	// state of the type.
	// +kubebuilder:default=Pending
	State ResourceState `json:"state"`

	// message explains a state other than Accepted.
	// +optional
	Message string `json:"message,omitempty"`
}

// SyncerInfo describes the running syncer.
type SyncerInfo struct {
	// version of the syncer binary.
	// +optional
	Version string `json:"version,omitempty"`
	// pod is "<namespace>/<name>" of the syncer pod, or the host name outside a cluster.
	// +optional
	Pod string `json:"pod,omitempty"`
	// startTime is when the syncer process started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
}

// ErrorSummary counts the syncer's errors by TMC error type and keeps the latest few.
type ErrorSummary struct {
	// counts by TMC error type (e.g. ResourceConflict) since the syncer started.
	// +optional
	Counts map[string]int64 `json:"counts,omitempty"`
	// recent errors, newest first, at most 10.
	// +optional
	// +kubebuilder:validation:MaxItems=10
	// +listType=atomic
	Recent []SyncerError `json:"recent,omitempty"`
}

// SyncerError is one error the syncer reported.
type SyncerError struct {
	// type is the TMC error type.
	Type string `json:"type"`
	// message is the error text.
	// +optional
	Message string `json:"message,omitempty"`
	// workspace of the object the error concerns, if any.
	// +optional
	Workspace string `json:"workspace,omitempty"`
	// resource is "<resource>.<group> <namespace>/<name>" of the object, if any.
	// +optional
	Resource string `json:"resource,omitempty"`
	// time the error last happened.
	Time metav1.Time `json:"time"`
}

// SyncTargetList is a list of SyncTargets.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type SyncTargetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`

	Items []SyncTarget `json:"items"`
}

// Condition types of a SyncTarget.
const (
	// SyncTargetReady summarises the others: the target can take workloads.
	SyncTargetReady = "Ready"
	// SyncTargetSyncerReady means the syncer is running and its controllers are started.
	SyncTargetSyncerReady = "SyncerReady"
	// SyncTargetHeartbeatHealthy means the syncer's heartbeat is within the threshold.
	SyncTargetHeartbeatHealthy = "HeartbeatHealthy"
	// SyncTargetSyncerAuthorized means the syncer may write every accepted resource type.
	SyncTargetSyncerAuthorized = "SyncerAuthorized"
	// SyncTargetResourcesSynced means the last sync of every object succeeded.
	SyncTargetResourcesSynced = "ResourcesSynced"
)

// Condition reasons of a SyncTarget.
const (
	ReasonHeartbeatReceived     = "HeartbeatReceived"
	ReasonErrorHeartbeat        = "ErrorHeartbeat"
	ReasonHeartbeatNeverSeen    = "HeartbeatNeverSeen"
	ReasonSyncerStarted         = "SyncerStarted"
	ReasonSyncerStarting        = "SyncerStarting"
	ReasonSyncerAuthorized      = "SyncerAuthorized"
	ReasonSyncerUnauthorized    = "SyncerUnauthorized"
	ReasonAllResourcesSynced    = "AllResourcesSynced"
	ReasonResourceSyncErrors    = "ResourceSyncErrors"
	ReasonReady                 = "Ready"
	ReasonNotReady              = "NotReady"
	ReasonUnschedulable         = "Unschedulable"
	ReasonEvicting              = "Evicting"
	ReasonDownstreamUnreachable = "DownstreamUnreachable"
)

// Reasons of a WorkspaceHealth entry that is not ready.
const (
	// WorkspaceForbidden: the syncer may not list a synced type in the workspace (RBAC).
	WorkspaceForbidden = "Forbidden"
	// WorkspaceUnauthorized: the workspace does not accept the syncer's credentials.
	WorkspaceUnauthorized = "Unauthorized"
	// WorkspaceUnreachable: the workspace cannot be reached or serves none of the types.
	WorkspaceUnreachable = "Unreachable"
	// WorkspaceSyncing: the workspace answers, its informers have not synced yet.
	WorkspaceSyncing = "Syncing"
)
