// Package workspaces gives the tmc-controller its view of kcp-style workspaces: one set of
// clients and informer factories per workspace, reached at <upstream>/clusters/<path>; or,
// on a plain Kubernetes hub (NewHubSet), the hub itself as the one workspace named
// HubWorkspace ("hub", the name the workload-syncer uses in its keys and locators), which is
// both the location and the workload workspace.
//
// Workspaces come from flags, or are discovered (Discovery): every workspace with at least
// one Placement, seen through the upstream's wildcard endpoint /clusters/* (pkg/wildcard),
// is bound at runtime under its logical-cluster name: added to the Set (safe for concurrent
// growth) and to every Binder (the controllers), then its informers start. A bound
// workspace stays bound while the process runs, also once its last Placement is gone, so
// that its placed namespaces keep being reconciled and released.
//
// It must not import controller packages or anything under test/.
package workspaces
