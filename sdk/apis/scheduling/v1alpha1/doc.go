// Package v1alpha1 holds the scheduling.kcp.io API: Location, a set of SyncTargets in a
// location workspace, and Placement, which binds the namespaces of a workload workspace to a
// Location. It is kept compatible with kcp's TMC API and imports only API machinery.
//
// +k8s:deepcopy-gen=package
// +groupName=scheduling.kcp.io
package v1alpha1
