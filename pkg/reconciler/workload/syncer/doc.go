// Package syncer is the workload-syncer: one per physical cluster, it syncs the objects of
// the workload workspaces placed on its SyncTarget down to the cluster (server-side apply,
// cleaned metadata, per-target spec-diff, a transformation chain), copies their status back
// up, removes downstream copies before releasing the upstream finalizer, and reports
// heartbeats, synced resources and health on the SyncTarget.
//
// One upstream object's way down reads in engine.go (informer event → specKey) →
// spec.go (specController.reconcile: get → gone? → removal? → finalizer → namespace →
// desired → compare → apply) → transform/; a downstream object that exists without our
// ownership label goes to conflict.go (the conflict policy: Abort, AdoptIfEqual or
// Overwrite; never adopted in a namespace not ours); removals continue in deletion.go (the
// budget), with lost.go (upstream lost), orphan.go (deletion policy Orphan), stuck.go
// (terminating copies), release.go (the upstream release) and target_deletion.go (the
// SyncTarget being deleted). Status up reads in engine.go (downstream event → statusKey)
// → status.go, which also reports pods the physical cluster refuses to create (a
// ReplicaFailure condition, e.g. from Pod Security Admission) as a PodsRejected Event on the
// upstream workload (rejections.go); rejections_events.go does the same for StatefulSets and
// Jobs (for a CronJob's Job, the upstream CronJob) from the FailedCreate Warning Events
// their controllers record downstream, once per failure, only for objects carrying our
// ownership label in namespaces of ours, never for an Event already there at start. An
// upstream .status another field manager writes (a plain hub's workload controllers) is not
// fought: the status goes to the per-target annotation, with one StatusOwnedUpstream Event
// (status_owner.go). Upsync (upsync.go) mirrors downstream objects up to their workspaces,
// as copies labelled state.workload.kcp.io/<key>=Upsync that hold the syncer's finalizer and
// the downstream resourceVersion (workload.kcp.io/rv): the Pods of pod templates the chain
// labels Upsync (transform.PodUpsyncTransformer), the Endpoints and EndpointSlices of synced
// Services whose experimental.workload.kcp.io/upsync-derived-resources asks for them,
// PersistentVolumes bound to a claim of ours (cluster-scoped, with the claim's namespace
// locator) and objects of accepted types labelled Upsync downstream, only in namespaces of
// ours (upsync_sources.go). Copies are read from caches only (upsync_upstream.go: per
// workspace directly, one wildcard informer per type through the upsyncer views), written
// only when the rv or the status differ, deleted when their downstream object is gone or
// terminating or the SyncTarget is being deleted, and created again when deleted upstream;
// nothing is removed before the caches synced, and a copy never leads to a downstream
// write. Each piece is built in
// syncer.go (newDataPath) with exactly the listers, clients and funcs it uses; none holds
// a pointer to the Syncer. namespace.go creates and cleans downstream namespaces (a
// namespace goes only once its upstream namespace is gone or no longer placed here),
// podsecurity.go keeps their Pod Security Admission labels at the SyncTarget's
// spec.podSecurity levels (never the upstream namespace's labels), hub_ca.go publishes in
// each of them the hub's CA (the upstream namespace's kube-root-ca.crt) as kcp-root-ca.crt,
// a ConfigMap that is not a synced object (kept out of the downstream caches, never counted,
// mapped upstream or removed; it goes with its namespace),
// namespace_informers.go watches the namespaces of both sides, type_release.go releases
// the upstream objects of a type that stops being synced from the caches that still run
// (its copies stay), type_releaser.go by live lists in every workspace, also for a type
// removed while the syncer was down (known from the previous run's
// status.syncedResources, and reported Releasing there until done),
// status_reporter.go heartbeats and writes the SyncTarget status (confined.go checks, every
// third heartbeat, the admission policy that confines the syncer downstream for its
// SyncerConfined condition, using syncerrbac's checks), upstream.go holds the
// per-workspace clients, workspace_names.go the logical-cluster name of each workspace (the
// cluster of its locators, as kcp's: keys and locators never hash paths), discovery.go the
// accepted types, health.go and metrics.go the
// checks and series. Every queue is a pkg/reconciler/queue with the TMC retry rule.
//
// Tenant containment (the physical cluster is shared by every workspace placed on it):
// containment.go passes the SyncTarget's spec.tenancy allowances to the chain, whose
// ContainmentTransformer drops external IPs, volume names, bind annotations and node names,
// and records one FieldsDropped Event per change of what was dropped; namespace_locator.go
// makes a downstream namespace ours only when its name is the hash of its locator
// (namespace.go locatorOf), so a forged locator never leads to a status write, a spec key
// or a cleanup, and is reported once.
//
// PersistentVolumes (volumes.go) are the one cluster-scoped type synced, opt-in
// (discovery.go accepts no other): a volume goes down only when its spec.claimRef names a
// claim in a namespace of the same workspace placed on this target, with the claimRef
// rewritten to that namespace's downstream namespace and the claim's locator on the copy;
// hostPath and local sources only with spec.tenancy.allowHostPathVolumes. A downstream
// volume that is not ours, another target's or another workspace's copy (its locator) is
// never adopted, overwritten or removed; the engine reads cluster-scoped caches by
// namespace "" (clusterScopedLister) and maps a copy back to its workspace by its locator.
//
// Every downstream deletion the syncer decides on its own asks the mass-deletion breaker
// first (breaker.go: a budget of objects per sliding window, paused until an operator
// resumes with an annotation on the SyncTarget; breaker_status.go its DeletionsPaused
// condition). workspace_health.go says which workload workspaces the syncer can read
// (status.workspaceHealth) and, from persistent_claims.go, which of their namespaces hold
// PersistentVolumeClaims downstream, whoever made them (the placement controller keeps those
// on automatic failover; an unknown answer repeats the last report); SyncerReady depends on the syncer's own, downstream caches
// only, so one unreadable workspace does not take the target down.
//
// Upstream modes (upstream_mode.go): direct reaches each workload workspace of
// status.workspaces at /clusters/<path> with one informer per (workspace, type);
// virtual-workspace (syncer_views.go) follows the syncer views of
// SyncTarget.status.virtualWorkspaces, one per shard: one wildcard informer (pkg/wildcard)
// per (shard, type), one of placed namespaces and one of kube-root-ca.crt ConfigMaps (the
// hub CA copy), the workspaces being the logical clusters
// with a placed namespace there (named, not pathed); the engine's per-(workspace, type)
// handles are views of those caches, and the virtual-workspace server summarises status
// across targets (the syncer writes only its own). auto picks one at start and exits when
// the choice would change.
//
// Pod access (tunnel.go, pod_access.go): with Config.Tunnel the syncer holds a reverse
// tunnel (pkg/tunnel) to each syncer view of status.virtualWorkspaces, in every upstream
// mode, and serves on it only pods/log, exec, attach and portforward of pods labelled Upsync
// for this target, in the downstream namespace whose locator names the requested workspace
// and namespace (namespaceManager.downstreamNamespaceOf: never a forged or another target's
// namespace), proxied to the downstream apiserver with the syncer's downstream credential.
//
// It uses pkg/reconciler/workload/tmc for errors, metrics, health and recovery, and must not
// import the control-plane controllers or anything under test/.
package syncer
