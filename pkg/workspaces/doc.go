// Package workspaces gives the tmc-controller its view of kcp-style workspaces: one set of
// clients and informer factories per workspace, reached at <upstream>/clusters/<path>; or,
// on a plain Kubernetes hub (NewHubSet), the hub itself as the one workspace named
// HubWorkspace ("hub", the name the workload-syncer uses in its keys and locators), which is
// both the location and the workload workspace.
// Workspaces are listed statically today (flags); the Source interface is where discovery
// from kcp's tenancy API plugs in later.
//
// It must not import controller packages or anything under test/.
package workspaces
