package syncerrbac

// HubWorkloadRBACName names the workload-workspace ClusterRole and ClusterRoleBinding of a
// syncer whose upstream is a plain Kubernetes hub. The hub is the location and the workload
// workspace at once, so the workload RBAC must not take the name of the location RBAC
// (locationName, which `workload sync` creates there): applied under the same name, one
// would replace the other and the syncer would lose either its SyncTarget or the synced
// types.
func HubWorkloadRBACName(locationName string) string { return locationName + "-workloads" }
