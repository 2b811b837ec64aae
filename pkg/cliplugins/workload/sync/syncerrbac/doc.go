// Package syncerrbac owns the least-privilege permissions of a workload-syncer, as `kubectl
// tmc workload sync` generates them: on the physical cluster a ClusterRole for namespaces,
// nodes, the synced types and read access to claims and Events, a Role for its leader-election Lease and a
// ValidatingAdmissionPolicy confining its writes (and its pods/exec, attach and portforward, the pod tunnel's) to the namespaces it owns; in the location
// workspace read access to its own SyncTarget, the verb sync on it (the virtual-workspace
// server's authorization) and write access to its status; in every workload workspace it
// reaches directly (a plain hub, or kcp without the virtual-workspace server) the synced
// types, their status and Events, and the namespaces' kube-root-ca.crt (the hub's CA, which the syncer publishes downstream as kcp-root-ca.crt).
//
// It is the one place these rules are written down: the sync command renders them into its
// manifest and creates them upstream, and pkg/localenv grants exactly them to the syncers of
// `kubectl tmc dev`, the e2e tests and the benchmarks, so that those run the syncer as a real
// registration would. The subject is a parameter: a ServiceAccount for a real registration,
// a token user in a local environment.
//
// It also owns the check of that confinement (confinement.go): the syncer reads its policy
// and binding back from the physical cluster and asks CheckAdmissionPolicy and
// CheckAdmissionPolicyBinding whether they still confine it as generated, for its
// SyncerConfined condition; ClusterObjectName gives it their default name.
//
// It builds API objects only and must not import client-go clients, cobra, controller code
// (pkg/reconciler/...) or anything under test/.
package syncerrbac
