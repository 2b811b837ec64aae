// Package v1alpha1 holds the workload.kcp.io API: SyncTarget, the record of one physical
// cluster that a workload-syncer serves, and the keys (labels, annotations, finalizers) TMC
// puts on synced objects. It is kept compatible with kcp's TMC API. It imports only API
// machinery, never controller code.
//
// +k8s:deepcopy-gen=package
// +groupName=workload.kcp.io
package v1alpha1
