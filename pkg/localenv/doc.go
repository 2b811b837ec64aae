// Package localenv runs a local TMC environment on real Kubernetes servers, for `kubectl tmc
// dev`, the integration and e2e tests and the benchmarks: one etcd, one kube-apiserver per
// kcp-style workspace behind a front proxy that serves /clusters/<path>/..., and physical
// clusters made of kube-apiserver, kube-controller-manager, kube-scheduler and kwok with fake
// nodes. Each workspace runs the controllers kcp runs per logical cluster (namespace, garbage
// collector, service account, service-account token, root-CA publisher) and the PVC/PV
// protection controllers, so every namespace holds kube-root-ca.crt and a default
// ServiceAccount as on kcp (workspace_controllers.go); each physical cluster has a default
// StorageClass and a pool of PersistentVolumes its binder binds claims to (storage.go), and
// its kwok serves the kubelet API of every pod: logs from a file the environment writes
// (follow works), exec of a local command, port-forward to an HTTP echo server of the
// environment or a chosen address (PhysicalCluster.Pods, podserving.go). As on
// kcp, each workspace has a logical-cluster name distinct from its path (root's is "root"),
// is served at /clusters/<name> as at /clusters/<path>, and records kcp.io/cluster=<name> on
// every object it stores, by a static mutating admission policy (logical_cluster.go). The
// front proxy also serves kcp's wildcard endpoint /clusters/*/<collection>: lists as one
// snapshot at one etcd revision across every workspace, and watches in global etcd-revision
// order (an etcd watch over all workspaces orders the per-workspace watches;
// frontproxy_wildcard.go, wildcard_watch.go). Every
// server listens on 127.0.0.1 with a free port and logs to a per-environment directory. It also injects faults: a TCP proxy that partitions, delays or resets
// connections, stop/start/kill of any process, and a workspace's apiserver replaced by an
// empty one at the same path (ReplaceWorkspace).
//
// A plain Kubernetes hub (StartHub: kube-apiserver and kube-controller-manager with every
// default controller, TMC CRDs, no nodes, no /clusters/) can serve as the upstream instead
// of the workspaces, with the syncer's RBAC put on it as `workload sync` does for a hub
// (Hub.GrantSyncer) and the syncer and `tmc-controller --hub` launched against it.
//
// It owns, for every caller alike: the one launcher of the workload-syncer, of the
// tmc-controller and of the tmc-virtual-workspaces binaries (StartSyncer, StartController,
// StartVirtualWorkspaces, which serves HTTPS with a certificate of the environment's CA), the syncer's RBAC and admission
// policy (GrantSyncer, exactly what `kubectl tmc workload sync` generates, from
// pkg/cliplugins/workload/sync/syncerrbac), the one poll helper (Poll) and the one parser of
// the Prometheus text format (ScrapeMetrics, on expfmt).
//
// The servers come from hack/test-binaries.sh (make test-binaries). Nothing here is a mock.
// Processes need Linux (process groups, parent-death signal); on other systems starting one
// fails with ErrNeedsLinux, and the rest of the package still builds.
//
// This package may import client-go, the project's API packages and syncerrbac. It must not
// import controller code (pkg/reconciler/...), cobra or the command packages, and never
// anything under test/: it ships in kubectl-tmc.
package localenv
