// Command tmc-virtual-workspaces serves TMC's virtual workspaces over HTTPS, with metrics
// and health endpoints: the syncer and upsyncer views of every SyncTarget
// (pkg/virtualworkspace/syncer), where each syncer also opens its reverse tunnel
// (pkg/tunnel), and users' pod access (pkg/virtualworkspace/podaccess) through those
// tunnels, held in one registry.
//
// It only wires pkg/virtualworkspace, pkg/tunnel and pkg/cliutil; it must not import the
// syncer, the tmc-controller's reconcilers or anything under test/.
package main
